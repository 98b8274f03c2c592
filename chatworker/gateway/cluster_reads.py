"""The hub's reader on a Redis Cluster: one pipelined read per node, not one blocking ``XREAD``.

A cluster refuses a command whose keys hash to different slots (``CROSSSLOT``), even on one
node, and every run's stream has a slot of its own: one blocking ``XREAD`` can follow one run
only. So on a cluster the reader sends, each round, one non-blocking ``XREAD`` per slot (the
streams of that slot together) in one pipeline, which the cluster client splits into one round
trip per node, sent together. A round that brought entries is followed at once (after the
hub's gather pause); a quiet one waits :data:`MIN_POLL_SECONDS`, doubling up to
:data:`MAX_POLL_SECONDS`, or less when a stream joins. A failover or a slot migration is
followed by the cluster client (it refreshes the slot map on ``MOVED``/``ASK`` and retries);
a round that still fails is retried with a back-off, and the runs are re-checked once reads
resume, as after a Redis restart on one server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import redis
from redis.crc import key_slot

log = logging.getLogger("chatworker.hub")

#: The wait after a quiet round (no entries), doubling while quiet.
MIN_POLL_SECONDS = 0.005
#: The longest wait between two rounds while no stream has news (the added latency at most).
MAX_POLL_SECONDS = 0.05


def by_slot(tracked: Iterable[Any]) -> list[list[Any]]:
    """The streams grouped by hash slot (each group is one ``XREAD``)."""
    groups: dict[int, list[Any]] = {}
    for item in tracked:
        groups.setdefault(key_slot(item.key.encode()), []).append(item)
    return list(groups.values())


def as_raw(reply: Any) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """A parsed ``XREAD`` reply (``[key, [(id, {field: value})...]]`` or a dict) in the raw
    shape the hub fans out (``[key, [[id, [field, value, ...]]...]]``)."""
    items = reply.items() if isinstance(reply, dict) else reply
    out = []
    for key, entries in items:
        rows = [(str(eid), [str(x) for pair in (fields or {}).items() for x in pair])
                for eid, fields in entries or ()]
        out.append((str(key), rows))
    return out


def read_loop(hub: Any, client: redis.Redis[str]) -> None:
    """Run the hub's reads on the cluster ``client`` until the hub stops."""
    layout = -1
    snapshot: dict[str, Any] = {}
    groups: list[list[Any]] = []
    poll = MIN_POLL_SECONDS
    next_check = 0.0
    failing_since: float | None = None
    backoff = 0.0
    while not hub._stopped:
        with hub._lock:
            if layout != hub._layout:
                layout = hub._layout
                snapshot = dict(hub._streams)
                groups = by_slot(snapshot.values())
            hub._reading_gen = hub._gen
            hub._changed.clear()
        if not snapshot:
            hub._changed.wait(30)
            continue
        if failing_since is None and time.monotonic() >= next_check:
            next_check = time.monotonic() + hub.check_seconds
            hub._check_runs(list(snapshot.values()))
        try:
            pipe = client.pipeline(transaction=False)
            for group in groups:
                pipe.execute_command("XREAD", "COUNT", hub._count, "STREAMS",  # type: ignore[no-untyped-call]
                                     *(t.key for t in group), *(t.cursor for t in group))
            replies = pipe.execute()
        except Exception as exc:  # RedisError, or the client closed under a stopping hub
            if hub._stopped:
                return
            if failing_since is None:
                failing_since = time.monotonic()
                log.warning("SSE hub: cluster read failed (%s); retrying", exc)
            backoff = min(2.0, backoff * 2 or 0.05)
            time.sleep(backoff)
            continue
        if failing_since is not None:
            log.info("SSE hub: cluster reads resumed after %.1fs", time.monotonic() - failing_since)
            failing_since, backoff = None, 0.0
            next_check = 0.0  # a node may have come back empty: check the runs at once
        got = False
        for reply in replies:
            if reply:
                got = True
                hub._fan_out(as_raw(reply), snapshot)
        if got:
            poll = MIN_POLL_SECONDS
            time.sleep(hub.gather)
        else:
            hub._changed.wait(poll)
            poll = min(MAX_POLL_SECONDS, poll * 2)
