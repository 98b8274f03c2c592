"""A run's output stream: one Redis Stream entry per chunk, field ``c`` holding its JSON.

Entry ids are made by Redis, are monotonic, and are the SSE event ids clients resume from.

Appends are group-committed across the runs of a process (:mod:`.stream_writer`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from ..config import stream_maxlen
from ..errors import StreamIdAhead, StreamTrimmed
from . import keys
from .entry_ids import Entry, is_stream_id, key_before, order_key
from .scripts import raise_if_lease_lost
from .stream_writer import Append, Command, Fence, unfenced_append, writer_for


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


def _xadd(key: str, body: str, maxlen: int) -> Command:
    """The unfenced append of one entry, the stream trimmed approximately to ``maxlen``."""
    return unfenced_append(key, body, maxlen)


class OutputStream:
    """Writes chunks to one run's output stream; with ``token`` (the owner's lease token) every
    append is fenced, and :class:`~chatworker.store.scripts.LeaseLost` is raised once refused."""

    def __init__(self, client: redis.Redis[str], run_id: str, *, token: str | None = None) -> None:
        self.client = client
        self.key = keys.output(run_id)
        self.maxlen = stream_maxlen()
        self.fence = Fence(run_id, token) if token else None
        #: Appends sent with :meth:`send` whose outcome nobody has checked yet.
        self._pending: list[Append] = []

    def _command(self, chunk: dict[str, Any]) -> Command:
        body = encode(chunk)
        if self.fence is None:
            return _xadd(self.key, body, self.maxlen)
        return self.fence.append(self.key, body, self.maxlen)

    def send(self, chunk: dict[str, Any]) -> None:
        """Queue ``chunk`` for the process's writer and return at once, without its id.

        The chunk reaches Redis within the writer's linger, in order with this stream's other
        appends; :meth:`write` and :meth:`flush` wait for it and raise what it met (say
        :class:`~chatworker.store.scripts.LeaseLost`). For the many small chunks of a reply:
        the caller goes on reading the model while the writer batches them.
        """
        item = Append(self._command(chunk))
        self._pending.append(item)
        writer_for(self.client).submit([item])
        if len(self._pending) >= 64:
            self._settle(wait=False)

    def flush(self) -> None:
        """Wait until every chunk :meth:`send` queued is in Redis (raise what one met)."""
        self._settle(wait=True)

    def _settle(self, *, wait: bool) -> None:
        pending, writer = self._pending, writer_for(self.client)
        while pending:
            item = pending[0]
            if not wait and not item.done.is_set():
                return
            del pending[0]
            try:
                item.result(writer)
            except redis.ResponseError as exc:
                raise_if_lease_lost(exc)
                raise

    def write(self, chunk: dict[str, Any]) -> str:
        """Append ``chunk``; returns its entry id once it (and every chunk sent before it) is
        in Redis."""
        try:
            if self._pending:
                item = Append(self._command(chunk))
                writer = writer_for(self.client)
                writer.submit([item])
                self.flush()
                return item.result(writer)
            return writer_for(self.client).append(self._command(chunk))
        except redis.ResponseError as exc:
            raise_if_lease_lost(exc)
            raise

    def write_many(self, chunks: Iterable[dict[str, Any]]) -> list[str]:
        """Append several chunks in one round trip; returns their ids."""
        items = [Append(self._command(chunk)) for chunk in chunks]
        if not items:
            self.flush()
            return []
        writer = writer_for(self.client)
        writer.submit(items)
        try:
            self.flush()
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
