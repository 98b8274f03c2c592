"""The hub's feed: one Pub/Sub connection per gateway process, on which the entries of the
streams the hub follows arrive as they are appended.

Every append to an output stream publishes the entry on the stream's channel
(:mod:`chatworker.store.published`). The feed keeps this process's connection subscribed to the
channels the hub wants, reads it in one thread (a greenlet under gevent), and hands the hub each
batch of messages: whatever had arrived by the time it read, at most ``max_batch`` (the hub
keeps one batch within a quarter of a mailbox, so a burst alone drops no one).

Only the reader touches the connection: it reads, and it sends the ``SUBSCRIBE`` and
``UNSUBSCRIBE`` commands the wanted channels call for, so no two commands or replies ever
interleave. A caller that wants a channel marks it and wakes the reader by publishing on the
reader's own wake channel (one message in flight at a time), so a new stream is subscribed at
once, not at some next poll; a channel no longer wanted is unsubscribed at the reader's next
wake. The connection speaks RESP2 and has no health checks (they would read replies meant for
the reader); the reader checks it itself: idle for ``idle_seconds``, it sends ``PING``, and a
connection that answers nothing for as long again is dropped.

A channel is *confirmed* once the reply to its last ``SUBSCRIBE`` has been read: every entry
published to it since arrives here. On a reconnect (Redis restarted, the connection was killed)
the hub is told first (:meth:`Listener._feed_connected`), then every wanted channel is
subscribed again, in one command per thousand channels.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from typing import Any, Protocol

import redis

from ..config import get_redis
from ..store import published
from . import cluster_reads

__all__ = ["IDLE_SECONDS", "Feed", "Listener", "Message"]

log = logging.getLogger("chatworker.hub")

#: Seconds without a message before the reader checks the connection with ``PING``.
IDLE_SECONDS = 5.0
#: The connection's name in ``CLIENT LIST``.
CLIENT_NAME = "chatworker-hub"
#: Channels per ``SUBSCRIBE`` / ``UNSUBSCRIBE`` command.
CHANNELS_PER_COMMAND = 1000

#: One published message: ``(channel, data)``.
Message = tuple[str, str]


class Listener(Protocol):
    """The side of the hub the feed calls, from its reader thread
    (:class:`chatworker.gateway.hub.Hub`)."""

    def _feed_connected(self) -> None:
        """A new connection, before any channel is subscribed on it: nothing published before
        its confirmation arrives (every stream must be read to catch up)."""
        ...

    def _feed_batch(self, messages: list[Message]) -> None:
        """Messages read at once, in order (possibly none: the reader was woken). An exception
        drops the connection; the next one starts over with :meth:`_feed_connected`."""
        ...


class Feed:
    """This process's Pub/Sub connection: subscribed to the wanted channels, read by one thread."""

    def __init__(
        self, listener: Listener, *, max_batch: int, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.listener = listener
        #: Most messages read before the hub is handed a batch.
        self.max_batch = max_batch
        self.idle_seconds = idle_seconds
        self.wake_channel = published.wake_channel(uuid.uuid4().hex)
        #: Since when the connection fails (None while it works).
        self.failing_since: float | None = None
        self._lock = threading.Lock()
        self._wanted: set[str] = set()
        self._dirty: set[str] = set()  # wanted or dropped since the reader last looked
        self._wake_sent = False
        self._stopped = False
        self._conn: Any = None
        # The reader's own, for the current connection:
        self._subscribed: set[str] = set()  # as last sent
        self._pending: dict[str, int] = {}  # SUBSCRIBE replies not read yet

    # -- callers' side ---------------------------------------------------------------------

    def want(self, channel: str) -> None:
        """Subscribe to ``channel`` (then call :meth:`wake`, outside the caller's locks)."""
        with self._lock:
            self._wanted.add(channel)
            self._dirty.add(channel)

    def drop(self, channel: str) -> None:
        """Unsubscribe from ``channel`` at the reader's next wake."""
        with self._lock:
            self._wanted.discard(channel)
            self._dirty.add(channel)

    def wake(self) -> None:
        """Have the reader act at once (subscribe what is wanted, give the hub a batch)."""
        with self._lock:
            if self._wake_sent or self._stopped:
                return
            self._wake_sent = True
        try:
            get_redis().publish(self.wake_channel, "")
        except redis.RedisError as exc:
            # Redis is unreachable: the reader is reconnecting, and subscribes everything then.
            with self._lock:
                self._wake_sent = False
            log.debug("SSE hub: could not wake the reader (%s)", exc)

    def confirmed(self, channel: str) -> bool:
        """True when every message published on ``channel`` arrives (reader thread only)."""
        return channel in self._subscribed and channel not in self._pending

    def stop(self) -> None:
        """End the reader (it closes the connection)."""
        self._stopped = True
        conn = self._conn
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once
            except OSError:
                pass

    # -- reader side -------------------------------------------------------------------------

    def run(self) -> None:
        """The reader: connect, subscribe, read, hand batches to the hub; reconnect on failure."""
        backoff = 0.0
        while not self._stopped:
            try:
                self._connect()
                backoff = 0.0
                self._listen()
            except Exception as exc:
                if self._stopped:
                    break
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    log.warning("SSE hub: Redis Pub/Sub read failed (%s); reconnecting", exc)
                backoff = min(2.0, backoff * 2 or 0.05)
                time.sleep(backoff)
            finally:
                self._disconnect()

    def _connect(self) -> None:
        pool = cluster_reads.pool_of(get_redis(blocking=True))  # on a cluster: one node's
        options = {
            key: value
            for key, value in pool.connection_kwargs.items()
            if not key.startswith("maint_notifications")  # RESP3 only, and the pool's own
        }
        options.update(
            protocol=2, health_check_interval=0, socket_timeout=None, client_name=CLIENT_NAME
        )
        conn = pool.connection_class(**options)
        conn.connect()
        self._conn = conn
        if self._stopped:
            return
        with self._lock:
            channels = [self.wake_channel, *self._wanted]
            self._dirty.clear()
            self._wake_sent = False
        self._subscribed = set(channels)
        self._pending = dict.fromkeys(channels, 1)
        if self.failing_since is not None:
            log.info(
                "SSE hub: Redis Pub/Sub resumed after %.1fs", time.monotonic() - self.failing_since
            )
            self.failing_since = None
        self.listener._feed_connected()
        self._send("SUBSCRIBE", channels)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._subscribed, self._pending = set(), {}
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:
                log.debug("closing the hub's Pub/Sub connection failed", exc_info=True)

    def _send(self, command: str, channels: list[str]) -> None:
        conn = self._conn
        for start in range(0, len(channels), CHANNELS_PER_COMMAND):
            packed = conn.pack_command(command, *channels[start : start + CHANNELS_PER_COMMAND])
            conn.send_packed_command(packed, check_health=False)

    def _sync(self) -> None:
        """Send the SUBSCRIBE / UNSUBSCRIBE commands the channels marked since call for."""
        with self._lock:
            self._wake_sent = False
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, set()
            add = [c for c in dirty if c in self._wanted and c not in self._subscribed]
            remove = [c for c in dirty if c not in self._wanted and c in self._subscribed]
        for channel in add:
            self._subscribed.add(channel)
            self._pending[channel] = self._pending.get(channel, 0) + 1
        self._subscribed.difference_update(remove)
        if add:
            self._send("SUBSCRIBE", add)
        if remove:
            self._send("UNSUBSCRIBE", remove)

    def _listen(self) -> None:
        conn = self._conn
        pinged = False
        while not self._stopped:
            if not conn.can_read(timeout=self.idle_seconds):
                if pinged:
                    raise redis.ConnectionError(
                        f"no reply from Redis to PING within {self.idle_seconds:g}s"
                    )
                conn.send_packed_command(conn.pack_command("PING"), check_health=False)
                pinged = True
                self._sync()
                continue
            pinged = False
            messages: list[Message] = []
            more = False
            for _ in range(self.max_batch):
                reply = conn.read_response()
                kind = reply[0]
                if kind == "message":
                    if reply[1] != self.wake_channel:
                        messages.append((reply[1], reply[2]))
                elif kind == "subscribe":
                    left = self._pending.pop(reply[1], 1) - 1
                    if left > 0:
                        self._pending[reply[1]] = left
                more = conn.can_read(timeout=0)
                if not more:
                    break
            self._sync()
            self.listener._feed_batch(messages)
            if more:  # a burst: let the subscribers drain their mailboxes before the next batch
                time.sleep(0)
