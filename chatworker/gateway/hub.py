"""The SSE hub: one Pub/Sub connection per gateway process, fanned out to every open stream.

A thousand browsers each reading Redis would need a thousand connections, and a shared
``XREAD`` naming every stream costs Redis time in proportion to the streams on every read. Instead
every append also publishes its entry (:mod:`chatworker.store.published`), and the hub's feed
(:mod:`.feed`) subscribes one connection to the channels of the streams that have a subscriber:
each entry arrives once, pushed, and the hub puts it in the bounded mailbox of every subscriber
of its stream. A subscriber (:mod:`.subscription`) first catches up with ``XRANGE`` on the shared
non-blocking client, then joins the fan-out; ids are tracked so that nothing is lost or repeated
in between. A subscriber whose mailbox overflows is dropped: its response ends and the client
resumes by id.

A stream the hub starts to follow (or follows again after a reconnect) is *behind*: its channel
is subscribed first, and once that is confirmed the hub reads the stream after its cursor
(a non-blocking ``XREAD`` of every such stream at once); then it is *live*. Messages of a stream
still behind are ignored: each entry is in the stream before it is published, so that read
finds it. Messages of a live stream are delivered when their id is beyond its cursor (ids
ascend), so an entry both read and published is delivered once.

A resume position is checked against the stream as it is read
(:func:`chatworker.store.streams.check_after`): an id beyond the stream's end raises
:class:`~chatworker.errors.StreamIdAhead` and never becomes the hub's cursor (the cursor is always
an id the stream made, so no subscriber can hold back the others), and an id whose successors
were trimmed away raises :class:`~chatworker.errors.StreamTrimmed` rather than silently skipping
them. Every ``CHECK_SECONDS`` (and right after a reconnect) a checker thread also checks that the
runs of the streams followed still exist: when Redis comes back empty (flushed, or restarted
without persistence) their subscriptions end as :attr:`~.subscription.Subscription.lost` instead
of idling until their timeout; and a run whose turn lost its worker (the owner's lease lapsed
mid-turn) marks them :attr:`~.subscription.Subscription.stalled` until a worker has it again.

On a Redis Cluster (``CHATWORKER_REDIS_CLUSTER=1``) see :mod:`.cluster_reads`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import redis

from ..config import env_float, get_redis
from ..store import published
from ..store.entry_ids import RawEntry, order_key, parse_id
from ..store.run_store import RunStore
from . import cluster_reads
from .feed import IDLE_SECONDS, Feed, Message
from .subscription import PAGE, Subscription
from .wire import decode

log = logging.getLogger("chatworker.hub")

#: Seconds between the checker's checks that the runs of the streams followed still exist.
CHECK_SECONDS = 2.0
#: Most streams one catch-up ``XREAD`` names.
CATCH_UP_STREAMS = 500


class _Tracked:
    """A stream the hub follows: its cursor (the last id delivered), its subscribers, and
    whether it is live (published entries are delivered) or behind (it must be read first)."""

    __slots__ = (
        "_cursor", "channel", "cursor_key", "key", "live", "run_id", "stalled", "subscribers",
    )

    def __init__(self, key: str, channel: str, cursor: str) -> None:
        self.key = key
        self.channel = channel
        self.cursor = cursor
        self.live = False
        self.subscribers: set[Subscription] = set()
        #: The run record whose existence the checker checks (a subscriber asked to watch it).
        self.run_id: str | None = None
        #: The run's turn has no live worker (see :attr:`Subscription.stalled`).
        self.stalled = False

    @property
    def cursor(self) -> str:
        return self._cursor

    @cursor.setter
    def cursor(self, value: str) -> None:
        self._cursor = value
        self.cursor_key = order_key(value)


class Hub:
    """Delivers the published entries of every subscribed stream, read by one connection."""

    def __init__(
        self,
        *,
        mailbox_limit: int | None = None,
        check_seconds: float = CHECK_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.mailbox_limit = mailbox_limit or int(env_float("CHATWORKER_SSE_QUEUE", 4096))
        self.check_seconds = check_seconds
        # One catch-up read or batch of messages never brings more than a quarter of a mailbox,
        # so a burst alone drops no one.
        self._count = max(1, min(PAGE, self.mailbox_limit // 4))
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._streams: dict[str, _Tracked] = {}  # by channel
        self._behind: dict[str, _Tracked] = {}  # those not live yet, by channel
        self._feed = Feed(self, max_batch=self._count, idle_seconds=idle_seconds)
        self._check_now = threading.Event()
        self._stopped = False
        self._threads: list[threading.Thread] = []

    # -- subscriber side -------------------------------------------------------------------

    def subscribe(
        self, run_id: str, after: str | None = None, *, watch_run: bool = False
    ) -> Subscription:
        """A subscription to ``run_id``'s output, strictly after ``after`` (None: from start).

        With ``watch_run`` (the run's record exists now), the subscription ends as
        :attr:`~Subscription.lost` if that record disappears from Redis.
        """
        if after is not None:
            parse_id(after)
        self._ensure_started()
        return Subscription(self, run_id, after, self.mailbox_limit, watch_run)

    def _join(self, sub: Subscription) -> str:
        """Add ``sub`` to the fan-out; return the cursor after which the hub delivers to it."""
        with self._lock:
            tracked = self._streams.get(sub.channel)
            new = tracked is None
            if tracked is None:
                tracked = _Tracked(sub.key, sub.channel, sub.last or "0-0")
                self._streams[sub.channel] = self._behind[sub.channel] = tracked
                self._feed.want(sub.channel)
            tracked.subscribers.add(sub)
            if sub.watch_run:
                tracked.run_id = sub.run_id
                sub.stalled = tracked.stalled
            cursor = tracked.cursor
        if new:
            self._feed.wake()  # subscribe at once, then read the stream
        return cursor

    def _leave(self, sub: Subscription) -> None:
        with self._lock:
            tracked = self._streams.get(sub.channel)
            if tracked is not None:
                tracked.subscribers.discard(sub)
                if not tracked.subscribers:
                    self._forget(tracked)

    def _forget(self, tracked: _Tracked) -> None:
        """Stop following a stream (under the lock)."""
        del self._streams[tracked.channel]
        self._behind.pop(tracked.channel, None)
        self._feed.drop(tracked.channel)

    def stats(self) -> dict[str, int]:
        """Counts for logs and tests: streams followed and subscribers attached."""
        with self._lock:
            return {
                "streams": len(self._streams),
                "subscribers": sum(len(t.subscribers) for t in self._streams.values()),
            }

    # -- background threads ----------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads or self._stopped:
                return
            for target, name in ((self._feed.run, "reader"), (self._check_loop, "checker")):
                thread = threading.Thread(target=target, name=f"chatworker-hub-{name}")
                thread.daemon = True
                self._threads.append(thread)
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Stop the background threads (tests; a process exiting needs nothing)."""
        self._stopped = True
        self._feed.stop()
        self._check_now.set()

    # -- the feed's reader thread ----------------------------------------------------------

    def _feed_connected(self) -> None:
        with self._lock:
            for tracked in self._streams.values():
                tracked.live = False
            self._behind = dict(self._streams)
        self._check_now.set()  # Redis may have come back empty: check the runs at once

    def _feed_batch(self, messages: list[Message]) -> None:
        if messages:
            with self._lock:
                found: dict[_Tracked, list[RawEntry]] = {}
                for channel, data in messages:
                    tracked = self._streams.get(channel)
                    if tracked is None or not tracked.live:
                        continue  # not followed, or behind: reading the stream finds the entry
                    entry = published.parse(data)
                    if order_key(entry[0]) <= tracked.cursor_key:
                        continue  # already read while catching up
                    tracked.cursor = entry[0]
                    found.setdefault(tracked, []).append(entry)
                for tracked, entries in found.items():
                    if self._streams.get(tracked.channel) is tracked:
                        self._deliver(tracked, entries)
        if self._behind:
            self._catch_up()

    def _catch_up(self) -> None:
        """Read each behind stream whose channel is confirmed after its cursor; a stream read
        to its end is live (the cursors change only in this thread)."""
        while True:
            with self._lock:
                due = [t for t in self._behind.values() if self._feed.confirmed(t.channel)]
            if not due:
                return
            due = due[:CATCH_UP_STREAMS]
            reply = cluster_reads.xread(get_redis(), {t.key: t.cursor for t in due}, self._count)
            read = _entries_by_key(reply)
            with self._lock:
                for tracked in due:
                    if self._streams.get(tracked.channel) is not tracked:
                        continue
                    entries = read.get(tracked.key, [])
                    if len(entries) < self._count:
                        tracked.live = True
                        self._behind.pop(tracked.channel, None)
                    entries = [e for e in entries if order_key(e[0]) > tracked.cursor_key]
                    if entries:
                        tracked.cursor = entries[-1][0]
                        self._deliver(tracked, entries)

    def _deliver(self, tracked: _Tracked, entries: list[RawEntry]) -> None:
        """Put ``entries`` in the mailbox of each subscriber; drop those that overflow."""
        for sub in list(tracked.subscribers):
            if not sub._offer(entries):
                log.info("SSE hub: dropped a slow client of run %s", sub.run_id)
                tracked.subscribers.discard(sub)
        if not tracked.subscribers:
            self._forget(tracked)

    # -- the checker thread ----------------------------------------------------------------

    def _check_loop(self) -> None:
        while not self._stopped:
            self._check_now.wait(self.check_seconds)
            self._check_now.clear()
            if self._stopped or self._feed.failing_since is not None:
                continue  # Redis is unreachable: the reconnect asks for a check
            with self._lock:
                followed = list(self._streams.values())
            if followed:
                self._check_runs(followed)

    def _check_runs(self, followed: list[_Tracked]) -> None:
        """End the subscriptions of watched runs whose record is gone from Redis, and tell them
        when a run stalls (its turn lost its worker) or goes on."""
        watched = [(t, t.run_id) for t in followed if t.run_id is not None]
        if not watched:
            return
        try:
            states = RunStore(get_redis()).follow_states([run_id for _, run_id in watched])
        except redis.RedisError as exc:
            log.debug("SSE hub: could not check the followed runs (%s)", exc)
            return
        lost: list[Subscription] = []
        changed: list[tuple[Subscription, bool]] = []
        with self._lock:
            for (tracked, _), (exists, stalled) in zip(watched, states, strict=True):
                if self._streams.get(tracked.channel) is not tracked:
                    continue
                if exists:
                    if stalled != tracked.stalled:
                        tracked.stalled = stalled
                        changed.extend((sub, stalled) for sub in tracked.subscribers)
                    continue
                self._forget(tracked)
                lost.extend(tracked.subscribers)
                tracked.subscribers.clear()
        for sub in lost:
            sub._lose()
        for sub, stalled in changed:
            sub._set_stalled(stalled)
        for run_id in sorted({sub.run_id for sub in lost}):
            log.warning("SSE hub: run %s is gone from Redis; ending its streams", run_id)


def _entries_by_key(reply: Any) -> dict[str, list[RawEntry]]:
    """A redis-py ``XREAD`` reply (a list of ``[key, entries]``, or a dict under RESP3)."""
    items = reply.items() if isinstance(reply, dict) else (reply or ())
    out: dict[str, list[RawEntry]] = {}
    for key, entries in items:
        if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], list):
            entries = entries[0]  # RESP3 nests them once more
        out[key.decode() if isinstance(key, bytes) else str(key)] = decode(entries)
    return out


_hub: Hub | None = None
_hub_lock = threading.Lock()


def get_hub() -> Hub:
    """This process's hub (a forked child gets its own)."""
    global _hub
    hub = _hub
    if hub is None or hub.pid != os.getpid():
        with _hub_lock:
            hub = _hub
            if hub is None or hub.pid != os.getpid():
                hub = _hub = Hub()
    return hub


def reset_hub() -> None:
    """Stop and forget this process's hub (tests, after the Redis URL changed)."""
    global _hub
    with _hub_lock:
        if _hub is not None:
            _hub.stop()
        _hub = None
