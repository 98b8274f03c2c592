"""Server-Sent Events framing and the follow loop every streaming route shares.

:class:`Follow` turns a hub subscription into batches of entries plus heartbeat ticks, and ends
after an idle timeout; the routes decide what to write for each entry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from ..config import env_float
from ..errors import StreamIdAhead, StreamTrimmed
from ..store.entry_ids import RawEntry
from .hub import Hub, get_hub
from .subscription import Subscription

log = logging.getLogger("chatworker.sse")

#: Headers of every SSE response: no caching, and no proxy buffering (nginx honours the last).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Extra header the AI SDK's documentation asks UI message streams to carry.
UI_STREAM_HEADERS = {**SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1"}
DONE = "data: [DONE]\n\n"


def heartbeat_seconds() -> float:
    """``CHATWORKER_SSE_HEARTBEAT``: seconds between heartbeat comments (default 15)."""
    return max(0.05, env_float("CHATWORKER_SSE_HEARTBEAT", 15.0))


def comment(text: str) -> str:
    """An SSE comment line (ignored by clients; keeps proxies and the connection alive)."""
    return f": {text}\n\n"


#: The heartbeat comment while the run goes on (its worker alive, or the run between turns).
KEEP_ALIVE = "keep-alive"
#: The heartbeat comment while the run's turn has lost its worker and no other has taken over.
WAITING = "waiting for a worker"


def heartbeat(follow: Follow) -> str:
    """The heartbeat comment for ``follow``'s run as it stands (see :attr:`Follow.stalled`)."""
    return comment(WAITING if follow.stalled else KEEP_ALIVE)


def event(data: str, entry_id: str | None = None) -> str:
    """One SSE event; multi-line data is split over several ``data:`` lines, as SSE requires."""
    head = f"id: {entry_id}\n" if entry_id else ""
    if "\n" in data or "\r" in data:
        lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return head + "".join(f"data: {line}\n" for line in lines) + "\n"
    return f"{head}data: {data}\n\n"


def chunk_type(raw: str) -> str:
    """The ``type`` of a chunk's JSON text (``""`` when it has none or is not JSON)."""
    try:
        chunk = json.loads(raw)
    except ValueError:
        return ""
    value = chunk.get("type") if isinstance(chunk, dict) else None
    return value if isinstance(value, str) else ""


def parse_chunk(raw: str) -> dict[str, Any]:
    """A chunk's JSON text as a dict (``{}`` for anything that is not a JSON object)."""
    try:
        chunk = json.loads(raw)
    except ValueError:
        return {}
    return chunk if isinstance(chunk, dict) else {}


class Follow:
    """Iterate one run's output for a response: entry batches, and ``None`` for a heartbeat.

    A heartbeat also comes at once when :attr:`stalled` changes: the run's turn lost its worker
    (it died, and no other worker has taken the run over yet), or has one again.

    Ends after ``idle_timeout`` seconds without a new entry (``end_reason`` "idle"), when the hub
    drops a slow reader ("dropped"; unless ``resume_on_drop``: it then resubscribes after the
    last entry it gave, losing nothing), on a Redis error ("error"), when entries after the
    position were trimmed away ("trimmed") or the position is beyond the stream's end ("ahead"),
    or when the run's record vanished from Redis ("lost": flushed, or restarted without
    persistence; the run must exist when following starts). Always :meth:`close` it.
    """

    def __init__(
        self,
        run_id: str,
        after: str | None,
        *,
        idle_timeout: float,
        heartbeat: float | None = None,
        resume_on_drop: bool = False,
        hub: Hub | None = None,
    ) -> None:
        self.run_id = run_id
        self.after = after
        self.idle_timeout = idle_timeout
        self.heartbeat = heartbeat if heartbeat is not None else heartbeat_seconds()
        self.resume_on_drop = resume_on_drop
        self.hub = hub or get_hub()
        self.end_reason: str | None = None
        #: The run's turn has no live worker, as of the last heartbeat.
        self.stalled = False
        self._sub: Subscription | None = None

    def __iter__(self) -> Iterator[list[RawEntry] | None]:
        now = time.monotonic()
        last_entry, next_beat = now, now + self.heartbeat
        while True:
            sub = self._sub
            if sub is None:
                sub = self._sub = self.hub.subscribe(self.run_id, self.after, watch_run=True)
            now = time.monotonic()
            if now - last_entry >= self.idle_timeout:
                self.end_reason = "idle"
                return
            if sub.stalled != self.stalled or now >= next_beat:
                self.stalled = sub.stalled
                next_beat = now + self.heartbeat
                yield None
                continue
            wait = min(last_entry + self.idle_timeout, next_beat) - now
            try:
                batch = sub.next_batch(wait)
            except redis.RedisError as exc:
                log.warning("SSE stream of run %s: Redis error (%s); closing", self.run_id, exc)
                self.end_reason = "error"
                return
            except StreamTrimmed:
                log.info("SSE stream of run %s: trimmed after %s; closing", self.run_id, self.after)
                self.end_reason = "trimmed"
                return
            except StreamIdAhead:
                self.end_reason = "ahead"
                return
            if batch:
                self.after = batch[-1][0]
                last_entry = time.monotonic()
                yield batch
            elif sub.lost:
                self.end_reason = "lost"
                return
            elif sub.dropped:
                sub.close()
                self._sub = None
                if not self.resume_on_drop:
                    self.end_reason = "dropped"
                    return

    def close(self) -> None:
        """Leave the hub."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None
