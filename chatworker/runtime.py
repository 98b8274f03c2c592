"""The turn loop: how one chat run lives on a worker.

Read :meth:`ChatRun.live` top to bottom: a message enters in :meth:`ChatRun.next_message`
(``TAKE`` moves it from the run's inbox list), chunks leave in :meth:`ChatRun.turn` (through
:class:`~chatworker.capture.TurnOutput` to the Redis Stream), and the run sleeps in
:meth:`ChatRun.wait_or_suspend` (warm on a local event, then suspended: state in Redis, worker
slot freed, resumed on any worker by the next message).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import keys
from .accumulator import MessageAccumulator, generate_id
from .capture import TurnOutput
from .config import get_redis, parse_duration, stream_maxlen
from .context import (
    ChatRunContext,
    ChatStartEvent,
    PreloadEvent,
    TurnCompleteEvent,
    TurnStartEvent,
)
from .convert import cleanup_aborted_parts
from .errors import AbortError
from .mailbox import LocalRun, get_mailbox
from .payload import ChatWirePayload, parse_client_data
from .signals import AbortController, AbortSignal
from .state import now_ms, scripts, split_item
from .streams import OutputStream
from .tokens import create_run_token

if TYPE_CHECKING:
    from .task import ChatTask

log = logging.getLogger("chatworker.run")

DEFER_CAP_SECONDS = 5.0


class RunCanceled(Exception):
    """The run was canceled (or lost its lease): end it without another turn."""


@dataclass
class TurnScope:
    """What ``chat.pipe`` and friends find while a turn runs (a context variable)."""

    run: ChatRun
    context: ChatRunContext
    output: TurnOutput
    stop: AbortController
    pipes: int = 0
    stream_options: dict[str, Any] = field(default_factory=dict)
    deferred: list[Any] = field(default_factory=list)


current_scope: contextvars.ContextVar[TurnScope | None] = contextvars.ContextVar(
    "chatworker_turn", default=None
)


def execute(task: ChatTask, run_id: str) -> None:
    """Celery entry point: own the run, then loop over turns until it suspends or ends."""
    mailbox = get_mailbox()
    verdict, local = mailbox.claim(run_id)
    if local is None:
        log.info("run %s: not started here (%s)", run_id, verdict)
        return
    try:
        ChatRun(task, run_id, local).live()
    finally:
        mailbox.release(run_id)


class ChatRun:
    """One run on this worker: its conversation, its timeouts and its Redis state."""

    def __init__(self, task: ChatTask, run_id: str, local: LocalRun) -> None:
        self.task = task
        self.run_id = run_id
        self.local = local
        self.redis = get_redis()
        self.scripts = scripts(self.redis)
        self.stream = OutputStream(self.redis, run_id)
        self.accumulator = MessageAccumulator()
        self.turn_number = 0
        self.warm_override: float | None = None
        self.turn_timeout_override: float | None = None
        self.locals: dict[str, Any] = {}
        self.preload_done = False

    # -- the life of a run -------------------------------------------------------------------
    def live(self) -> None:
        """Restore, (pre)load, then answer one message per turn until suspended or ended."""
        try:
            resumed = self.restore()
            log.info("run %s: %s on %s", self.run_id, "resumed" if resumed else "started",
                     get_mailbox().worker_id)
            item = None
            if self.initial.trigger == "preload" and not self.preload_done:
                item = self.preload()
                if item is None:
                    return
            while True:
                if item is None:
                    item = self.next_message(self.warm_seconds(), self.turn_timeout_seconds())
                if item is None:
                    return  # suspended (or ended) — the worker slot is free again
                self.turn(*item)
                item = None
                if self.turn_number >= self.task.max_turns:
                    self.end("completed", "max_turns")
                    return
        except RunCanceled as exc:
            self.end("canceled", str(exc) or "canceled")
        except Exception as exc:
            log.exception("run %s: failed in turn %s", self.run_id, self.turn_number)
            self.end("failed", f"{type(exc).__name__} in the chat task (see the worker log)")

    def restore(self) -> bool:
        """Load the run record and, when resuming, the checkpoint; True if it was resumed."""
        record = self.redis.hgetall(keys.run(self.run_id))
        self.chat_id = str(record.get("chat_id", ""))
        self.initial = ChatWirePayload.model_validate(json.loads(record["initial"]))
        self.continuation = record.get("continuation") == "1"
        self.previous_run_id = record.get("previous_run_id") or None
        self.preloaded = self.initial.trigger == "preload"
        raw = self.redis.get(keys.checkpoint(self.run_id))
        if not raw:
            return False
        state = json.loads(raw)
        self.turn_number = state["turn"]
        self.accumulator = MessageAccumulator.from_state(state["ui_messages"])
        self.warm_override = state.get("warm")
        self.turn_timeout_override = state.get("turn_timeout")
        self.locals = state.get("locals", {})
        self.preload_done = state.get("preload_done", False)
        return True

    def checkpoint(self) -> str:
        """The JSON a worker needs to resume this run (history, turn, overrides, locals)."""
        return json.dumps({
            "turn": self.turn_number,
            "ui_messages": self.accumulator.to_state(),
            "warm": self.warm_override,
            "turn_timeout": self.turn_timeout_override,
            "locals": self.locals,
            "preload_done": self.preload_done,
        })

    def preload(self) -> tuple[str, str, str] | None:
        """Run ``on_preload``, then wait for the first message with the preload timeouts."""
        token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        client_data = parse_client_data(self.task, self.initial.metadata)
        log.info("run %s: preloaded, waiting for the first message", self.run_id)
        call_hook(self.task.hooks["on_preload"],
                  PreloadEvent(self.chat_id, self.run_id, token, client_data))
        self.preload_done = True
        warm = self.initial.warm_timeout_in_seconds
        if warm is None:
            warm = self.task.preload_warm_timeout_in_seconds
        timeout = self.turn_timeout_override
        if timeout is None and self.task.preload_timeout is not None:
            timeout = parse_duration(self.task.preload_timeout)
        return self.next_message(self.warm_seconds() if warm is None else warm,
                                 self.turn_timeout_seconds() if timeout is None else timeout)

    # -- where a message enters, and where a run sleeps ----------------------------------------
    def next_message(self, warm: float, timeout: float) -> tuple[str, str, str] | None:
        """The next input ``(input_id, payload_json, stop_reason)``; None once suspended."""
        warmed = False
        while True:
            self.check_canceled()
            item = self.take()
            if item is not None:
                return item
            if not warmed and warm > 0:
                item = self.wait_warm(warm)
                if item is not None:
                    return item
                warmed = True
                continue
            if self.suspend(timeout):
                return None
            # A message arrived at the instant of suspending: take it and carry on.

    def take(self) -> tuple[str, str, str] | None:
        self.local.wake.clear()
        result = self.scripts.take(
            keys=[keys.run(self.run_id), keys.inbox(self.run_id), keys.processing(self.run_id),
                  keys.output(self.run_id)],
            args=[self.turn_number, now_ms(), stream_maxlen()],
        )
        if not result:
            return None
        input_id, payload = split_item(str(result[0]))
        return input_id, payload, str(result[1] or "")

    def wait_warm(self, seconds: float) -> tuple[str, str, str] | None:
        """Hold the worker slot up to ``seconds``, woken by the mailbox when a message comes."""
        log.info("run %s: waiting warm for %gs", self.run_id, seconds)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.local.wake.wait(remaining)
            self.check_canceled()
            item = self.take()
            if item is not None:
                return item
        return None

    def suspend(self, timeout: float) -> bool:
        """Checkpoint, then atomically suspend unless a message is waiting; frees the slot."""
        self.redis.set(keys.checkpoint(self.run_id), self.checkpoint())
        done = self.scripts.suspend(
            keys=[keys.run(self.run_id), keys.inbox(self.run_id), keys.DEADLINES,
                  keys.lease(self.run_id)],
            args=[self.local.token, now_ms() + int(timeout * 1000), now_ms(), self.run_id],
        )
        if done == -1:
            raise RunCanceled("lease lost")
        if done:
            log.info("run %s: suspended (turn timeout %gs)", self.run_id, timeout)
        return bool(done)

    def check_canceled(self) -> None:
        if self.local.cancel.signal.aborted:
            raise RunCanceled(str(self.local.cancel.signal.reason or "canceled"))

    # -- one turn: where chunks leave ---------------------------------------------------------
    def turn(self, input_id: str, raw_payload: str, stop_reason: str) -> None:
        """Accumulate → hooks → run → stream → marker → on_turn_complete."""
        payload = ChatWirePayload.model_validate_json(raw_payload)
        number = self.turn_number
        log.info("run %s: turn %d started (%s)", self.run_id, number, input_id)
        stop = AbortController()
        if stop_reason:
            stop.abort(stop_reason)
        self.local.stop, self.local.current_input, self.local.streaming = stop, input_id, True
        cancel_signal = self.local.cancel.signal
        signal = AbortSignal.any([cancel_signal, stop.signal])

        client_data = parse_client_data(self.task, payload.metadata)
        self.accumulator.add_incoming(payload.messages, payload.trigger, number)
        token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        context = ChatRunContext(
            messages=self.accumulator.model_messages, ui_messages=self.accumulator.ui_messages,
            chat_id=self.chat_id, run_id=self.run_id, turn=number, trigger=payload.trigger,
            message_id=payload.message_id, client_data=client_data,
            continuation=self.continuation, previous_run_id=self.previous_run_id,
            preloaded=self.preloaded, signal=signal, stop_signal=stop.signal,
            cancel_signal=cancel_signal, chat_access_token=token, extra=payload.extra,
        )
        output = TurnOutput(self.stream, self.response_id(payload))
        scope = TurnScope(self, context, output, stop, stream_options={})

        with activate(scope):
            if number == 0:
                call_hook(self.task.hooks["on_chat_start"], ChatStartEvent(
                    self.chat_id, context.messages, client_data, self.run_id, token,
                    self.continuation, self.previous_run_id, self.preloaded))
            call_hook(self.task.hooks["on_turn_start"], TurnStartEvent(
                self.chat_id, context.messages, context.ui_messages, number, self.run_id,
                token, self.continuation, self.preloaded, client_data))
            try:
                result = call(self.task.run_fn, context)
                if result is not None and scope.pipes == 0:
                    pipe_source(scope, result, signal)
            except AbortError:
                if not signal.aborted:
                    raise
        if cancel_signal.aborted:
            output.close(stopped=True)
            raise RunCanceled(str(cancel_signal.reason or "canceled"))

        stopped = stop.signal.aborted
        output.close(stopped)
        raw = output.response
        response = cleanup_aborted_parts(raw) if stopped and raw is not None else raw
        if response is not None:
            self.accumulator.add_response(response)
        self.turn_number = number + 1
        marker_id = self.write_turn_complete(number, input_id, stopped, token)
        self.local.streaming = False
        log.info("run %s: turn %d complete%s", self.run_id, number, " (stopped)" if stopped else "")

        run_deferred(scope.deferred)
        call_hook(self.task.hooks["on_turn_complete"], TurnCompleteEvent(
            self.chat_id, self.accumulator.model_messages, self.accumulator.ui_messages,
            self.accumulator.new_model_messages, self.accumulator.new_ui_messages, response,
            raw, number, self.run_id, token, marker_id, stopped, self.continuation, client_data))
        self.redis.hset(keys.run(self.run_id), mapping={"status": "waiting",
                                                        "updated_at": now_ms()})

    def response_id(self, payload: ChatWirePayload) -> str:
        """The response continues the last message when that is the assistant's (tool results)."""
        last = payload.messages[-1] if payload.messages else None
        if last is not None and last.role == "assistant" and last.id:
            return last.id
        return generate_id()

    def write_turn_complete(self, number: int, input_id: str, stopped: bool, token: str) -> str:
        """Write ``__turn_complete`` and the checkpoint in one transaction; return the marker id."""
        marker: dict[str, Any] = {"type": "__turn_complete", "turn": number, "stopped": stopped}
        if input_id != "i0":
            marker["inputId"] = input_id
        marker["publicAccessToken"] = token
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(keys.output(self.run_id), {"c": json.dumps(marker, separators=(",", ":"))},
                  maxlen=stream_maxlen(), approximate=True)
        pipe.set(keys.checkpoint(self.run_id), self.checkpoint())
        pipe.delete(keys.processing(self.run_id))
        pipe.hset(keys.run(self.run_id), mapping={"is_streaming": 0, "updated_at": now_ms()})
        marker_id = str(pipe.execute()[0])
        self.redis.hset(keys.run(self.run_id), "last_event_id", marker_id)
        return marker_id

    # -- timeouts ------------------------------------------------------------------------------
    def warm_seconds(self) -> float:
        if self.warm_override is not None:
            return self.warm_override
        return float(self.task.warm_timeout_in_seconds)

    def turn_timeout_seconds(self) -> float:
        if self.turn_timeout_override is not None:
            return self.turn_timeout_override
        return parse_duration(self.task.turn_timeout)

    def end(self, status: str, reason: str) -> None:
        """Finish the run: ``__run_end`` on the stream, lease released, keys set to expire."""
        from .config import retention_seconds

        self.scripts.end(
            keys=[keys.run(self.run_id), keys.lease(self.run_id), keys.output(self.run_id),
                  keys.DEADLINES, keys.RESUMING],
            args=[status, reason, now_ms(), stream_maxlen(), self.local.token, self.run_id],
        )
        ttl = int(retention_seconds())
        pipe = self.redis.pipeline(transaction=False)
        for key in (keys.run(self.run_id), keys.output(self.run_id), keys.inbox(self.run_id),
                    keys.processing(self.run_id), keys.checkpoint(self.run_id)):
            pipe.expire(key, ttl)
        pipe.execute()
        log.info("run %s: %s (%s)", self.run_id, status, reason)


