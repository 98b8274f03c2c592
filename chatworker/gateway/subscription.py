"""A subscription: one client's view of one run's output stream, fed by the hub.

It catches up with ``XRANGE`` on the shared non-blocking client, joins the hub's live fan-out,
reads the gap between the two, then takes entries from a bounded mailbox the hub fills with the
entries published to the stream: every entry once, in order. See :mod:`chatworker.gateway.hub`
for the other side.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from ..config import get_redis
from ..store import published, streams
from ..store.entry_ids import RawEntry, order_key, parse_id
from ..store.streams import check_after
from .wire import decode

__all__ = ["PAGE", "FanOut", "Subscription"]

#: Entries per catch-up page (and the most one catch-up read of the hub brings per stream).
PAGE = 500


class FanOut(Protocol):
    """The side of the hub a subscription talks to (:class:`chatworker.gateway.hub.Hub`)."""

    def _join(self, sub: Subscription) -> str:
        """Add ``sub`` to the fan-out; return the cursor after which it is delivered to."""
        ...

    def _leave(self, sub: Subscription) -> None:
        """Remove ``sub`` from the fan-out."""
        ...


class Subscription:
    """One client's view of one run's output stream, resumable strictly after an id.

    Call :meth:`next_batch` repeatedly; it returns catch-up pages first, then live entries,
    each exactly once and in order. Always :meth:`close` it (in a ``finally``).
    """

    def __init__(
        self, hub: FanOut, run_id: str, after: str | None, limit: int, watch_run: bool = False
    ) -> None:
        self.hub = hub
        self.run_id = run_id
        self.key = streams.key_of(run_id)
        self.channel = published.channel_of(run_id)
        self.last: str | None = after
        self.limit = limit
        self.watch_run = watch_run
        self.dropped = False
        #: The run's record vanished from Redis (flushed, or restarted without persistence).
        self.lost = False
        #: The run's turn has no live worker: its worker died and none has taken it over yet
        #: (checked by the hub every few seconds, for watched runs).
        self.stalled = False
        self.closed = False
        self._phase = "catchup"
        self._gap_end = "0-0"
        # A plain lock and an event rather than a Condition: a Condition allocates a lock
        # for every wait, and this is the per-chunk path of every open stream.
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._mailbox: deque[RawEntry] = deque()

    @property
    def live(self) -> bool:
        """True once the subscription has caught up and receives entries from the hub."""
        return self._phase == "live"

    def _xrange(self, upper: str) -> list[RawEntry]:
        if self.last is None:
            return decode(get_redis().xrange(self.key, min="-", max=upper, count=PAGE))
        # The page and the stream's state of one moment: nothing after `last` trimmed unseen,
        # and `last` never beyond the stream's end (it becomes the reader's cursor).
        pipe = get_redis().pipeline(transaction=True)
        pipe.xrange(self.key, min=f"({self.last}", max=upper, count=PAGE)
        pipe.xinfo_stream(self.key)
        raw, info = pipe.execute(raise_on_error=False)
        check_after(info, self.last)
        if isinstance(raw, Exception):
            raise raw
        return decode(raw)

    def _advance(self, entries: list[RawEntry]) -> list[RawEntry]:
        if entries:
            self.last = entries[-1][0]
        return entries

    def next_batch(self, timeout: float) -> list[RawEntry]:
        """The next entries after the last one returned; ``[]`` after ``timeout`` seconds.

        Redis errors of the catch-up reads propagate, and so do :class:`StreamIdAhead` and
        :class:`StreamTrimmed` (see :func:`streams.check_after`); a dropped or closed
        subscription returns ``[]`` at once, a lost one once it has returned what it had
        (check :attr:`dropped` and :attr:`lost`).
        """
        if self.closed or self.dropped:
            return []
        if self._phase == "catchup":
            page = self._advance(self._xrange("+"))
            if len(page) == PAGE:
                return page
            cursor = self.hub._join(self)
            if parse_id(cursor) > parse_id(self.last or "0-0"):
                self._phase, self._gap_end = "gap", cursor
            else:
                self._phase = "live"
            if page:
                return page
        if self._phase == "gap":
            page = self._advance(self._xrange(self._gap_end))
            if len(page) < PAGE:
                self._phase = "live"
            if page:
                return page
        return self._take(timeout)

    def _take(self, timeout: float) -> list[RawEntry]:
        if not self._mailbox and not self.dropped and not self.closed and not self.lost:
            self._ready.wait(timeout)
        with self._lock:
            self._ready.clear()  # cleared under the lock that _offer sets it under
            items = list(self._mailbox)
            self._mailbox.clear()
        if items and self.last is not None:
            floor = order_key(self.last)
            if order_key(items[0][0]) <= floor:  # ids ascend: only a prefix can be old
                items = [item for item in items if order_key(item[0]) > floor]
        return self._advance(items)

    def _offer(self, entries: list[RawEntry]) -> bool:
        """Called by the hub: queue entries, or return False when the mailbox is full."""
        with self._lock:
            if len(self._mailbox) + len(entries) > self.limit:
                self.dropped = True
                self._mailbox.clear()
                self._ready.set()
                return False
            self._mailbox.extend(entries)
            self._ready.set()
            return True

    def _lose(self) -> None:
        """Called by the hub: the run's record is gone from Redis."""
        with self._lock:
            self.lost = True
            self._ready.set()

    def _set_stalled(self, stalled: bool) -> None:
        """Called by the hub: the run's turn lost its worker, or has one again."""
        with self._lock:
            self.stalled = stalled
            self._ready.set()

    def close(self) -> None:
        """Leave the hub; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.hub._leave(self)
        self._ready.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
