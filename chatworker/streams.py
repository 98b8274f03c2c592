"""A run's output stream: one Redis Stream entry per chunk, field ``c`` holding its JSON.

Entry ids are made by Redis, are monotonic, and are the SSE event ids clients resume from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import redis

from . import keys
from .config import stream_maxlen

_ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")

Entry = tuple[str, dict[str, Any]]


def encode(chunk: dict[str, Any]) -> str:
    """Compact JSON, the form stored in the stream and sent as SSE ``data:``."""
    return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)


def is_entry_id(value: str) -> bool:
    """True for a well-formed stream id such as ``1700000000000-0``."""
    return bool(_ENTRY_ID.match(value))


class OutputStream:
    """Writes chunks to one run's output stream."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.key = keys.output(run_id)
        self.maxlen = stream_maxlen()

    def write(self, chunk: dict[str, Any]) -> str:
        """Append ``chunk``; returns its entry id."""
        return str(
            self.client.xadd(self.key, {"c": encode(chunk)}, maxlen=self.maxlen, approximate=True)
        )

    def write_many(self, chunks: Iterable[dict[str, Any]]) -> list[str]:
        """Append several chunks in one round trip; returns their ids."""
        pipe = self.client.pipeline(transaction=False)
        for chunk in chunks:
            pipe.xadd(self.key, {"c": encode(chunk)}, maxlen=self.maxlen, approximate=True)
        return [str(i) for i in pipe.execute()]


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
