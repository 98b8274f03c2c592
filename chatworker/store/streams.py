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
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from typing import Any

import redis

from ..config import lease_seconds, stream_maxlen
from ..errors import StreamIdAhead, StreamTrimmed
from . import keys
from .entry_ids import Entry, is_stream_id, key_before, order_key
from .scripts import raise_if_lease_lost, source

#: Most appends sent in one round trip (a bound on a pipeline's size, not a delay).
MAX_BATCH = 512
#: A writer thread with nothing to send for this long ends (the next append starts one).
IDLE_SECONDS = 30.0



def encode(chunk: dict[str, Any]) -> str:
    """Compact JSON, the form stored in the stream and sent as SSE ``data:``."""
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)


def check_after(info: Any, after: str) -> None:
    """Raise unless reading the stream strictly after ``after`` yields every later entry.

    ``info`` is the stream's ``XINFO STREAM`` reply (a dict), or the error (or None) Redis gave
    for a stream that does not exist. :class:`StreamIdAhead` when ``after`` is beyond the last id
    the stream ever made; :class:`StreamTrimmed` when entries after it were trimmed away. Trims
    remove the oldest entries, so it is the case when ``after`` precedes the first entry still
    there and entries were removed; an ``after`` right at the edge of the removed part (the very
    last removed entry) is reported as trimmed too, as Redis keeps no trace of that entry's id.
    """
    wanted = order_key(after)
    if not isinstance(info, dict):
        if isinstance(info, redis.ResponseError) and "no such key" not in str(info).lower():
            return  # XINFO refused (e.g. by an ACL): nothing to check against
        if wanted > (0, 0):
            raise StreamIdAhead(
                f"{after} is after the end of the run's output stream (it has no entry yet), so"
                " this stream never sent it: resume from an id it sent, or without one"
            )
        return
    last_id = str(info.get("last-generated-id") or "0-0")
    if wanted > order_key(last_id):
        raise StreamIdAhead(
            f"{after} is after the end of the run's output stream ({last_id}), so this stream"
            " never sent it: resume from an id it sent, or load the chat's history again"
        )
    length = int(info.get("length") or 0)
    added = info.get("entries-added")  # Redis 7 and later
    removed = int(added) - length > 0 if added is not None else length >= stream_maxlen()
    if not removed:
        return
    first = info.get("first-entry")
    if first and first[0]:
        first_key = order_key(str(first[0]))
        gap = wanted < first_key and wanted != key_before(first_key)
    else:  # every entry was removed
        gap = wanted < order_key(last_id)
    if gap:
        since = f" (it now starts at {first[0]})" if first and first[0] else ""
        raise StreamTrimmed(
            f"the run's output after {after} was trimmed: the stream keeps its last "
            f"{stream_maxlen()} entries or so{since}. Load the chat's history again, then follow "
            "the run from its current position"
        )


def check_resume(client: redis.Redis[str], run_id: str, after: str) -> None:
    """:func:`check_after` for the run's stream as it is now (one ``XINFO STREAM``)."""
    try:
        info: Any = client.xinfo_stream(keys.output(run_id))
    except redis.ResponseError as exc:
        info = exc
    check_after(info, after)


APPEND = source("append")
_APPEND_SHA = hashlib.sha1(APPEND.encode()).hexdigest()

Command = tuple[Any, ...]


def _xadd(key: str, body: str, maxlen: int) -> Command:
    """The ``XADD`` of one entry, the stream trimmed approximately to ``maxlen``."""
    return ("XADD", key, "MAXLEN", "~", maxlen, "*", "c", body)


class Fence:
    """The lease a run's owner writes under: an append is refused once the lease is another's."""

    __slots__ = ("lease_key", "lease_ms", "run_key", "token")

    def __init__(self, run_id: str, token: str) -> None:
        self.lease_key = keys.lease(run_id)
        self.run_key = keys.run(run_id)
        self.token = token
        self.lease_ms = int(lease_seconds() * 1000)

    def append(self, key: str, body: str, maxlen: int) -> Command:
        """The fenced append of one entry (the ``append`` script, by its SHA)."""
        return ("EVALSHA", _APPEND_SHA, 3, key, self.lease_key, self.run_key, self.token,
                self.lease_ms, maxlen, body)


def _no_script(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.NoScriptError)


