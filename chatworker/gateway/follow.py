"""Following a chat: ``GET /ui/<taskId>/<chatId>/follow`` streams every turn of the chat, live,
whoever sends it, across the chat's runs.

Every device that shows a chat keeps this stream open. It relays the chat's current run's output
stream entry by entry (ids and control chunks included, as ``GET /runs/<id>/stream`` does); each
turn's ``__turn_start`` carries the messages the turn begins with, so a viewer can show a turn it
did not send. When the run ends, the stream waits for the chat's next run (a continuation run
started by any device, through any gateway: the chat's latest run is kept in Redis) and goes on
with it from its first entry. Before the entries of each run comes one event without an id:

    {"type": "__chat_run", "runId": "run_…", "publicAccessToken": "…"}

a fresh token for that run, so the viewer can send to it, stop it and resume it by id.

Where it starts: ``?runId=`` with ``Last-Event-ID`` (or ``?lastEventId=``) resumes strictly after
that entry of that run; ``?runId=`` alone reads that run from its first entry; without either it
starts at the chat's current position (the start of the turn in flight, replayed whole, else the
end of the run's stream). It closes after ``?timeout=`` seconds with nothing new, or when the
chat's run is lost; the client reconnects with the last run id and entry id it read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import redis

from .. import runs, tokens
from ..config import get_redis
from ..engine.registry import get_task
from ..errors import RunNotFound, TaskNotFound
from ..store import streams
from ..store.entry_ids import previous_id
from .sse import Follow, chunk_type, comment, event, heartbeat, heartbeat_seconds

__all__ = ["chat_follow_body", "start_position"]

log = logging.getLogger("chatworker.follow")

#: Seconds between looks for the chat's next run once its run has ended.
NEXT_RUN_POLL = 0.25


def start_position(run_id: str) -> str | None:
    """Where a viewer without a position starts: just before the turn in flight (so it is
    replayed whole), else after the run's last entry (None: from the first entry)."""
    info = runs.status(run_id)
    if info.is_streaming and info.turn_start_id:
        return previous_id(info.turn_start_id)
    tail = runs.tail_id(run_id)
    return None if tail == "0-0" else tail


def _run_event(run_id: str, task_id: str) -> str:
    try:
        ttl = get_task(task_id).chat_access_token_ttl
    except TaskNotFound:
        ttl = "1h"
    token = tokens.create_run_token(run_id, ttl)
    return event(json.dumps({"type": "__chat_run", "runId": run_id, "publicAccessToken": token},
                            separators=(",", ":")))


def _caught_up(run_id: str, after: str | None) -> bool:
    """An ended run whose stream holds nothing after ``after``."""
    try:
        ended = runs.status(run_id).ended
    except RunNotFound:
        return True
    tail = runs.tail_id(run_id)
    return ended and (tail == "0-0" or tail == after)


def chat_follow_body(
    task_id: str,
    chat_id: str,
    run_id: str | None,
    after: str | None,
    idle: float,
    allowed: Callable[[str], bool],
) -> Iterator[str]:
    """The SSE body of the follow route; ``allowed(run_id)`` says whether the caller may follow
    a run the chat moves on to (a run of the same principal)."""
    yield comment("stream open")
    last_entry = time.monotonic()
    beat = heartbeat_seconds()
    current = run_id
    announced = False
    while True:
        if current is not None:
            if not announced:
                yield _run_event(current, task_id)
                announced = True
            if not _caught_up(current, after):
                follow = Follow(current, after, idle_timeout=idle, resume_on_drop=True)
                ended = False
                try:
                    for batch in follow:
                        if batch is None:
                            yield heartbeat(follow)
                            continue
                        last_entry = time.monotonic()
                        parts = []
                        for entry_id, raw in batch:
                            parts.append(event(raw, entry_id))
                            after = entry_id
                            if "__run_end" in raw and chunk_type(raw) == "__run_end":
                                ended = True
                                break
                        yield "".join(parts)
                        if ended:
                            break
                finally:
                    follow.close()
                if not ended:
                    return  # idle, lost, trimmed: the client reconnects by run id and entry id
        # The run has ended (or the chat has none yet): wait for the chat's next run.
        next_beat = time.monotonic() + beat
        while True:
            try:
                candidate = runs.find_chat_run(task_id, chat_id)
                moved = candidate is not None and candidate != current and allowed(candidate)
            except redis.RedisError as exc:
                log.warning("following chat %s: Redis error (%s); closing", chat_id, exc)
                return  # the client reconnects by run id and entry id
            if moved and candidate is not None:
                current, after, announced = candidate, None, False
                break
            now = time.monotonic()
            if now - last_entry >= idle:
                return
            if now >= next_beat:
                next_beat = now + beat
                yield comment("keep-alive")
            time.sleep(NEXT_RUN_POLL)


def check_resume(run_id: str, after: str | None) -> None:
    """400 ``stream_id_ahead`` / 410 ``stream_trimmed`` before any event is sent."""
    if after is not None:
        streams.check_resume(get_redis(), run_id, after)
