"""Output stream entries as the gateway reads them from Redis.

Catch-up pages come through redis-py (:func:`decode`); published entries are parsed by
:mod:`chatworker.store.published`. Either way an entry is a
:data:`~chatworker.store.entry_ids.RawEntry`: ``(id, chunk JSON text)``. Stream ids are parsed by
:mod:`chatworker.store.entry_ids`.
"""

from __future__ import annotations

from typing import Any

from ..store.entry_ids import RawEntry

__all__ = ["decode"]


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
