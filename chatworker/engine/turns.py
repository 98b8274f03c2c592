"""The turn in progress: what ``chat.pipe`` and friends act on, found through a context variable.

Chat tasks, sessions, raw primitives and manual tasks all open a :class:`TurnScope` for the input
they are answering, so the same ``chat.*`` calls work at every level and from nested calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import tracing
from ..ai.approvals import current_tool_journal
from ..ai.steering import SteeringSource, current_steering
from ..loops import run_sync, running_loop
from ..signals import AbortController, AbortSignal
from ..types import Driver
from .capture import TurnOutput

log = logging.getLogger("chatworker.turns")

DEFER_CAP_SECONDS = 5.0

T = TypeVar("T")


@dataclass
class TurnScope:
    """One turn's output, stop controller, pipe count, per-turn options, deferred work and the
    tasks async code started for it (``chat.pipe`` and friends awaited or not)."""

    driver: Driver
    input_id: str
    output: TurnOutput
    stop: AbortController
    signal: AbortSignal
    pipes: int = 0
    stream_options: dict[str, Any] = field(default_factory=dict)
    deferred: list[Any] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    steering: SteeringSource | None = None  # messages steered into this turn


current_scope: contextvars.ContextVar[TurnScope | None] = contextvars.ContextVar(
    "chatworker_turn", default=None
)
current_driver: contextvars.ContextVar[Driver | None] = contextvars.ContextVar(
    "chatworker_run", default=None
)


@contextmanager
def activate(scope: TurnScope | None = None, driver: Driver | None = None) -> Iterator[None]:
    """Make ``scope`` (and/or ``driver``) current for the code inside the block."""
    tokens: list[tuple[Any, Any]] = []
    if driver is not None:
        tokens.append((current_driver, current_driver.set(driver)))
        # stream_text records executed approved tool calls here (see chatworker.ai.approvals)
        journal = getattr(driver, "tool_journal", None)
        if journal is not None:
            tokens.append((current_tool_journal, current_tool_journal.set(journal)))
    if scope is not None:
        tokens.append((current_scope, current_scope.set(scope)))
        tokens.append((current_steering, current_steering.set(scope.steering)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or ``async def`` function and return its result (awaited on the run's loop)."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return run_sync(result)
    return result


def call_hook(hook: Callable[[Any], Any] | None, event: Any) -> None:
    if hook is not None:
        with tracing.span("chatworker.hook", {"chatworker.hook": type(event).__name__,
                                              "code.function": getattr(hook, "__name__", "")}):
            call(hook, event)


def _iterate_async(source: Any) -> Iterator[Any]:
    """Drive an async iterator chunk by chunk from sync code, on the run's loop (so it streams)."""
    iterator = source.__aiter__()
    try:
        while True:
            try:
                yield run_sync(iterator.__anext__())
            except StopAsyncIteration:
                return
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            try:
                run_sync(closer())
            except Exception:
                log.debug("closing an async chunk source failed", exc_info=True)


def chunks_of(scope: TurnScope, source: Any) -> Iterator[Any]:
    """The UI message chunks of ``source``: a stream-text result, an (async) iterable of chunks."""
    if hasattr(source, "to_ui_message_stream"):
        # Per-turn options hold for every pipe of the turn (the scope is the turn's).
        options = {**scope.driver.stream_defaults(), **scope.stream_options}
        return iter(source.to_ui_message_stream(message_id=scope.output.message_id, **options))
    if hasattr(source, "__aiter__"):
        return _iterate_async(source)
    if hasattr(source, "__iter__") and not isinstance(source, str | bytes | dict):
        return iter(source)
    raise TypeError(
        f"chat.pipe needs a stream_text result or an iterable of chunks, not {type(source)!r}"
    )


