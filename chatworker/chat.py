"""The ``chat`` namespace: define chat tasks and act on the turn in progress.

``from chatworker import chat`` then ``@chat.task(id=...)``, and inside a run ``chat.pipe(...)``,
``chat.is_stopped()``, ``chat.set_turn_timeout(...)`` and friends. Functions that act on "the
current turn" find it through a context variable, so they work from nested calls too.
"""

from __future__ import annotations

from typing import Any

from .config import Duration, parse_duration
from .engine.chat_task import ChatTask
from .engine.driver import RunDriver, current_run
from .engine.hand_driven import HandDrivenRun
from .engine.locals import ChatLocal, local
from .engine.raw import (
    StopSignal,
    WaitResult,
    create_stop_signal,
    messages,
    pipe_and_capture,
    write_turn_complete,
)
from .engine.sessions import ChatSession, ChatTurn, create_session
from .engine.stream_options import normalize_stream_options
from .engine.task_calls import TaskToolError
from .engine.task_context import TaskCall, current_task_call
from .engine.turns import (
    TurnScope,
    current_driver,
    current_scope,
    now_or_task,
    pipe_source,
    pipe_source_async,
    start_deferred,
)
from .protocol.accumulator import MessageAccumulator
from .protocol.convert import cleanup_aborted_parts
from .signals import AbortSignal
from .store.task_calls import CallClosed
from .tokens import create_trigger_token

__all__ = [
    "CallClosed",
    "ChatLocal",
    "ChatSession",
    "ChatTask",
    "ChatTurn",
    "MessageAccumulator",
    "StopSignal",
    "StreamWriter",
    "TaskCall",
    "TaskToolError",
    "WaitResult",
    "cleanup_aborted_parts",
    "create_access_token",
    "create_session",
    "create_stop_signal",
    "defer",
    "is_stopped",
    "local",
    "messages",
    "pipe",
    "pipe_and_capture",
    "set_max_duration",
    "set_turn_timeout",
    "set_turn_timeout_in_seconds",
    "set_ui_message_stream_options",
    "set_warm_timeout_in_seconds",
    "stream",
    "task",
    "task_call",
    "write_turn_complete",
]


def task(id: str, run: Any = None, **options: Any) -> ChatTask:
    """Define a chat task: ``@chat.task(id="my-chat")`` on the run function, or pass ``run=``.

    Options and hooks are those of :class:`~chatworker.engine.chat_task.ChatTask`.
    """
    return ChatTask(id, run, **options)


def _driver(what: str) -> RunDriver:
    return current_run(f"chat.{what}()")


def _turn_scope(what: str) -> TurnScope:
    scope = current_scope.get()
    if scope is None:
        driver = current_driver.get()
        if not isinstance(driver, HandDrivenRun):
            raise RuntimeError(f"chat.{what}() works only while a turn is being answered")
        scope = driver.ensure_scope()
    return scope


def pipe(source: Any, *, signal: AbortSignal | None = None) -> Any:
    """Stream ``source`` (a ``stream_text`` result, an iterable or async iterable of chunks) to
    the chat.

    Works from anywhere inside a run; what it pipes is part of the captured response. In sync
    code it pipes now and returns None; in ``async def`` code it returns a task to ``await``
    (it starts at once, and the turn waits for it even if it is never awaited).
    """
    scope = _turn_scope("pipe")
    return now_or_task(scope, lambda: pipe_source(scope, source, signal),
                       lambda: pipe_source_async(scope, source, signal))


def is_stopped() -> bool:
    """True once the user stopped the current turn (until the next turn starts).

    Inside a task a task tool sent: True once the calling turn no longer waits for it.
    """
    scope = current_scope.get()
    if scope is None:
        call = current_task_call()
        return call is not None and call.is_cancelled()
    return scope.stop.signal.aborted


