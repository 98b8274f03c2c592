"""The gateway: a Flask blueprint with the HTTP protocol of SPEC §3 and its SSE streams.

``chat_blueprint()`` gives every route under ``/api/chat``: trigger a run, read its state, send
messages, stop, cancel, renew a token, and stream the run's output as Server-Sent Events (through
the process's :mod:`~chatworker.hub`). The AI SDK compatible ``/ui`` routes live in
:mod:`chatworker.flask_ui`. Every error is JSON ``{error, message}``, never an HTML page.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Request, Response, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from .. import runs, tokens
from ..config import env_float, get_redis
from ..errors import ChatworkerError, InvalidPayload, TaskNotFound
from ..payload import load_json, parse_payload
from ..registry import get_task
from ..store import credentials, streams
from .hub import is_stream_id
from .sse import SSE_HEADERS, Follow, chunk_type, comment, event

log = logging.getLogger("chatworker.flask")

__all__ = ["ApiError", "Gateway", "bearer_token", "chat_blueprint", "json_error"]

DEFAULT_MAX_BODY = 1024 * 1024
MAX_STREAM_TIMEOUT = 600.0
#: Signature of the ``/ui`` authorization callback: ``(request, task_id) -> verdict``: False
#: refuses (403), a string names the user the request stands for (its chats are that user's),
#: True admits it (to every chat of the task, unless it verified a token; see flask_ui).
AuthorizeUI = Callable[[Request, str], bool | str]

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_PATH_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,200}$")
_REDIS_DOWN = ("LOADING", "MASTERDOWN", "READONLY", "OOM", "BUSY", "TRYAGAIN", "CLUSTERDOWN")


class ApiError(Exception):
    """An error answered as JSON ``{error: code, message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_error(status: int, code: str, message: str) -> Response:
    """The JSON error response every failure of the gateway uses."""
    return Response(
        json.dumps({"error": code, "message": message}), status=status, mimetype="application/json"
    )


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response (the success bodies of the gateway routes)."""
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"


def error_response(exc: BaseException) -> Response:
    """Map any exception raised while serving a gateway route to its JSON response."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.code, exc.message)
    if isinstance(exc, tokens.TokenError):
        return json_error(exc.status, exc.code, str(exc))
    if isinstance(exc, ChatworkerError):
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc)
        return json_error(exc.status, exc.code, str(exc))
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith(_REDIS_DOWN)
    ):
        log.warning("Redis unavailable: %s", exc)
        return json_error(
            503, "redis_unavailable", f"Redis is unreachable or unavailable ({exc}); retry later"
        )
    if isinstance(exc, tokens.SecretMissing):
        log.error("%s", exc)
        return json_error(500, "server_misconfigured", "the server has no token signing secret")
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        response = json_error(status, _snake(exc.name), exc.description or exc.name)
        for header, value in exc.get_headers():
            if header.lower() == "allow":
                response.headers["Allow"] = value
        return response
    log.error("unhandled error in the chat gateway", exc_info=exc)
    return json_error(500, "internal_error", "internal server error (see the gateway's log)")


