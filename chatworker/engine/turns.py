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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..signals import AbortController, AbortSignal
from ..types import Driver
from .capture import TurnOutput

log = logging.getLogger("chatworker.turns")

DEFER_CAP_SECONDS = 5.0


@dataclass
class TurnScope:
    """One turn's output, stop controller, pipe count, per-turn options and deferred work."""

    driver: Driver
    input_id: str
    output: TurnOutput
    stop: AbortController
    signal: AbortSignal
    pipes: int = 0
    stream_options: dict[str, Any] = field(default_factory=dict)
    deferred: list[Any] = field(default_factory=list)


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
    if scope is not None:
        tokens.append((current_scope, current_scope.set(scope)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


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


def _iterate_async(source: Any) -> Iterator[Any]:
    """Drive an async iterator chunk by chunk on a private event loop (so it still streams)."""
    loop = asyncio.new_event_loop()
    iterator = source.__aiter__()
    try:
        while True:
            try:
                yield loop.run_until_complete(iterator.__anext__())
            except StopAsyncIteration:
                return
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            try:
                loop.run_until_complete(closer())
            except Exception:
                log.debug("closing an async chunk source failed", exc_info=True)
        loop.close()


def chunks_of(scope: TurnScope, source: Any) -> Iterator[Any]:
    """The UI message chunks of ``source``: a stream-text result, an (async) iterable of chunks."""
    if hasattr(source, "to_ui_message_stream"):
        options = {**scope.driver.stream_defaults(), **scope.stream_options}
        scope.stream_options = {}
        return iter(source.to_ui_message_stream(message_id=scope.output.message_id, **options))
    if hasattr(source, "__aiter__"):
        return _iterate_async(source)
    if hasattr(source, "__iter__") and not isinstance(source, str | bytes | dict):
        return iter(source)
    raise TypeError(
        f"chat.pipe needs a stream_text result or an iterable of chunks, not {type(source)!r}"
    )


def pipe_source(scope: TurnScope, source: Any, signal: AbortSignal | None = None) -> None:
    """Stream ``source`` into the turn's output, stopping early when ``signal`` fires."""
    scope.pipes += 1
    signal = signal or scope.signal
    chunks = chunks_of(scope, source)
    # The turn is current while its source runs and closes, so a stream_text on_finish (run on
    # the close after a stop) sees chat.is_stopped() at every level, hand-driven ones too.
    with activate(scope if current_scope.get() is not scope else None):
        try:
            for chunk in chunks:
                scope.output.write(chunk)
                if signal.aborted:
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


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
            elif hasattr(item, "result"):
                item.result(timeout=remaining)
            elif inspect.isawaitable(item):
                asyncio.run(asyncio.wait_for(_await(item), remaining))
        except Exception:
            log.exception("deferred work failed")
    if time.monotonic() >= deadline:
        log.warning("deferred work still running after %.0fs; continuing", DEFER_CAP_SECONDS)
