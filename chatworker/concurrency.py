"""Concurrency groups: at most N runs of a named queue execute at once, across all workers.

A slot is a member of a sorted set scored by its expiry; the owning worker's mailbox renews it
with the run's lease, so a dead worker's slot lapses and is given back. Runs that find no free
slot wait in a FIFO list and are enqueued, oldest first, as slots free up. A suspended run
holds no slot.
"""

from __future__ import annotations

import logging
from typing import Any

from . import keys
from .config import get_redis, lease_seconds
from .state import redis_now_ms

log = logging.getLogger("chatworker.concurrency")

# Slot expiries are on Redis's clock (``TIME``), the same for every worker.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: slots, waiting ; ARGV: run_id, limit, lease_ms
ACQUIRE = _NOW + """
local expiry = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
  return 1
end
local head = redis.call('LINDEX', KEYS[2], 0)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) and (not head or head == ARGV[1]) then
  if head == ARGV[1] then redis.call('LPOP', KEYS[2]) end
  redis.call('ZADD', KEYS[1], expiry, ARGV[1])
  return 1
end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then redis.call('RPUSH', KEYS[2], ARGV[1]) end
return 0
"""

# KEYS: slots, waiting ; ARGV: run_id, limit
# Frees the run's slot; returns the run that should be started next, if a slot is free for it.
RELEASE = _NOW + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local head = redis.call('LINDEX', KEYS[2], 0)
if head and redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then return head end
return false
"""


def limit_of(task: Any) -> tuple[str, int] | None:
    """``(queue name, limit)`` when the task belongs to a concurrency-limited queue."""
    queue = getattr(task, "queue", None) or {}
    limit = queue.get("concurrency_limit") or queue.get("concurrencyLimit")
    if not limit:
        return None
    return str(queue.get("name") or task.id), int(limit)


def acquire(task: Any, run_id: str) -> bool:
    """Take a slot for ``run_id`` (True), or put it in line (False: the run waits its turn)."""
    group = limit_of(task)
    if group is None:
        return True
    name, limit = group
    client = get_redis()
    got = client.eval(ACQUIRE, 2, keys.queue_slots(name), keys.queue_waiting(name),
                      run_id, limit, int(lease_seconds() * 1000))
    client.hset(keys.QUEUES, name, limit)
    if not got:
        log.info("run %s: waiting for a slot in queue %r (limit %d)", run_id, name, limit)
    return bool(got)


def release(task: Any, run_id: str) -> None:
    """Give back the run's slot and start the next waiting run if one fits."""
    group = limit_of(task)
    if group is None:
        return
    name, limit = group
    client = get_redis()
    nxt = client.eval(RELEASE, 2, keys.queue_slots(name), keys.queue_waiting(name),
                      run_id, limit)
    if nxt:
        _kick(str(nxt))


def renew(names_and_runs: list[tuple[str, str]]) -> None:
    """Extend the slots held by live runs (called with their lease renewal)."""
    if not names_and_runs:
        return
    client = get_redis()
    expiry = redis_now_ms(client) + int(lease_seconds() * 1000)
    pipe = client.pipeline(transaction=False)
    for name, run_id in names_and_runs:
        pipe.zadd(keys.queue_slots(name), {run_id: expiry}, xx=True)
    pipe.execute()


def sweep() -> None:
    """Start waiting runs whose slot was freed by a lapse (a dead worker) rather than a release."""
    client = get_redis()
    queues = client.hgetall(keys.QUEUES)
    if not queues:
        return
    now = redis_now_ms(client)
    for name, limit in queues.items():
        head = client.lindex(keys.queue_waiting(name), 0)
        if not head:
            continue
        client.zremrangebyscore(keys.queue_slots(name), "-inf", now)
        if client.zcard(keys.queue_slots(name)) >= int(limit):
            continue
        if client.set(keys.queue_kick(name), "1", nx=True, px=3000):
            _kick(str(head))


def _kick(run_id: str) -> None:
    from .runs import enqueue

    try:
        enqueue(run_id)
    except Exception:
        log.exception("run %s: could not enqueue it for its free slot", run_id)