def task_call() -> TaskCall | None:
    """Inside a Celery task sent by a task tool: the call it answers (``write_data``,
    ``is_cancelled``), to hand to threads; None elsewhere."""
    return current_task_call()


def set_turn_timeout(duration: Duration) -> None:
    """How long this run stays suspended waiting for a message, from now on."""
    _driver("set_turn_timeout").turn_timeout_override = parse_duration(duration)


def set_max_duration(duration: Duration | None) -> None:
    """Cap the time this run holds a worker (streaming or warm, over all resumes; suspended
    time does not count), counted from its start; ``None`` (or 0) removes the cap. Past it the run's
    ``cancel_signal`` fires and it ends canceled with reason ``max_duration``."""
    seconds = None if duration is None else parse_duration(duration)
    _driver("set_max_duration").set_max_duration(seconds)


def set_turn_timeout_in_seconds(seconds: float) -> None:
    """:func:`set_turn_timeout` in seconds."""
    set_turn_timeout(seconds)


def set_warm_timeout_in_seconds(seconds: float) -> None:
    """How long this run stays warm (holding its worker slot) after each turn, from now on."""
    _driver("set_warm_timeout_in_seconds").warm_override = parse_duration(seconds)


def set_ui_message_stream_options(**options: Any) -> None:
    """Per-turn ``on_error`` / ``send_reasoning`` / ``send_sources``, merged over the task's."""
    scope = _turn_scope("set_ui_message_stream_options")
    scope.stream_options = {**scope.stream_options, **normalize_stream_options(options)}


def create_access_token(
    task_id: str, ttl: Duration = "24h", multiple_use: bool = False, subject: str | None = None
) -> str:
    """A trigger token for ``task_id`` (scope ``trigger:tasks:<id>``), one-time by default.

    ``subject`` names its holder (your user id): the runs and ``/ui`` chats it starts are that
    user's, reachable with any token of the same subject.
    """
    return create_trigger_token(task_id, ttl=ttl, multiple_use=multiple_use, subject=subject)


class StreamWriter:
    """Writes chunks into one turn's output, from any thread or greenlet."""

    def __init__(self, scope: TurnScope) -> None:
        self.scope = scope

    def write(self, chunk: Any) -> None:
        """Send a UI message chunk; ``data-*`` parts become part of the response."""
        self.scope.output.write(chunk)

    def write_data(self, name: str, data: Any, *, id: str | None = None,
                   transient: bool = False) -> None:
        """Send a ``data-<name>`` part; the same name and id again replaces it on the client.

        ``transient`` parts reach the client's ``onData`` but are not kept in the message.
        """
        chunk: dict[str, Any] = {"type": f"data-{name}", "data": data}
        if id is not None:
            chunk["id"] = id
        if transient:
            chunk["transient"] = True
        self.write(chunk)


class _ChatStream:
    """``chat.stream``: write custom chunks into the turn being answered."""

    def writer(self) -> StreamWriter | TaskCall:
        """A writer bound to the current turn (hand it to threads, tools, subtasks).

        Inside a task a task tool sent, it writes ``data-*`` parts into the calling turn.
        """
        if current_scope.get() is None:
            call = current_task_call()
            if call is not None:
                return call
        return StreamWriter(_turn_scope("stream.writer"))

    def append(self, chunk: Any) -> None:
        """Write one chunk into the current turn."""
        self.writer().write(chunk)

    def write_data(self, name: str, data: Any, *, id: str | None = None,
                   transient: bool = False) -> None:
        """Write a ``data-<name>`` part into the current turn (see ``StreamWriter.write_data``)."""
        self.writer().write_data(name, data, id=id, transient=transient)


stream = _ChatStream()


def defer(work: Any) -> None:
    """Let ``work`` (a thread, greenlet or future) finish after the turn marker and before
    ``on_turn_complete``, waiting at most 5 s. Ignored outside a turn."""
    scope = current_scope.get()
    if scope is not None:
        scope.deferred.append(start_deferred(work))