def bearer_token(req: Request, *, allow_query: bool = False) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (or ``?token=`` when allowed)."""
    header = req.headers.get("Authorization", "")
    if header.strip():
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise tokens.TokenError("malformed Authorization header: use `Bearer <token>`")
        return value.strip()
    if allow_query:
        return req.args.get("token") or None
    return None


def check_path_id(kind: str, value: str) -> None:
    """404 for a task or run id no task or run could have (control characters, huge...)."""
    if not _PATH_ID.match(value):
        raise ApiError(404, f"{kind}_not_found", f"no {kind} {value!r}")


@dataclass
class Gateway:
    """The blueprint's settings and the helpers its routes share (also used by ``/ui``)."""

    tasks: Mapping[str, Any] | None
    max_body_bytes: int
    stream_timeout_default: float
    authorize_ui: AuthorizeUI | None

    def task(self, task_id: str) -> Any:
        """The task ``task_id`` served here; :class:`TaskNotFound` (404) otherwise."""
        if self.tasks is not None:
            if task_id not in self.tasks:
                raise TaskNotFound(f"no chat task {task_id!r} is served here")
            return self.tasks[task_id]
        return get_task(task_id)

    def read_json(self, *, required: bool = True) -> Any:
        """The request body parsed as JSON, enforcing the size limit and the content type.

        400 for malformed JSON; 422 for JSON the worker could not read (see ``load_json``)."""
        limit = self.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise ApiError(413, "payload_too_large", f"the body is over the {limit}-byte limit")
        data = request.stream.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "payload_too_large", f"the body is over the {limit}-byte limit")
        if not data.strip():
            if required:
                raise ApiError(400, "empty_body", "the body is empty: send a JSON object")
            return None
        mimetype = request.mimetype
        if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"the body must be JSON (Content-Type: application/json), not {mimetype}",
            )
        try:
            # The parser the worker reads messages with: a body accepted here is one the run can
            # read (a lone surrogate or too deep a nesting is a 422 from load_json).
            return load_json(data.decode("utf-8-sig"))
        except InvalidPayload:
            raise
        except ValueError as exc:
            raise ApiError(400, "malformed_json", f"the body is not valid JSON ({exc})") from None

    def stream_timeout(self) -> float:
        """``?timeout=`` seconds of inactivity before a stream closes (default, max 600)."""
        raw = request.args.get("timeout")
        if raw is None or raw == "":
            return self.stream_timeout_default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ApiError(400, "bad_request", f"timeout must be a positive number, not {raw!r}")
        return min(value, MAX_STREAM_TIMEOUT)

    def run_claims(self, run_id: str, access: str, *, allow_query: bool = False) -> None:
        """Require a run token granting ``access`` ("read" or "write") to ``run_id``."""
        scope = f"read:runs:{run_id}" if access == "read" else f"write:inputStreams:{run_id}"
        tokens.require_scope(bearer_token(request, allow_query=allow_query), scope)


def spend_token(claims: tokens.Claims) -> bool:
    """Spend a one-time trigger token (401 if it was already used); True if it was one."""
    if not claims.one_time:
        return False
    # The use marker lives as long as the token. A validly signed token may still carry an
    # absurd expiry (e.g. minted with a huge ttl): Redis refuses such an EX ("invalid expire
    # time"), which was a 500. 10**12 s from now is "forever" and within Redis' range.
    ceiling = int(time.time()) + 10**12
    if claims.expires_at > ceiling:
        claims = dataclasses.replace(claims, expires_at=ceiling)
    tokens.spend_one_time(claims)
    return True


def release_token(claims: tokens.Claims) -> None:
    """Un-spend a one-time token whose trigger failed, so the client can retry with it."""
    if claims.jti:
        try:
            credentials.unspend(get_redis(), claims.jti)
        except redis.RedisError:
            log.warning("could not release one-time token %s after a failed trigger", claims.jti)


#: The last event of a stream whose run vanished from Redis (flushed, or restarted without
#: persistence): a ``__run_end`` that is no stream entry, so it has no id.
RUN_LOST = {
    "type": "__run_end",
    "status": "failed",
    "reason": "lost: Redis no longer has this run (it was flushed or restarted without its data)",
}


def run_stream_body(run_id: str, after: str | None, idle: float) -> Iterator[str]:
    """The SSE body of ``GET /runs/<id>/stream``: every entry until ``__run_end`` or idle.

    A run that vanishes from Redis meanwhile ends it with :data:`RUN_LOST`. Entries trimmed
    away while it catches up end it without a word: the client resumes by id and is told so
    (410 ``stream_trimmed``).
    """
    yield comment("stream open")
    follow = Follow(run_id, after, idle_timeout=idle)
    try:
        for batch in follow:
            if batch is None:
                yield comment("keep-alive")
                continue
            parts = []
            ended = False
            for entry_id, raw in batch:
                parts.append(event(raw, entry_id))
                if "__run_end" in raw and chunk_type(raw) == "__run_end":
                    ended = True
                    break
            yield "".join(parts)
            if ended:
                return
        if follow.end_reason == "lost":
            yield event(json.dumps(RUN_LOST))
    finally:
        follow.close()


