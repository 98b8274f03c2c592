"""An async generator of UI chunks read as a sync iterator, as ``to_ui_message_stream`` must be:
on the run's event loop in a chat run, on a loop of its own elsewhere."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from ..loops import RunLoop, ensure_greenlet_local_loops, run_loop, run_sync, running_loop

__all__ = ["sync_chunks"]

log = logging.getLogger("chatworker.integrations")


def sync_chunks(chunks: AsyncGenerator[dict[str, Any], None],
                stop: Callable[[], None]) -> Iterator[dict[str, Any]]:
    """``chunks`` one by one, produced as they are read; ``stop`` ends the producer's run when
    the reader closes early while the chunks are made on another thread (or greenlet)."""
    if running_loop() is not None:
        # Sync code called from async code (``await chat.pipe(...)``): a loop runs here.
        return _on_own_loop(chunks, stop)
    # In a run: its loop. Outside one (a script, a test): a loop of the stream's own.
    private = RunLoop() if run_loop() is None else None
    return _driven(chunks, private.run if private is not None else run_sync, private)


def _driven(chunks: AsyncGenerator[dict[str, Any], None], drive: Callable[[Any], Any],
            private: RunLoop | None) -> Iterator[dict[str, Any]]:
    """``chunks`` one by one, each step run to completion by ``drive`` on one loop."""
    try:
        while True:
            try:
                yield drive(chunks.__anext__())
            except StopAsyncIteration:
                return
    finally:
        try:
            drive(chunks.aclose())
        finally:
            if private is not None:
                private.close()


def _on_own_loop(chunks: AsyncGenerator[dict[str, Any], None],
                 stop: Callable[[], None]) -> Iterator[dict[str, Any]]:
    """``chunks`` produced on a loop of their own in a helper greenlet (a thread without
    gevent), handed over as they come; closing this early stops the agent run."""
    ensure_greenlet_local_loops()
    gevent_active = _gevent_active()
    handoff: Any
    if gevent_active:
        import gevent.queue

        handoff = gevent.queue.Queue()
    else:
        handoff = queue.Queue()
    done = object()

    async def pump() -> None:
        try:
            async for chunk in chunks:
                handoff.put(chunk)
        finally:
            await chunks.aclose()

    def produce() -> None:
        try:
            asyncio.run(pump())
        except BaseException:
            log.exception("the agent stream failed")
        finally:
            handoff.put(done)

    context = contextvars.copy_context()
    if gevent_active:
        import gevent

        gevent.spawn(context.run, produce)
    else:
        threading.Thread(target=context.run, args=(produce,), name="chatworker-agent",
                         daemon=True).start()
    finished = False
    try:
        while True:
            item = handoff.get()
            if item is done:
                finished = True
                return
            yield item
    finally:
        if not finished:
            stop()


def _gevent_active() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))
