"""What the run routes and the ``/ui`` routes share: JSON errors, tokens, request reading.

Every failure of the gateway is answered by :func:`error_response` as JSON ``{error, message}``
with its own status, never an HTML page. :class:`Gateway` holds the blueprint's settings and
reads a request once (body, ``?timeout=``, the run token); :func:`bearer_token`,
:func:`check_path_id` and :func:`last_event_id` check the rest of what a request carries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from flask import Request, Response, request
from werkzeug.exceptions import HTTPException

from .. import tokens
from ..config import get_redis
from ..engine.payload import load_json
from ..engine.registry import get_task
from ..errors import ChatworkerError, InvalidPayload, TaskNotFound
from ..store import credentials
from ..store.entry_ids import is_stream_id

log = logging.getLogger("chatworker.flask")

__all__ = [
    "ApiError",
    "AuthorizeUI",
    "Gateway",
    "bearer_token",
    "check_path_id",
    "error_response",
    "json_error",
    "json_response",
    "last_event_id",
    "release_token",
    "spend_token",
]

DEFAULT_MAX_BODY = 1024 * 1024
MAX_STREAM_TIMEOUT = 600.0
#: Signature of the ``/ui`` authorization callback: ``(request, task_id) -> verdict``: False
#: refuses (403), a string names the user the request stands for (its chats are that user's),
#: True admits it (to every chat of the task, unless it verified a token; see gateway.ui).
AuthorizeUI = Callable[[Request, str], bool | str]

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
