"""A run's output stream: one Redis Stream entry per chunk, field ``c`` holding its JSON.

Entry ids are made by Redis, are monotonic, and are the SSE event ids clients resume from.

Appends are group-committed per process and Redis client: an append made while no other is in
flight goes out at once, alone, from the caller; appends made while one is in flight (from any
run of the process) are queued and sent together, in one pipeline, by a writer thread (a
greenlet under gevent). An append still returns only once its entry is in Redis, with its id,
so a turn's chunks are in the stream, in order, before anything that follows them (the turn
marker, ``__run_end``). Idle, nothing changes; under load hundreds of runs share each round trip
instead of each queueing for a pooled connection of its own.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Iterable
from typing import Any

import redis

from . import keys
from .config import stream_maxlen

_ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")

#: Most appends sent in one round trip (a bound on a pipeline's size, not a delay).
MAX_BATCH = 512
#: A writer thread with nothing to send for this long ends (the next append starts one).
IDLE_SECONDS = 30.0

Entry = tuple[str, dict[str, Any]]


def encode(chunk: dict[str, Any]) -> str:
    """Compact JSON, the form stored in the stream and sent as SSE ``data:``."""
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)


def is_entry_id(value: str) -> bool:
    """True for a well-formed stream id such as ``1700000000000-0``."""
    return bool(_ENTRY_ID.match(value))


def _xadd(key: str, body: str, maxlen: int) -> tuple[Any, ...]:
    """The ``XADD`` of one entry, the stream trimmed approximately to ``maxlen``."""
    return ("XADD", key, "MAXLEN", "~", maxlen, "*", "c", body)


class _Append:
    """One queued ``XADD``: filled in by the writer thread, then ``done`` is set."""

    __slots__ = ("body", "done", "error", "id", "key", "maxlen")

    def __init__(self, key: str, body: str, maxlen: int) -> None:
        self.key = key
        self.body = body
        self.maxlen = maxlen
        self.done = threading.Event()
        self.id: str | None = None
        self.error: BaseException | None = None

    def result(self, writer: _Writer) -> str:
        while not self.done.wait(5.0):
            writer.ensure_running()  # its thread died (killed at shutdown): start another
        if self.error is not None:
            raise self.error
        assert self.id is not None
        return self.id


class _Writer:
    """The appends of one Redis client: sent directly when none is in flight, else queued and
    sent in batches by one background thread, in the order they were queued."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Append] = []
        self._inflight = 0
        self._thread: threading.Thread | None = None

    def append(self, key: str, body: str, maxlen: int) -> str:
        """Append one entry (now, or with the next batch); returns its id."""
        item: _Append | None = None
        with self._cond:
            if self._inflight or self._queue:
                item = _Append(key, body, maxlen)
                self._queue.append(item)
                self._start()
                self._cond.notify()
            else:
                self._inflight += 1
        if item is not None:
            return item.result(self)
        try:
            return str(self.client.execute_command(*_xadd(key, body, maxlen)))
        finally:
            with self._cond:
                self._inflight -= 1

    def submit(self, items: list[_Append]) -> None:
        """Queue ``items`` (in order) for the next round trip."""
        with self._cond:
            self._queue.extend(items)
            self._start()
            self._cond.notify()

    def ensure_running(self) -> None:
        """Start the thread again if it is gone while appends wait."""
        with self._cond:
            self._start()

    def _start(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            thread = self._thread = threading.Thread(
                target=self._run, name="chatworker-stream-writer", daemon=True
            )
            thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(IDLE_SECONDS)
                if not self._queue:  # idle: end; the next append starts a thread again
                    self._thread = None
                    return
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                self._inflight += 1
            try:
                self._send(batch)
            except BaseException as exc:  # the thread is being killed: fail, don't strand
                for item in batch:
                    if item.id is None and item.error is None:
                        item.error = redis.ConnectionError(f"stream write interrupted ({exc!r})")
                raise
            finally:
                with self._cond:
                    self._inflight -= 1
                for item in batch:
                    item.done.set()

    def _send(self, batch: list[_Append]) -> None:
        try:
            if len(batch) == 1:
                item = batch[0]
                item.id = str(self.client.execute_command(*_xadd(item.key, item.body, item.maxlen)))
                return
            pipe = self.client.pipeline(transaction=False)
            for item in batch:
                pipe.execute_command(*_xadd(item.key, item.body, item.maxlen))
            replies = pipe.execute(raise_on_error=False)
        except Exception as exc:
            for item in batch:
                item.error = _own(exc) if len(batch) > 1 else exc
            return
        for item, reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                item.error = reply
            else:
                item.id = str(reply)


def _own(exc: Exception) -> Exception:
    """A copy of ``exc`` for one waiting writer (one exception object is not raised in several
    greenlets at once: each raise rewrites its traceback)."""
    try:
        clone = copy.copy(exc)
    except Exception:
        return exc
    clone.__cause__ = exc
    return clone


_writers: dict[tuple[int, int], _Writer] = {}
_writers_lock = threading.Lock()


def _writer(client: redis.Redis) -> _Writer:
    """This process's writer for ``client`` (a forked child makes its own)."""
    key = (os.getpid(), id(client))
    writer = _writers.get(key)
    if writer is None or writer.client is not client:
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None or writer.client is not client:
                writer = _writers[key] = _Writer(client)
    return writer


class OutputStream:
    """Writes chunks to one run's output stream."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.key = keys.output(run_id)
        self.maxlen = stream_maxlen()

    def write(self, chunk: dict[str, Any]) -> str:
        """Append ``chunk``; returns its entry id once it is in Redis."""
        return _writer(self.client).append(self.key, encode(chunk), self.maxlen)

    def write_many(self, chunks: Iterable[dict[str, Any]]) -> list[str]:
        """Append several chunks in one round trip; returns their ids."""
        items = [_Append(self.key, encode(chunk), self.maxlen) for chunk in chunks]
        if not items:
            return []
        writer = _writer(self.client)
        writer.submit(items)
        return [item.result(writer) for item in items]


def decode_entries(raw: Any) -> list[Entry]:
    """``[(id, {"c": json})...]`` from redis-py → ``[(id, chunk)...]``."""
    out: list[Entry] = []
    for entry_id, fields in raw or []:
        body = fields.get("c")
        if body is None:
            continue
        out.append((str(entry_id), json.loads(body)))
    return out


def read(
    client: redis.Redis, run_id: str, after: str | None = None, count: int | None = None
) -> list[Entry]:
    """Entries strictly after ``after`` (from the first retained entry when None)."""
    start = f"({after}" if after and after != "0-0" else "-"
    return decode_entries(client.xrange(keys.output(run_id), min=start, max="+", count=count))


def tail_id(client: redis.Redis, run_id: str) -> str:
    """The id of the stream's last entry, or ``"0-0"`` when it is empty."""
    last = client.xrevrange(keys.output(run_id), count=1)
    return str(last[0][0]) if last else "0-0"
