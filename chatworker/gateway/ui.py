"""AI SDK compatible routes: a stock ``useChat`` + ``DefaultChatTransport`` works unchanged.

``POST /ui/<taskId>`` takes the AI SDK body, sends it to the chat's live run (or starts one) and
streams that one turn as a UI message stream without control chunks, ending ``data: [DONE]``.
``GET /ui/<taskId>/<chatId>/stream`` replays the turn in flight (204 when none);
``POST /ui/<taskId>/<chatId>/stop`` stops it; ``GET /ui/<taskId>/<chatId>/follow`` streams every
turn of the chat live, across its runs (:mod:`.follow`).

Each chat belongs to the principal that started it (see :mod:`chatworker.tokens`): with the
default authorization, the subject of the trigger token, or the token itself when it has no
subject. Another principal gets 403 on every route of that chat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Request, Response, g, request

from .. import runs, tokens
from ..config import get_redis
from ..engine.payload import ChatWirePayload, parse_payload
from ..errors import RunEnded, RunNotFound
from ..store import streams
from ..store.entry_ids import previous_id
from .continued import ContinuedStart
from .follow import chat_follow_body, check_resume, start_position
from .http import (
    ApiError,
    Gateway,
    bearer_token,
    check_path_id,
    json_response,
    last_event_id,
    release_token,
    spend_token,
)
from .restart import RestartFilter
from .sse import (
    DONE,
    SSE_HEADERS,
    UI_STREAM_HEADERS,
    Follow,
    comment,
    event,
    heartbeat,
    parse_chunk,
)

log = logging.getLogger("chatworker.flask_ui")

__all__ = ["default_authorize_ui", "register_ui_routes", "ui_turn_stream"]

_CLAIMS = "chatworker_ui_claims"
#: The response header of ``POST /ui/<taskId>`` to a live run saying what the message's
#: ``whileStreaming`` policy did: ``queued``, ``interrupted``, ``steered`` or ``turn``.
OUTCOME_HEADER = "X-Chatworker-Outcome"


def default_authorize_ui(req: Request, task_id: str) -> bool:
    """Accept a Bearer trigger token for ``task_id`` (make it with ``multiple_use=True``).

    A one-time token is only spent when a request actually starts a run. The chats it reaches
    are those of its principal: its subject (``sub``), or, without one, this token alone.
    """
    claims = tokens.require_scope(bearer_token(req), f"trigger:tasks:{task_id}")
    setattr(g, _CLAIMS, claims)
    return True


def _error_chunk(text: str) -> str:
    return event(json.dumps({"type": "error", "errorText": text}))


def ui_turn_stream(
    run_id: str, after: str | None, input_id: str | None, idle: float, replay: bool = False,
    *, steered: str | None = None,
) -> Iterator[str]:
    """One turn as a UI message stream: from the ``__turn_start`` answering ``input_id`` (the
    first one when None) after ``after``, to its ``__turn_complete``; control chunks dropped.
    A ``replay`` (a reconnect) leaves out the ``start`` of a turn that continues a message
    (see :mod:`.continued`).

    With ``steered`` (the id of a message steered into the streaming turn) it starts at that
    message's ``steering-message`` chunk instead (or at its own turn, should it become one)."""
    yield comment("stream open")
    follow = Follow(run_id, after, idle_timeout=idle, resume_on_drop=True)
    in_turn = False
    turn: Any = None
    restarts = RestartFilter()  # a turn started again after its worker died shows once
    continued = ContinuedStart() if replay else None

    def relay(chunks: list[str]) -> list[str]:
        return [out for chunk in chunks for out in continued.chunk(chunk)] if continued else chunks

    try:
        for batch in follow:
            if batch is None:
                yield heartbeat(follow)
                continue
            parts: list[str] = []
            for _entry_id, raw in batch:
                control = parse_chunk(raw) if '"__' in raw else {}
                kind = control.get("type", "")
                if not (isinstance(kind, str) and kind.startswith("__")):
                    if not in_turn and steered is not None and '"steering-message"' in raw:
                        chunk = parse_chunk(raw)
                        in_turn = chunk.get("type") == "steering-message" and (
                            chunk.get("id") == steered)
                    if in_turn:
                        parts.extend(event(chunk) for chunk in relay(restarts.chunk(raw)))
                    continue
                if kind in ("__run_end", "__turn_complete") and in_turn:
                    parts.extend(event(chunk) for chunk in relay(restarts.release()))
                    if continued:
                        parts.extend(event(chunk) for chunk in continued.release())
                if kind == "__run_end":
                    status = control.get("status", "ended")
                    reason = control.get("reason")
                    why = f"{status}: {reason}" if reason else str(status)
                    parts.append(_error_chunk(f"The chat run ended ({why}) before the answer."))
                    yield "".join(parts) + DONE
                    return
                if not in_turn and kind == "__turn_start":
                    in_turn = input_id is None or control.get("inputId") == input_id
                    turn = control.get("turn")
                elif in_turn and kind == "__turn_start" and control.get("turn") == turn:
                    parts.extend(event(chunk) for chunk in relay(restarts.restart()))
                elif in_turn and kind == "__turn_complete":
                    yield "".join(parts) + DONE
                    return
            if parts:
                yield "".join(parts)
        if follow.end_reason == "idle":
            text = f"No output from the chat run for {idle:g} s; it may still be working."
        elif follow.end_reason == "lost":
            text = (
                "The chat run was lost: Redis no longer has it (it was flushed or restarted"
                " without its data). Send the message again."
            )
        elif follow.end_reason == "trimmed":
            text = (
                "This answer is longer than the chat run's stream keeps, so it cannot be"
                " replayed from its start; reload the chat once it is complete."
            )
        else:
            text = "Lost the connection to the chat run's stream; try again."
        yield _error_chunk(text) + DONE
    finally:
        follow.close()


