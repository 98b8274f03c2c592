"""The ``chat`` namespace: define chat tasks and act on the turn in progress.

``from chatworker import chat`` then ``@chat.task(id=...)``, and inside a run ``chat.pipe(...)``,
``chat.is_stopped()``, ``chat.set_turn_timeout(...)`` and friends. Functions that act on "the
current turn" find it through a context variable, so they work from nested calls too.
"""

from __future__ import annotations

from typing import Any

from .accumulator import MessageAccumulator
from .config import Duration, parse_duration
from .convert import cleanup_aborted_parts
from .runtime import TurnScope, current_scope, pipe_source
from .signals import AbortSignal
from .task import ChatTask
from .tokens import create_trigger_token

__all__ = [
    "ChatTask",
    "MessageAccumulator",
    "cleanup_aborted_parts",
    "create_access_token",
    "defer",
    "is_stopped",
    "pipe",
    "set_turn_timeout",
    "set_ui_message_stream_options",
    "set_warm_timeout_in_seconds",
    "task",
]


def task(id: str, run: Any = None, **options: Any) -> ChatTask:
    """Define a chat task: ``@chat.task(id="my-chat")`` on the run function, or pass ``run=``.

    Options and hooks are those of :class:`~chatworker.task.ChatTask`.
    """
    return ChatTask(id, run, **options)


def _scope(what: str) -> TurnScope:
    scope = current_scope.get()
    if scope is None:
        raise RuntimeError(f"chat.{what}() works only inside a chat run (in run or its hooks)")
    return scope


def pipe(source: Any, *, signal: AbortSignal | None = None) -> None:
    """Stream ``source`` (a ``stream_text`` result or an iterable of chunks) to the chat.

    Works from anywhere inside a run; what it pipes is part of the captured response.
    """
    pipe_source(_scope("pipe"), source, signal)


def is_stopped() -> bool:
    """True once the user stopped the current turn (until the next turn starts)."""
    scope = current_scope.get()
    return bool(scope is not None and scope.stop.signal.aborted)


def set_turn_timeout(duration: Duration) -> None:
    """How long this run stays suspended waiting for a message, from now on."""
    _scope("set_turn_timeout").run.turn_timeout_override = parse_duration(duration)


def set_turn_timeout_in_seconds(seconds: float) -> None:
    """:func:`set_turn_timeout` in seconds."""
    set_turn_timeout(seconds)


def set_warm_timeout_in_seconds(seconds: float) -> None:
    """How long this run stays warm (holding its worker slot) after each turn, from now on."""
    _scope("set_warm_timeout_in_seconds").run.warm_override = parse_duration(seconds)


def set_ui_message_stream_options(**options: Any) -> None:
    """Per-turn ``on_error`` / ``send_reasoning`` / ``send_sources``, merged over the task's."""
    from .task import _stream_options

    scope = _scope("set_ui_message_stream_options")
    scope.stream_options = {**scope.stream_options, **_stream_options(options)}


def create_access_token(task_id: str, ttl: Duration = "24h", multiple_use: bool = False) -> str:
    """A trigger token for ``task_id`` (scope ``trigger:tasks:<id>``), one-time by default."""
    return create_trigger_token(task_id, ttl=ttl, multiple_use=multiple_use)


def defer(work: Any) -> None:
    """Let ``work`` (a thread, greenlet or future) finish after the turn marker and before
    ``on_turn_complete``, waiting at most 5 s. Ignored outside a turn."""
    scope = current_scope.get()
    if scope is not None:
        scope.deferred.append(work)
