"""Where ``async def`` code runs: one event loop per run, and the bridge from sync code to it.

A run's async code (its run function, hooks, async chunk sources, async tools, deferred
awaitables) runs on the run's own event loop: created the first time the run needs one, kept
while the run lives on this worker, closed when the run leaves it (suspended or ended). Sync
code that must run an awaitable calls :func:`run_sync`:

- no loop is running in this greenlet (or thread): it runs on the run's loop (a private loop
  outside a run);
- a loop is already running here (sync code called from inside a coroutine): it runs to
  completion on a fresh loop in a helper greenlet (a helper thread without gevent), and the
  caller waits for it.

Under gevent every run is a greenlet of one OS thread, while asyncio keeps its "running loop"
per OS thread. :func:`ensure_greenlet_local_loops` installs (once, lazily) a greenlet tracer
that saves and restores the running loop on every greenlet switch, so each greenlet sees only
its own loop and several runs' loops interleave in one process.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "RunLoop",
    "ensure_greenlet_local_loops",
    "owned_loop",
    "run_loop",
    "run_sync",
    "running_loop",
]


# -- the greenlet tracer ------------------------------------------------------------------------
_traced_threads: set[int] = set()
_trace_lock = threading.Lock()


def _gevent_active() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def ensure_greenlet_local_loops() -> None:
    """Make asyncio's running loop greenlet-local in this OS thread (a no-op without gevent).

    Installed once per thread, the first time async code runs; any tracer installed before
    keeps being called.
    """
    if not _gevent_active():
        return
    import gevent.monkey

    # The OS thread's id: gevent's patched get_ident names the greenlet instead.
    ident = gevent.monkey.get_original("threading", "get_ident")()
    if ident in _traced_threads:
        return
    with _trace_lock:
        if ident in _traced_threads:
            return
        import greenlet

        saved: weakref.WeakKeyDictionary[Any, asyncio.AbstractEventLoop] = (
            weakref.WeakKeyDictionary()
        )
        previous: Any = None

        def trace(event: str, args: Any) -> None:
            if event in ("switch", "throw"):
                origin, target = args
                loop = asyncio.events._get_running_loop()
                if loop is not None:
                    saved[origin] = loop
                else:
                    saved.pop(origin, None)
                wanted = saved.get(target)
                if wanted is not loop:  # most switches are between greenlets with no loop
                    asyncio.events._set_running_loop(wanted)
            if previous is not None:
                previous(event, args)

        previous = greenlet.settrace(trace)
        _traced_threads.add(ident)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this greenlet (or thread), if any: async code is calling."""
    return asyncio.events._get_running_loop()


# -- the run's loop -------------------------------------------------------------------------------
class RunLoop:
    """A run's event loop: created on first use, closed by :meth:`close`."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion on this loop (no loop may be running here)."""
        ensure_greenlet_local_loops()
        return self.loop.run_until_complete(_awaited(awaitable))

    def close(self) -> None:
        """Cancel what is left on the loop and close it (a no-op if it was never used)."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


_current: contextvars.ContextVar[RunLoop | None] = contextvars.ContextVar(
    "chatworker_loop", default=None
)


def run_loop() -> RunLoop | None:
    """The loop of the run executing here, if any."""
    return _current.get()


@contextmanager
def owned_loop() -> Iterator[RunLoop]:
    """Give the code inside the block (one run on this worker) its own loop, closed after."""
    owner = RunLoop()
    token = _current.set(owner)
    try:
        yield owner
    finally:
        _current.reset(token)
        owner.close()


# -- the bridge -----------------------------------------------------------------------------------
async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _to_the_end(awaitable: Awaitable[T]) -> T:
    """``awaitable``, then whatever it started on this (helper) loop and did not await."""
    result = await awaitable
    me = asyncio.current_task()
    started = [task for task in asyncio.all_tasks() if task is not me]
    if started:
        await asyncio.gather(*started)
    return result


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` from sync code and return its result (see the module docstring)."""
    ensure_greenlet_local_loops()
    if running_loop() is not None:
        return _on_helper(lambda: asyncio.run(_to_the_end(awaitable)))
    owner = _current.get()
    if owner is None:
        return asyncio.run(_awaited(awaitable))
    return owner.run(awaitable)


def _on_helper(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a helper greenlet (or thread) with this context's variables, and wait."""
    context = contextvars.copy_context()
    if _gevent_active():
        import gevent

        result: T = gevent.spawn(context.run, fn).get()
        return result
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="chatworker-async", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value