def pipe_source(scope: TurnScope, source: Any, signal: AbortSignal | None = None) -> None:
    """Stream ``source`` into the turn's output, stopping when ``signal`` fires: nothing the
    source yields after that is written."""
    scope.pipes += 1
    signal = signal or scope.signal
    if signal.aborted:
        return
    chunks = chunks_of(scope, source)
    # The turn is current while its source runs and closes, so a stream_text on_finish (run on
    # the close after a stop) sees chat.is_stopped() at every level, hand-driven ones too.
    with activate(scope if current_scope.get() is not scope else None):
        try:
            for chunk in chunks:
                if signal.aborted:
                    break
                scope.output.write(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


async def pipe_source_async(scope: TurnScope, source: Any, signal: AbortSignal | None) -> None:
    """:func:`pipe_source` on the running loop: async sources are consumed with ``async for``
    (other sources are iterated here, blocking only this run's loop)."""
    signal = signal or scope.signal
    if signal.aborted or not hasattr(source, "__aiter__") or hasattr(
        source, "to_ui_message_stream"
    ):
        pipe_source(scope, source, signal)
        return
    scope.pipes += 1
    iterator = source.__aiter__()
    try:
        async for chunk in iterator:
            if signal.aborted:
                break
            scope.output.write(chunk)
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()


def now_or_task(
    scope: TurnScope | None,
    work: Callable[[], T],
    async_work: Callable[[], Coroutine[Any, Any, T]],
) -> Any:
    """The sync/async rule of every ``chat.*`` call: in sync code do ``work`` now and return its
    value; while a loop runs in this greenlet (async code) start ``async_work`` at once as a
    task of that loop, after the turn's earlier tasks, and return the task to await. The turn
    waits for its tasks before closing, so a forgotten ``await`` still does the work."""
    loop = running_loop()
    if loop is None:
        return work()
    earlier = list(scope.tasks) if scope is not None else []

    async def in_order() -> T:
        if earlier:
            await asyncio.wait(earlier)
        return await async_work()

    task = loop.create_task(in_order())
    if scope is not None:
        scope.tasks.append(task)
    return task


def outstanding(scope: TurnScope) -> list[asyncio.Task[Any]]:
    """The turn's tasks still running, apart from the one asking."""
    try:
        me = asyncio.current_task()
    except RuntimeError:
        me = None
    return [task for task in scope.tasks
            if not task.done() and task is not me and not task.get_loop().is_closed()]


def drop(scope: TurnScope) -> None:
    """The turn ended early (an error, a stop): cancel what its async code left running."""
    for task in scope.tasks:
        if not task.done() and not task.get_loop().is_closed():
            task.cancel()


async def settle_async(scope: TurnScope) -> None:
    """Await the turn's outstanding tasks (from async code about to close the turn)."""
    tasks = outstanding(scope)
    if tasks:
        await asyncio.gather(*tasks)


def settle(scope: TurnScope) -> None:
    """From sync code closing the turn: finish its outstanding tasks on the run's loop; their
    failures are the turn's. (Called from inside a coroutine, the async form settled already.)"""
    if running_loop() is not None:
        return
    tasks = outstanding(scope)
    if tasks:
        run_sync(_gather(tasks))


async def _gather(tasks: list[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks)


def start_deferred(work: Any) -> Any:
    """A callable becomes a background thread (a greenlet under gevent); others pass through."""
    if callable(work) and not hasattr(work, "join") and not hasattr(work, "result"):
        thread = threading.Thread(target=lambda: call(work), daemon=True, name="chat.defer")
        thread.start()
        return thread
    return work


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
            elif hasattr(item, "result") and not isinstance(item, asyncio.Future):
                item.result(timeout=remaining)
            elif inspect.isawaitable(item):
                run_sync(asyncio.wait_for(_awaited(item), remaining))
        except Exception:
            log.exception("deferred work failed")
    if time.monotonic() >= deadline:
        log.warning("deferred work still running after %.0fs; continuing", DEFER_CAP_SECONDS)


async def run_deferred_async(work: list[Any]) -> None:
    """:func:`run_deferred` from async code: awaitables are awaited on the running loop, the
    rest (threads, futures) waited for as in sync code; the list is emptied."""
    deadline = time.monotonic() + DEFER_CAP_SECONDS
    items, work[:] = list(work), []
    for item in items:
        if inspect.isawaitable(item):
            try:
                await asyncio.wait_for(_awaited(item), max(0.0, deadline - time.monotonic()))
            except Exception:
                log.exception("deferred work failed")
        else:
            work.append(item)
    run_deferred(work)
    work.clear()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
