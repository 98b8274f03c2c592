"""Concurrency groups: at most N runs of a named queue execute at once, across all workers.

A slot is held while the run executes; the owning worker's mailbox renews it with the run's
lease, so a dead worker's slot lapses and is given back. Runs that find no free slot wait in a
FIFO line and are enqueued, oldest first, as slots free up. A suspended run holds no slot. The
records live in Redis (:mod:`chatworker.store.slots`); this module is the policy.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import metrics
from ..config import get_redis
from ..store import slots
from .dispatch import enqueue_quietly

log = logging.getLogger("chatworker.concurrency")


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
    got = slots.acquire(get_redis(), name, limit, run_id)
    if not got:
        metrics.concurrency_wait(name)
        log.info("run %s: waiting for a slot in queue %r (limit %d)", run_id, name, limit)
    return got


def release(task: Any, run_id: str) -> None:
    """Give back the run's slot and start the next waiting run if one fits."""
    group = limit_of(task)
    if group is None:
        return
    name, limit = group
    nxt = slots.release(get_redis(), name, limit, run_id)
    if nxt:
        enqueue_quietly(nxt)


def renew(names_and_runs: list[tuple[str, str]]) -> None:
    """Extend the slots held by live runs (called with their lease renewal)."""
    slots.renew(get_redis(), names_and_runs)


def sweep() -> None:
    """Start waiting runs whose slot was freed by a lapse (a dead worker) rather than a release."""
    for run_id in slots.next_after_lapse(get_redis()):
        enqueue_quietly(run_id)
