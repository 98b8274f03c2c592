"""Sending the Celery message that makes a worker start or resume a run."""

from __future__ import annotations

import logging

from ..config import get_redis
from ..store.run_store import RunStore
from .registry import get_task

log = logging.getLogger("chatworker.dispatch")


def enqueue(run_id: str, task_id: str | None = None) -> None:
    """Send the run's start message to its task's Celery queue (any worker may take it)."""
    if task_id is None:
        task_id = RunStore(get_redis()).fields(run_id, "task_id")[0] or ""
    get_task(task_id).enqueue(run_id)


def enqueue_quietly(run_id: str) -> None:
    """:func:`enqueue` from a sweep: a failure is logged, and the next sweep tries again."""
    try:
        enqueue(run_id)
    except Exception:
        log.exception("run %s: could not enqueue it", run_id)