class _Append:
    """One queued append: filled in by the writer thread, then ``done`` is set."""

    __slots__ = ("command", "done", "error", "id")

    def __init__(self, command: Command) -> None:
        self.command = command
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

    def __init__(self, client: redis.Redis[str]) -> None:
        self.client = client
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Append] = []
        self._inflight = 0
        self._thread: threading.Thread | None = None

    def append(self, command: Command) -> str:
        """Append one entry (now, or with the next batch); returns its id."""
        item: _Append | None = None
        with self._cond:
            if self._inflight or self._queue:
                item = _Append(command)
                self._queue.append(item)
                self._start()
                self._cond.notify()
            else:
                self._inflight += 1
        if item is not None:
            return item.result(self)
        try:
            return str(self._execute(command))
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

    def _execute(self, command: Command) -> Any:
        """One command; a fenced append whose script Redis forgot (a restart) loads it again."""
        try:
            return self.client.execute_command(*command)
        except redis.exceptions.NoScriptError:
            self.client.script_load(APPEND)  # type: ignore[no-untyped-call]
            return self.client.execute_command(*command)

    def _send(self, batch: list[_Append]) -> None:
        try:
            if len(batch) == 1:
                item = batch[0]
                item.id = str(self._execute(item.command))
                return
            pipe = self.client.pipeline(transaction=False)
            for item in batch:
                pipe.execute_command(*item.command)  # type: ignore[no-untyped-call]
            replies = pipe.execute(raise_on_error=False)
            if any(_no_script(reply) for reply in replies):
                self.client.script_load(APPEND)  # type: ignore[no-untyped-call]
                for i, (item, reply) in enumerate(zip(batch, replies, strict=True)):
                    if _no_script(reply):
                        replies[i] = self._execute(item.command)
        except Exception as exc:
            for item in batch:
                if item.id is None:
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


def _writer(client: redis.Redis[str]) -> _Writer:
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
    """Writes chunks to one run's output stream; with ``token`` (the owner's lease token) every
    append is fenced, and :class:`~chatworker.store.scripts.LeaseLost` is raised once refused."""

    def __init__(self, client: redis.Redis[str], run_id: str, *, token: str | None = None) -> None:
        self.client = client
        self.key = keys.output(run_id)
        self.maxlen = stream_maxlen()
        self.fence = Fence(run_id, token) if token else None

    def _command(self, chunk: dict[str, Any]) -> Command:
        body = encode(chunk)
        if self.fence is None:
            return _xadd(self.key, body, self.maxlen)
        return self.fence.append(self.key, body, self.maxlen)

    def write(self, chunk: dict[str, Any]) -> str:
        """Append ``chunk``; returns its entry id once it is in Redis."""
        try:
            return _writer(self.client).append(self._command(chunk))
        except redis.ResponseError as exc:
            raise_if_lease_lost(exc)
            raise

    def write_many(self, chunks: Iterable[dict[str, Any]]) -> list[str]:
        """Append several chunks in one round trip; returns their ids."""
        items = [_Append(self._command(chunk)) for chunk in chunks]
        if not items:
            return []
        writer = _writer(self.client)
        writer.submit(items)
        try:
            return [item.result(writer) for item in items]
        except redis.ResponseError as exc:
            raise_if_lease_lost(exc)
            raise


def decode_entries(raw: Any) -> list[Entry]:
    """``[(id, {"c": json})...]`` from redis-py → ``[(id, chunk)...]``."""
    out: list[Entry] = []
    for entry_id, fields in raw or []:
        if isinstance(fields, list):  # left raw by a cluster client's transaction
            fields = dict(zip(fields[::2], fields[1::2], strict=False))
        body = fields.get("c")
        if body is None:
            continue
        out.append((str(entry_id), json.loads(body)))
    return out


def read(
    client: redis.Redis[str], run_id: str, after: str | None = None, count: int | None = None
) -> list[Entry]:
    """Entries strictly after ``after`` (from the first retained entry when None).

    With ``after``, raises :class:`StreamTrimmed` when entries after it were trimmed away and
    :class:`StreamIdAhead` when it is beyond the stream's end (see :func:`check_after`);
    ``ValueError`` when it is not a stream id.
    """
    key = keys.output(run_id)
    if after is None:
        return decode_entries(client.xrange(key, min="-", max="+", count=count))
    if not is_stream_id(after, ms_only=True):
        raise ValueError(f"not a stream id: {after!r} (expected e.g. '1718000000000-0')")
    pipe = client.pipeline(transaction=True)  # the range and the trim state of one moment
    pipe.xrange(key, min=f"({after}", max="+", count=count)
    pipe.xinfo_stream(key)
    raw, info = pipe.execute(raise_on_error=False)
    check_after(info, after)
    if isinstance(raw, Exception):
        raise raw
    return decode_entries(raw)


def last_of_type(client: redis.Redis[str], run_id: str, kind: str, within: int) -> str | None:
    """The id of the latest entry whose chunk type is ``kind``, among the last ``within``."""
    upper, seen, needle = "+", 0, f'"{kind}"'
    while seen < within:
        entries = client.xrevrange(keys.output(run_id), max=upper, min="-", count=500)
        for entry_id, fields in entries:
            raw = str(fields.get("c", ""))
            if needle in raw and json.loads(raw).get("type") == kind:
                return str(entry_id)
        if len(entries) < 500:
            return None
        seen += len(entries)
        upper = f"({entries[-1][0]}"
    return None


def key_of(run_id: str) -> str:
    """The name of the run's output stream (for readers that block on many streams at once)."""
    return keys.output(run_id)


def tail_id(client: redis.Redis[str], run_id: str) -> str:
    """The id of the stream's last entry, or ``"0-0"`` when it is empty."""
    last = client.xrevrange(keys.output(run_id), count=1)
    return str(last[0][0]) if last else "0-0"
