"""The gateway blueprint: the HTTP protocol of SPEC §3 and its SSE streams.

``chat_blueprint()`` gives every route under ``/api/chat``: trigger a run, read its state, send
messages, stop, cancel, renew a token, and stream the run's output as Server-Sent Events (through
the process's :mod:`~chatworker.gateway.hub`). It adds the AI SDK compatible ``/ui`` routes of
:mod:`chatworker.gateway.ui`. Every error is JSON ``{error, message}``, never an HTML page (see
:mod:`chatworker.gateway.http`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from .. import runs, tokens
from ..config import env_float, get_redis
from ..engine.payload import parse_payload
from ..engine.registry import get_task
from ..errors import TaskNotFound
from ..store import streams
from ..tracing import instrument_flask
from .http import (
    DEFAULT_MAX_BODY,
    MAX_STREAM_TIMEOUT,
    ApiError,
    AuthorizeUI,
    Gateway,
    bearer_token,
    check_path_id,
    error_response,
    json_response,
    last_event_id,
    release_token,
    spend_token,
)
from .sse import SSE_HEADERS, Follow, chunk_type, comment, event, heartbeat
from .ui import register_ui_routes

__all__ = ["RUN_LOST", "chat_blueprint", "run_stream_body"]

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


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
                yield heartbeat(follow)
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
        sent = runs.send(run_id, payload)
        outcome = sent.outcome
        if outcome == "steering":  # answer once it joined the turn or became a turn of its own
            outcome = runs.wait_steered(run_id, sent.input_id, self.gw.stream_timeout())
        return json_response({"inputId": sent.input_id, "outcome": outcome}, 202)

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
    bp.record_once(lambda state: instrument_flask(state.app))  # when tracing is on
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