def _ui_response(
    run_id: str, after: str | None, input_id: str | None, idle: float, replay: bool = False,
    *, steered: str | None = None,
) -> Response:
    body = ui_turn_stream(run_id, after, input_id, idle, replay, steered=steered)
    return Response(body, content_type="text/event-stream", headers=UI_STREAM_HEADERS)


def _no_content() -> Response:
    response = Response(status=204)
    response.headers.pop("Content-Type", None)
    return response


def _last_turn_start(run_id: str, pages: int = 20) -> str | None:
    """Scan the stream backwards for the latest ``__turn_start`` (when the record lacks it)."""
    return streams.last_of_type(get_redis(), run_id, "__turn_start", pages * 500)


class _UiRoutes:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def _authorize(self, task_id: str) -> tuple[Any, str | None]:
        """The task, and the principal whose chats this request may use (None: every chat).

        The callback's verdict: False refuses; a string is the user the request stands for
        (the same principal as tokens with that subject); True admits the request to the chats
        of the token :func:`default_authorize_ui` verified, or, when no token was verified
        (a host app's own check), to every chat of the task.
        """
        check_path_id("task", task_id)
        authorize = self.gw.authorize_ui or default_authorize_ui
        verdict = authorize(request, task_id)
        if not verdict:
            raise ApiError(403, "forbidden", f"not allowed to use the chats of task {task_id!r}")
        claims = getattr(g, _CLAIMS, None)
        if isinstance(verdict, str):
            principal: str | None = tokens.subject_principal(verdict)
        elif isinstance(claims, tokens.Claims):
            principal = claims.principal
        else:
            principal = None
        return self.gw.task(task_id), principal

    @staticmethod
    def _check_owner(task_id: str, chat_id: str, run_id: str, principal: str | None) -> None:
        """403 when the chat's run belongs to another principal.

        A run Redis forgot is nobody's, and so is an ended run that names no principal (started
        by the host app's own code, or before runs recorded one): the chat continues in a new
        run of the caller's. A live run that names none is refused.
        """
        if principal is None:
            return
        owner = runs.principal_of(run_id)
        if owner == "":
            try:
                if runs.status(run_id).ended:
                    return
            except RunNotFound:
                return
        if owner is not None and owner != principal:
            raise ApiError(
                403,
                "forbidden",
                f"chat {chat_id!r} of task {task_id!r} belongs to another user: "
                "use a token with the subject that started it, or another chat id",
            )

    def send(self, task_id: str) -> Response:
        task, principal = self._authorize(task_id)
        body = self.gw.read_json()
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_payload", "the body must be a JSON object")
        wire = {k: v for k, v in body.items() if k != "id"}
        if "id" in body:
            wire["chatId"] = body["id"]
        payload = parse_payload(wire, task)
        if payload.trigger != "preload" and not payload.messages:
            raise ApiError(422, "invalid_payload", "messages: send at least one message")
        idle = self.gw.stream_timeout()
        run_id = runs.find_chat_run(task_id, payload.chat_id)
        previous: str | None = None
        if run_id is not None:
            self._check_owner(task_id, payload.chat_id, run_id, principal)
            try:
                ended = runs.status(run_id).ended
            except RunNotFound:
                ended, run_id = True, None
            if run_id is not None and not ended:
                if payload.trigger == "preload":
                    return json_response({"runId": run_id}, 202)
                after = runs.tail_id(run_id)
                messages = payload.messages
                if payload.trigger == "submit-message":
                    messages = messages[-1:]
                try:
                    sent = runs.send(run_id, payload.model_copy(update={"messages": messages}))
                except (RunEnded, RunNotFound):
                    previous = run_id
                else:
                    return self._sent_response(run_id, after, sent, idle)
            elif run_id is not None:
                previous = run_id
        if previous is not None:
            payload = payload.model_copy(update={"continuation": True, "previous_run_id": previous})
        result = self._trigger(task_id, payload, principal)
        if payload.trigger == "preload":
            return json_response({"runId": result.run_id}, 202)
        return _ui_response(result.run_id, None, None, idle)

    @staticmethod
    def _sent_response(run_id: str, after: str, sent: runs.Sent, idle: float) -> Response:
        """The reply to a message sent to a live run: its turn as a UI message stream. A steered
        message is answered once it joined the streaming turn (the stream then starts at its
        ``steering-message`` chunk: the rest of that turn) or became a turn of its own; the
        ``X-Chatworker-Outcome`` header says which (and ``queued``/``interrupted`` otherwise)."""
        outcome = sent.outcome
        steered: str | None = None
        if outcome == "steering":
            outcome = runs.wait_steered(run_id, sent.input_id, idle)
            steered = sent.message_id if outcome != "turn" else None
        response = _ui_response(run_id, after, sent.input_id, idle, steered=steered)
        response.headers[OUTCOME_HEADER] = outcome
        return response

    def _trigger(
        self, task_id: str, payload: ChatWirePayload, principal: str | None
    ) -> runs.TriggerResult:
        claims = getattr(g, _CLAIMS, None)
        spent = spend_token(claims) if claims is not None else False
        try:
            return runs.trigger(task_id, payload, principal=principal)
        except BaseException:
            if spent and claims is not None:
                release_token(claims)
            raise

    def resume(self, task_id: str, chat_id: str) -> Response:
        _, principal = self._authorize(task_id)
        run_id = runs.find_chat_run(task_id, chat_id)
        if run_id is None:
            return _no_content()
        self._check_owner(task_id, chat_id, run_id, principal)
        try:
            info = runs.status(run_id)
        except RunNotFound:
            return _no_content()
        if info.ended or not info.is_streaming:
            return _no_content()
        start = info.turn_start_id or _last_turn_start(run_id)
        if start is None:
            return _no_content()
        after = previous_id(start)
        if after is not None:  # 410 stream_trimmed: the turn's start is gone, no replay
            streams.check_resume(get_redis(), run_id, after)
        return _ui_response(run_id, after, None, self.gw.stream_timeout(), replay=True)

    def follow(self, task_id: str, chat_id: str) -> Response:
        """Every turn of the chat as it happens, across its runs (:mod:`.follow`)."""
        _, principal = self._authorize(task_id)
        run_id = request.args.get("runId") or None
        after = last_event_id(request) if run_id is not None else None
        if run_id is not None:
            check_path_id("run", run_id)
            try:
                info = runs.status(run_id)
            except RunNotFound:
                run_id, after = None, None  # forgotten: follow whatever the chat runs now
            else:
                if (info.task_id, info.chat_id) != (task_id, chat_id):
                    raise ApiError(400, "bad_request",
                                   f"run {run_id!r} is not a run of chat {chat_id!r}")
        if run_id is None:
            run_id = runs.find_chat_run(task_id, chat_id)
            if run_id is not None:
                try:
                    after = start_position(run_id)
                except RunNotFound:
                    run_id = None
        if run_id is not None:
            self._check_owner(task_id, chat_id, run_id, principal)
            check_resume(run_id, after)

        def allowed(candidate: str) -> bool:
            try:
                self._check_owner(task_id, chat_id, candidate, principal)
            except ApiError:
                return False
            return True

        body = chat_follow_body(task_id, chat_id, run_id, after, self.gw.stream_timeout(), allowed)
        return Response(body, content_type="text/event-stream", headers=SSE_HEADERS)

    def stop(self, task_id: str, chat_id: str) -> Response:
        _, principal = self._authorize(task_id)
        body = self.gw.read_json(required=False)
        message = body.get("message") if isinstance(body, dict) else None
        if message is not None and not isinstance(message, str):
            raise ApiError(422, "invalid_payload", "`message` must be a string")
        run_id = runs.find_chat_run(task_id, chat_id)
        if run_id is None:
            raise RunNotFound(f"no run for chat {chat_id!r} of task {task_id!r}")
        self._check_owner(task_id, chat_id, run_id, principal)
        stopped = runs.stop(run_id, message)
        return json_response({"ok": True, "stopped": bool(stopped)}, 202)


def register_ui_routes(bp: Blueprint, gw: Gateway) -> None:
    """Add the ``/ui`` routes to the gateway blueprint."""
    ui = _UiRoutes(gw)
    # merge_slashes=False: no HTML redirect for `//` in an API path (see chat_blueprint).
    bp.add_url_rule("/ui/<task_id>", "ui_send", ui.send, methods=["POST"], merge_slashes=False)
    bp.add_url_rule("/ui/<task_id>/<path:chat_id>/stream", "ui_resume", ui.resume,
                    methods=["GET"], merge_slashes=False)
    bp.add_url_rule("/ui/<task_id>/<path:chat_id>/follow", "ui_follow", ui.follow,
                    methods=["GET"], merge_slashes=False)
    bp.add_url_rule("/ui/<task_id>/<path:chat_id>/stop", "ui_stop", ui.stop, methods=["POST"],
                    merge_slashes=False)