# -- helpers shared with chat.* --------------------------------------------------------------
@contextmanager
def activate(scope: TurnScope) -> Iterator[TurnScope]:
    token = current_scope.set(scope)
    try:
        yield scope
    finally:
        current_scope.reset(token)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or ``async def`` function and return its result."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def call_hook(hook: Callable[[Any], Any] | None, event: Any) -> None:
    if hook is not None:
        call(hook, event)


def pipe_source(scope: TurnScope, source: Any, signal: AbortSignal | None = None) -> None:
    """Stream ``source`` (a stream-text result or an iterable of chunks) into the turn."""
    scope.pipes += 1
    signal = signal or scope.context.signal
    if hasattr(source, "to_ui_message_stream"):
        options = {**scope.run.task.ui_message_stream_options, **scope.stream_options}
        scope.stream_options = {}
        chunks = source.to_ui_message_stream(message_id=scope.output.message_id, **options)
    elif hasattr(source, "__aiter__"):
        chunks = iter(asyncio.run(_collect(source)))
    elif hasattr(source, "__iter__") and not isinstance(source, str | bytes | dict):
        chunks = iter(source)
    else:
        raise TypeError(
            f"chat.pipe needs a stream_text result or an iterable of chunks, not {type(source)!r}"
        )
    try:
        for chunk in chunks:
            scope.output.write(chunk)
            if signal.aborted:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def _collect(source: Any) -> list[Any]:
    return [chunk async for chunk in source]


def run_deferred(work: list[Any]) -> None:
    """Wait for ``chat.defer`` work, at most 5 s in all; failures are logged, not raised."""
    if not work:
        return
    deadline = time.monotonic() + DEFER_CAP_SECONDS
    for item in work:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            if hasattr(item, "join"):
                item.join(remaining)
            elif hasattr(item, "result"):
                item.result(timeout=remaining)
        except Exception:
            log.exception("deferred work failed")