class _Routes:
    """The run routes of SPEC §3, bound to one :class:`Gateway`."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def trigger(self, task_id: str) -> Response:
        claims = tokens.verify(bearer_token(request))
        self.gw.task(task_id)
        scope = f"trigger:tasks:{task_id}"
        if scope not in claims.scopes:
            raise tokens.TokenScopeError(f"this token does not grant `{scope}`")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise ApiError(400, "bad_request", "Idempotency-Key must be 1-255 visible ASCII chars")
        payload = parse_payload(self.gw.read_json(), self.gw.task(task_id))
        # A one-time token is spent by every trigger, a replayed Idempotency-Key included: the
        # key is scoped to the token's principal, so a replay is this caller's own retry.
        spent = spend_token(claims)
        try:
            result = runs.trigger(
                task_id, payload, idempotency_key=key or None, principal=claims.principal
            )
        except BaseException:
            if spent:
                release_token(claims)
            raise
        return json_response(result.to_json(), 201)

    def info(self, run_id: str) -> Response:
        self.gw.run_claims(run_id, "read")
        return json_response(runs.status(run_id).to_json())

    def messages(self, run_id: str) -> Response:
        self.gw.run_claims(run_id, "write")
        payload = parse_payload(self.gw.read_json(), get_task(runs.task_of(run_id)))
        return json_response({"inputId": runs.send_message(run_id, payload)}, 202)

    def stop(self, run_id: str) -> Response:
        self.gw.run_claims(run_id, "write")
        body = self.gw.read_json(required=False)
        message, input_id = _stop_message(body)
        stopped = runs.stop(run_id, message, input_id=input_id)
        return json_response({"ok": True, "stopped": bool(stopped)}, 202)

    def cancel(self, run_id: str) -> Response:
        self.gw.run_claims(run_id, "write")
        self.gw.read_json(required=False)
        runs.cancel(run_id)
        return json_response({"ok": True}, 202)

    def token(self, run_id: str) -> Response:
        claims = tokens.verify(bearer_token(request))
        info = runs.status(run_id)
        scope = f"trigger:tasks:{info.task_id}"
        if scope not in claims.scopes:
            raise tokens.TokenScopeError(f"this token does not grant `{scope}`")
        try:
            ttl = get_task(info.task_id).chat_access_token_ttl
        except TaskNotFound:
            ttl = "1h"
        spend_token(claims)
        return json_response({"publicAccessToken": tokens.create_run_token(run_id, ttl)})

    def stream(self, run_id: str) -> Response:
        self.gw.run_claims(run_id, "read", allow_query=True)
        after = last_event_id(request)
        idle = self.gw.stream_timeout()
        info = runs.status(run_id)
        if after is not None:  # 400 stream_id_ahead / 410 stream_trimmed before any event
            streams.check_resume(get_redis(), run_id, after)
        if info.ended:
            idle = min(idle, 1.0)  # nothing new will come: close soon after catching up
        body = run_stream_body(run_id, after, idle)
        return Response(body, content_type="text/event-stream", headers=SSE_HEADERS)


def last_event_id(req: Request) -> str | None:
    """The resume position: ``Last-Event-ID`` header, else ``?lastEventId=``; 400 if garbage.

    Whether the stream can be resumed there (not beyond its end, nothing after it trimmed) is
    checked against the stream: :func:`chatworker.store.streams.check_resume`.
    """
    raw = req.headers.get("Last-Event-ID") or req.args.get("lastEventId") or ""
    raw = raw.strip()
    if not raw:
        return None
    if raw.isdigit() and len(raw) <= 20:
        raw = f"{raw}-0"
    if not is_stream_id(raw):
        raise ApiError(400, "bad_request", f"Last-Event-ID {raw[:64]!r} is not a stream id")
    return raw


_INPUT_ID = re.compile(r"^i\d{1,18}$")


def _stop_message(body: Any) -> tuple[str | None, str | None]:
    """The stop body's ``message`` and ``inputId`` (the send to stop; default: the current)."""
    if body is None:
        return None, None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_payload", "the body must be a JSON object {stop: true}")
    if body.get("stop", True) is not True:
        raise ApiError(422, "invalid_payload", "`stop` must be true")
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise ApiError(422, "invalid_payload", "`message` must be a string")
    input_id = body.get("inputId")
    if input_id is not None and (not isinstance(input_id, str) or not _INPUT_ID.match(input_id)):
        raise ApiError(422, "invalid_payload",
                       "`inputId` must be an id returned by POST /runs/<id>/input/messages")
    return message, input_id


