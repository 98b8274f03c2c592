"""Concurrency-group slots in Redis: a sorted set of holders scored by expiry, and a FIFO line.

The policy (which task belongs to which group, starting the next run) is the engine's
(``chatworker.engine.concurrency``); this module only keeps the records, on Redis's clock.
"""

from __future__ import annotations

import redis

from ..config import lease_seconds
from . import keys
from .scripts import redis_now_ms, registered


def _lease_ms() -> int:
    return int(lease_seconds() * 1000)


def acquire(client: redis.Redis[str], name: str, limit: int, run_id: str) -> bool:
    """Take a slot of queue ``name`` for the run (True) or put it in line (False)."""
    got = registered(client)["slot_acquire"](
        keys=[keys.queue_slots(name), keys.queue_waiting(name)], args=[run_id, limit, _lease_ms()]
    )
    client.hset(keys.queues(name), name, limit)
    return bool(got)


def release(client: redis.Redis[str], name: str, limit: int, run_id: str) -> str | None:
    """Free the run's slot; the run to start next, if a slot is free for it."""
    nxt = registered(client)["slot_release"](
        keys=[keys.queue_slots(name), keys.queue_waiting(name)], args=[run_id, limit]
    )
    return str(nxt) if nxt else None


def renew(client: redis.Redis[str], held: list[tuple[str, str]]) -> None:
    """Extend the slots ``(queue name, run id)`` held by live runs."""
    if not held:
        return
    expiry = redis_now_ms(client) + _lease_ms()
    pipe = client.pipeline(transaction=False)
    for name, run_id in held:
        pipe.zadd(keys.queue_slots(name), {run_id: expiry}, xx=True)
    pipe.execute()


def next_after_lapse(client: redis.Redis[str]) -> list[str]:
    """For each queue with a free slot (one freed by a lapse, not a release) and runs in line:
    its first waiting run, at most once every 3 s per queue (the kick is debounced)."""
    pipe = client.pipeline(transaction=False)
    for key in keys.queue_buckets():
        pipe.hgetall(key)
    queues = {name: limit for part in pipe.execute() for name, limit in part.items()}
    if not queues:
        return []
    now = redis_now_ms(client)
    starts: list[str] = []
    for name, limit in queues.items():
        head = client.lindex(keys.queue_waiting(name), 0)
        if not head:
            continue
        client.zremrangebyscore(keys.queue_slots(name), "-inf", now)
        if client.zcard(keys.queue_slots(name)) >= int(limit):
            continue
        if client.set(keys.queue_kick(name), "1", nx=True, px=3000):
            starts.append(str(head))
    return starts
