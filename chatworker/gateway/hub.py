"""The SSE hub: one blocking ``XREAD`` per gateway process, fanned out to every open stream.

A thousand browsers each holding a blocking ``XREAD`` would need a thousand Redis connections
and take ~20x longer to deliver a chunk to all of them. Instead, one reader thread (a greenlet
under gevent) reads every stream that has at least one subscriber and pushes new entries into
bounded per-subscriber mailboxes. A subscriber (:mod:`.subscription`) first catches up with
``XRANGE`` on the shared non-blocking client, then joins the live fan-out; ids are tracked so
that nothing is lost or repeated in between. A subscriber whose mailbox overflows is dropped:
its response ends and the client resumes by id. When a new stream joins, the reader is woken
with ``CLIENT UNBLOCK`` (and its block timeout is short anyway, in case that command is not
allowed).

A resume position is checked against the stream as it is read
(:func:`chatworker.store.streams.check_after`): an id beyond the stream's end raises
:class:`~chatworker.errors.StreamIdAhead` and never becomes the reader's cursor (the cursor is
always an id the stream made, so no subscriber can hold back the others), and an id whose
successors were trimmed away raises :class:`~chatworker.errors.StreamTrimmed` rather than
silently skipping them. Every ``CHECK_SECONDS`` the reader also checks that the runs of the
streams it follows still exist: when Redis comes back empty (flushed, or restarted without
persistence) their subscriptions end as :attr:`~.subscription.Subscription.lost` instead of
idling until their timeout; and a run whose turn lost its worker (the owner's lease lapsed
mid-turn) marks them :attr:`~.subscription.Subscription.stalled` until a worker has it again.

On a Redis Cluster (``CHATWORKER_REDIS_CLUSTER=1``) the reader is :mod:`.cluster_reads`
instead: a cluster refuses an ``XREAD`` over streams of different slots.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from ..config import env_float, get_redis, is_cluster
from ..store.entry_ids import order_key, parse_id
from ..store.run_store import RunStore
from . import cluster_reads
from .subscription import PAGE, Subscription
from .wire import bulk, decode_raw

log = logging.getLogger("chatworker.hub")

#: Least time between a read that brought entries of several streams (a busy gateway) and the
#: next: spacing them lets each gather the entries of many streams (at 2,000 chunks/s a read
#: per chunk re-scans every key each time). A read after one stream's entries, or after a
#: quiet spell, goes out at once, so a turn's first chunks are never held back.
GATHER_SECONDS = 0.001
BLOCK_MS = 1000
#: Seconds between the reader's checks that the runs of the streams it follows still exist.
CHECK_SECONDS = 2.0


class _Tracked:
    """A stream the reader follows: its read cursor, current subscribers, and the RESP
    encodings of its key and cursor (so a read of N streams is a join, not N encodes)."""

    __slots__ = ("_cursor", "cursor_bulk", "key", "key_bulk", "run_id", "stalled", "subscribers")

    def __init__(self, key: str, cursor: str) -> None:
        self.key = key
        self.key_bulk = bulk(key)
        self.cursor = cursor
        self.subscribers: set[Subscription] = set()
        #: The run record whose existence the reader checks (a subscriber asked to watch it).
        self.run_id: str | None = None
        #: The run's turn has no live worker (see :attr:`Subscription.stalled`).
        self.stalled = False

    @property
    def cursor(self) -> str:
        return self._cursor

    @cursor.setter
    def cursor(self, value: str) -> None:
        self._cursor = value
        self.cursor_bulk = bulk(value)


class Hub:
    """Reads all subscribed output streams with one blocking connection and fans them out."""

    def __init__(
        self,
        *,
        mailbox_limit: int | None = None,
        block_ms: int = BLOCK_MS,
        gather: float = GATHER_SECONDS,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.mailbox_limit = mailbox_limit or int(env_float("CHATWORKER_SSE_QUEUE", 4096))
        self.block_ms = block_ms
        self.gather = gather
        self.check_seconds = check_seconds
        # One read never brings more than a quarter of a mailbox, so a burst alone drops no one.
        self._count = max(1, min(PAGE, self.mailbox_limit // 4))
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._streams: dict[str, _Tracked] = {}
        self._gen = 0  # bumped when a stream joins: the reader must be woken to read it
        self._layout = 0  # bumped when a stream joins or leaves: the reader's list changes
        self._reading_gen = -1
        self._changed = threading.Event()
        self._wake = threading.Event()
        self._stopped = False
        self._reader_id: int | None = None
        self._blocked = False
        self._threads: list[threading.Thread] = []
        self._unblock_ok = True

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
            tracked = self._streams.get(sub.key)
            if tracked is None:
                tracked = _Tracked(sub.key, sub.last or "0-0")
                self._streams[sub.key] = tracked
                self._gen += 1
                self._layout += 1
                wake = True
            else:
                wake = False
            tracked.subscribers.add(sub)
            if sub.watch_run:
                tracked.run_id = sub.run_id
                sub.stalled = tracked.stalled
            cursor = tracked.cursor
        if wake:
            self._changed.set()
            self._wake.set()
        return cursor

    def _leave(self, sub: Subscription) -> None:
        with self._lock:
            tracked = self._streams.get(sub.key)
            if tracked is not None:
                tracked.subscribers.discard(sub)
                if not tracked.subscribers:
                    del self._streams[sub.key]
                    self._layout += 1

    def stats(self) -> dict[str, int]:
        """Counts for logs and tests: streams read and subscribers attached."""
        with self._lock:
            return {
                "streams": len(self._streams),
                "subscribers": sum(len(t.subscribers) for t in self._streams.values()),
            }

    # -- reader side ---------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads or self._stopped:
                return
            client = get_redis()
            targets: list[tuple[Callable[[], None], str]] = [(self._read_loop, "reader"),
                                                             (self._wake_loop, "waker")]
            if is_cluster(client):  # no multi-slot XREAD: see cluster_reads
                targets = [(lambda: cluster_reads.read_loop(self, client), "reader")]
            for target, name in targets:
                thread = threading.Thread(target=target, name=f"chatworker-hub-{name}")
                thread.daemon = True
                self._threads.append(thread)
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Stop the background threads (tests; a process exiting needs nothing)."""
        self._stopped = True
        self._changed.set()
        self._wake.set()
        self._unblock_reader()

    def _on_reader_connect(self, connection: Any) -> None:
        # Runs on every (re)connect of the reader's connection: remember its client id so
        # that CLIENT UNBLOCK reaches it.
        connection.send_command("CLIENT", "ID")
        self._reader_id = int(connection.read_response())

    def _open_reader(self) -> redis.Redis[str]:
        client = get_redis(blocking=True).client()
        conn: Any = getattr(client, "connection", None)
        assert conn is not None
        conn.register_connect_callback(self._on_reader_connect)
        self._reader_id = int(client.client_id())
        return client

    def _close_reader(self, client: redis.Redis[str] | None) -> None:
        if client is None:
            return
        self._reader_id = None
        conn: Any = getattr(client, "connection", None)
        try:
            if conn is not None:
                conn.deregister_connect_callback(self._on_reader_connect)
                conn.disconnect()
            client.close()
        except Exception:
            log.debug("closing the hub reader connection failed", exc_info=True)

    def _xread_command(self, tracked: list[_Tracked]) -> bytes:
        """``XREAD COUNT c BLOCK ms STREAMS k... id...`` packed from the cached pieces."""
        head = b"*%d\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n%s$5\r\nBLOCK\r\n%s$7\r\nSTREAMS\r\n" % (
            6 + 2 * len(tracked),
            bulk(str(self._count)),
            bulk(str(self.block_ms)),
        )
        return b"".join([head, *[t.key_bulk for t in tracked], *[t.cursor_bulk for t in tracked]])

    def _read_loop(self) -> None:
        client: redis.Redis[str] | None = None
        backoff = 0.0
        failing_since: float | None = None
        layout = -1
        snapshot: dict[str, _Tracked] = {}
        order: list[_Tracked] = []
        issued, gathered = 0.0, False
        next_check = 0.0
        while not self._stopped:
            pause = issued + self.gather - time.monotonic()
            if gathered and pause > 0:  # busy: let entries gather (see GATHER_SECONDS)
                time.sleep(pause)
            with self._lock:
                if layout != self._layout:  # streams joined or left: a new read list
                    layout = self._layout
                    snapshot = dict(self._streams)
                    order = list(snapshot.values())
                self._reading_gen = self._gen
                self._changed.clear()
            if not snapshot:
                self._changed.wait(30)
                continue
            if failing_since is None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_seconds
                self._check_runs(order)
            try:
                if client is None:
                    client = self._open_reader()
                conn: Any = client.connection  # type: ignore[attr-defined]
                issued = time.monotonic()
                command = self._xread_command(order)
                self._blocked = True
                try:
                    conn.send_packed_command([command])
                    reply = conn.read_response()
                finally:
                    self._blocked = False
            except Exception as exc:
                self._close_reader(client)
                client = None
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("SSE hub: Redis read failed (%s); reconnecting", exc)
                backoff = min(2.0, backoff * 2 or 0.05)
                time.sleep(backoff)
                continue
            if failing_since is not None:
                log.info(
                    "SSE hub: Redis reads resumed after %.1fs", time.monotonic() - failing_since
                )
                failing_since, backoff = None, 0.0
                next_check = 0.0  # Redis may have come back empty: check the runs at once
            gathered = bool(reply) and len(reply) > 1  # several streams at once: busy
            if reply:
                self._fan_out(reply, snapshot)
        self._close_reader(client)

    def _fan_out(self, reply: Any, snapshot: dict[str, _Tracked]) -> None:
        items = reply.items() if isinstance(reply, dict) else ((k, v) for k, v in reply)
        with self._lock:
            for raw_key, raw_entries in items:
                key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                tracked = self._streams.get(key)
                if tracked is None or snapshot.get(key) is not tracked:
                    continue  # left (or left and re-joined) while we read: next read covers it
                entries = decode_raw(raw_entries)
                if not entries:
                    continue
                floor = order_key(tracked.cursor)
                if order_key(entries[0][0]) <= floor:  # ids ascend: only a prefix can be old
                    entries = [e for e in entries if order_key(e[0]) > floor]
                    if not entries:
                        continue
                tracked.cursor = entries[-1][0]
                for sub in list(tracked.subscribers):
                    if not sub._offer(entries):
                        log.info("SSE hub: dropped a slow client of run %s", sub.run_id)
                        tracked.subscribers.discard(sub)
                if not tracked.subscribers:
                    del self._streams[key]
                    self._layout += 1

    def _check_runs(self, order: list[_Tracked]) -> None:
        """End the subscriptions of watched runs whose record is gone from Redis, and tell them
        when a run stalls (its turn lost its worker) or goes on."""
        watched = [(t, t.run_id) for t in order if t.run_id is not None]
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
                if self._streams.get(tracked.key) is not tracked:
                    continue
                if exists:
                    if stalled != tracked.stalled:
                        tracked.stalled = stalled
                        changed.extend((sub, stalled) for sub in tracked.subscribers)
                    continue
                del self._streams[tracked.key]
                self._layout += 1
                lost.extend(tracked.subscribers)
                tracked.subscribers.clear()
        for sub in lost:
            sub._lose()
        for sub, stalled in changed:
            sub._set_stalled(stalled)
        for run_id in sorted({sub.run_id for sub in lost}):
            log.warning("SSE hub: run %s is gone from Redis; ending its streams", run_id)

    def _wake_loop(self) -> None:
        while not self._stopped:
            self._wake.wait()
            self._wake.clear()
            deadline = time.monotonic() + self.block_ms / 1000
            while (
                not self._stopped and self._reading_gen < self._gen and time.monotonic() < deadline
            ):
                if self._blocked and self._unblock_reader():
                    break
                time.sleep(0.002)

    def _unblock_reader(self) -> bool:
        reader_id = self._reader_id
        if reader_id is None or not self._unblock_ok:
            return False
        try:
            return bool(get_redis().client_unblock(reader_id))
        except redis.ResponseError as exc:
            self._unblock_ok = False
            log.warning(
                "SSE hub: CLIENT UNBLOCK refused (%s); new streams join within %gs",
                exc,
                self.block_ms / 1000,
            )
        except redis.RedisError:
            pass
        return False


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