def _task_map(tasks: Mapping[str, Any] | Iterable[Any] | None) -> Mapping[str, Any] | None:
    if tasks is None:
        return None
    if isinstance(tasks, Mapping):
        return dict(tasks)
    items: Iterable[Any] = tasks
    return {task.id: task for task in items}


def chat_blueprint(
    tasks: Mapping[str, Any] | Iterable[Any] | None = None,
    *,
    url_prefix: str = "/api/chat",
    authorize_ui: AuthorizeUI | None = None,
    max_body_bytes: int | None = None,
    stream_timeout_default: float = 120.0,
    name: str = "chatworker",
) -> Blueprint:
    """The gateway blueprint: SPEC §3 routes under ``url_prefix``, plus the ``/ui`` routes.

    ``tasks`` limits the served tasks (default: every registered one). ``authorize_ui(request,
    task_id)`` guards ``/ui``; the default wants a Bearer trigger token for the task and binds
    each chat to that token's principal. A callback of your own returns False (403), the id of
    the user the request stands for (chats bound to that user), or True (every chat of the
    task: sharing them is then your call).
    """
    from .ui import register_ui_routes

    gw = Gateway(
        tasks=_task_map(tasks),
        max_body_bytes=max_body_bytes
        or int(env_float("CHATWORKER_MAX_BODY", float(DEFAULT_MAX_BODY))),
        stream_timeout_default=min(float(stream_timeout_default), MAX_STREAM_TIMEOUT),
        authorize_ui=authorize_ui,
    )
    bp = Blueprint(name, __name__, url_prefix=url_prefix)
    routes = _Routes(gw)
    rules: list[tuple[str, str, Callable[..., Response], str]] = [
        ("/tasks/<task_id>/runs", "trigger", routes.trigger, "POST"),
        ("/runs/<run_id>", "run", routes.info, "GET"),
        ("/runs/<run_id>/input/messages", "messages", routes.messages, "POST"),
        ("/runs/<run_id>/input/stop", "stop", routes.stop, "POST"),
        ("/runs/<run_id>/cancel", "cancel", routes.cancel, "POST"),
        ("/runs/<run_id>/stream", "stream", routes.stream, "GET"),
        ("/runs/<run_id>/token", "token", routes.token, "POST"),
    ]
    for rule, endpoint, view, method in rules:
        # merge_slashes=False: werkzeug would answer `//runs//x` with a 308 redirect whose body
        # is an HTML page; an API path with empty segments is simply not found (JSON 404).
        bp.add_url_rule(rule, endpoint, _checked(view), methods=[method], merge_slashes=False)
    register_ui_routes(bp, gw)
    bp.register_error_handler(Exception, error_response)
    bp.record_once(lambda state: _install_app_handlers(state, url_prefix))
    bp.gateway = gw  # type: ignore[attr-defined]
    return bp


def _checked(view: Callable[..., Response]) -> Callable[..., Response]:
    def wrapper(**kwargs: str) -> Response:
        for kind in ("task", "run"):
            value = kwargs.get(f"{kind}_id")
            if value is not None:
                check_path_id(kind, value)
        return view(**kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def _install_app_handlers(state: BlueprintSetupState, default_prefix: str) -> None:
    """Routing errors (404, 405) under the prefix are app-level in Flask: answer them as JSON."""
    app: Any = state.app
    prefix = (state.url_prefix or default_prefix).rstrip("/")
    for status in (404, 405):
        previous = app.error_handler_spec.get(None, {}).get(status, {})
        fallback = next(iter(previous.values()), None)

        def handler(exc: HTTPException, fallback: Any = fallback) -> Any:
            path = request.path
            if path == prefix or path.startswith(prefix + "/"):
                return error_response(exc)
            return fallback(exc) if fallback is not None else exc

        app.register_error_handler(status, handler)
