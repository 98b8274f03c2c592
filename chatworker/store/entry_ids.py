"""Output stream entry ids: the ``<ms>-<seq>`` ids Redis gives each entry, which are also the
SSE event ids clients resume from. One parser for every layer that reads them."""

from __future__ import annotations

import re
from typing import Any

#: One output stream entry with its chunk decoded.
Entry = tuple[str, dict[str, Any]]
#: One output stream entry with its chunk as the JSON text stored in field ``c`` (relayed as is).
RawEntry = tuple[str, str]

#: The largest value of either part of an id.
MAX_PART = 2**64 - 1

_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")


def parse_id(entry_id: str, *, ms_only: bool = False) -> tuple[int, int]:
    """The ``(ms, seq)`` pair of a stream id; ``ValueError`` on anything else. With
    ``ms_only``, a bare ``<ms>`` is read as ``<ms>-0`` (as Redis reads it)."""
    match = _ID.match(entry_id)
    if not match or (match.group(2) is None and not ms_only):
        raise ValueError(f"not a stream id: {entry_id!r} (expected e.g. '1718000000000-0')")
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    if ms > MAX_PART or seq > MAX_PART:
        raise ValueError(f"stream id out of range: {entry_id!r}")
    return ms, seq


def is_stream_id(value: str, *, ms_only: bool = False) -> bool:
    """True when ``value`` is a well-formed stream id (see :func:`parse_id`)."""
    try:
        parse_id(value, ms_only=ms_only)
    except ValueError:
        return False
    return True


def order_key(entry_id: str) -> tuple[int, int]:
    """The ``(ms, seq)`` order of an id already known to be well formed (no validation: a hot
    path; ``"5"`` is ``5-0``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def key_before(key: tuple[int, int]) -> tuple[int, int]:
    """The greatest ``(ms, seq)`` strictly before ``key`` (``(0, 0)`` for itself)."""
    ms, seq = key
    if seq:
        return ms, seq - 1
    return (ms - 1, MAX_PART) if ms else (0, 0)


def previous_id(entry_id: str) -> str | None:
    """The greatest id strictly before ``entry_id``, or None when it is ``0-0``."""
    key = parse_id(entry_id)
    if key == (0, 0):
        return None
    ms, seq = key_before(key)
    return f"{ms}-{seq}"
