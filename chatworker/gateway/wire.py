"""Stream ids, and output stream entries as they cross the Redis wire.

The hub reads with hand-packed ``XREAD`` commands (:func:`bulk` encodes one RESP bulk string)
and decodes the raw replies itself (:func:`decode_raw`); catch-up pages come through redis-py
(:func:`decode`). Either way an entry is ``(id, chunk JSON text)``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "Entry",
    "bulk",
    "decode",
    "decode_raw",
    "is_stream_id",
    "order_key",
    "parse_id",
    "previous_id",
]

#: One output stream entry: its Redis stream id and the chunk JSON text (field ``c``).
Entry = tuple[str, str]

_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_MAX_U64 = 2**64 - 1


def parse_id(entry_id: str) -> tuple[int, int]:
    """The ``(ms, seq)`` pair of a stream id; raises ``ValueError`` on anything else."""
    match = _ID.match(entry_id)
    if not match:
        raise ValueError(f"not a stream id: {entry_id!r} (expected e.g. '1718000000000-0')")
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms > _MAX_U64 or seq > _MAX_U64:
        raise ValueError(f"stream id out of range: {entry_id!r}")
    return ms, seq


def order_key(entry_id: str) -> tuple[int, int]:
    """The ``(ms, seq)`` order key of an id Redis made (no validation: hot path)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def bulk(value: str) -> bytes:
    """One RESP bulk string."""
    data = value.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def is_stream_id(value: str) -> bool:
    """True when ``value`` is a well-formed Redis stream id (``<ms>-<seq>``)."""
    try:
        parse_id(value)
    except ValueError:
        return False
    return True


def previous_id(entry_id: str) -> str | None:
    """The greatest id strictly before ``entry_id``, or None when it is ``0-0``."""
    ms, seq = parse_id(entry_id)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    if ms > 0:
        return f"{ms - 1}-{_MAX_U64}"
    return None


def decode_raw(entries: Any) -> list[Entry]:
    """Entries of a raw ``XREAD`` reply (``[id, [field, value, ...]]`` each) → ``(id, c)``."""
    out: list[Entry] = []
    for entry_id, fields in entries or ():
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        raw: Any = None
        if fields:
            if fields[0] in ("c", b"c"):
                raw = fields[1]
            else:
                pairs = dict(zip(fields[::2], fields[1::2], strict=False))
                raw = pairs.get("c", pairs.get(b"c"))
        if raw is None:
            raw = "{}"
        out.append((eid, raw.decode() if isinstance(raw, bytes) else raw))
    return out


def decode(entries: Any) -> list[Entry]:
    """Entries of a redis-py ``XRANGE`` reply (``(id, {field: value})`` each) → ``(id, c)``."""
    out: list[Entry] = []
    for entry_id, fields in entries or ():
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        raw = (fields or {}).get("c")
        if raw is None:
            raw = (fields or {}).get(b"c", b"{}")
        out.append((eid, raw.decode() if isinstance(raw, bytes) else str(raw)))
    return out
