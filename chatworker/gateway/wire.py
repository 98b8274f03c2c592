"""Output stream entries as they cross the Redis wire to the hub.

The hub reads with hand-packed ``XREAD`` commands (:func:`bulk` encodes one RESP bulk string)
and decodes the raw replies itself (:func:`decode_raw`); catch-up pages come through redis-py
(:func:`decode`). Either way an entry is a :data:`~chatworker.store.entry_ids.RawEntry`:
``(id, chunk JSON text)``. Stream ids are parsed by :mod:`chatworker.store.entry_ids`.
"""

from __future__ import annotations

from typing import Any

from ..store.entry_ids import RawEntry

__all__ = ["bulk", "decode", "decode_raw"]


def bulk(value: str) -> bytes:
    """One RESP bulk string."""
    data = value.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def decode_raw(entries: Any) -> list[RawEntry]:
    """Entries of a raw ``XREAD`` reply (``[id, [field, value, ...]]`` each) → ``(id, c)``."""
    out: list[RawEntry] = []
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


def decode(entries: Any) -> list[RawEntry]:
    """Entries of a redis-py ``XRANGE`` reply (``(id, {field: value})`` each) → ``(id, c)``.
    A cluster client's transaction leaves the reply raw (``[id, [field, value]]``): read too."""
    out: list[RawEntry] = []
    for entry_id, fields in entries or ():
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=False))
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        raw = (fields or {}).get("c")
        if raw is None:
            raw = (fields or {}).get(b"c", b"{}")
        out.append((eid, raw.decode() if isinstance(raw, bytes) else str(raw)))
    return out
