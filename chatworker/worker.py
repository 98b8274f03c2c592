"""The worker entry point: ``celery -A chatworker.worker worker -P gevent -Q chat``.

Exposes the Celery ``app`` configured from the environment, with the chat tasks of the modules
in ``CHATWORKER_TASKS`` loaded.
"""

from __future__ import annotations

import gc
import logging

from celery.signals import worker_process_init, worker_ready, worker_shutting_down

from .ai._compat import hide_trio_under_gevent
from .app import get_app
from .config import gc_thresholds, redis_url
from .mailbox import get_mailbox
from .registry import load_tasks

log = logging.getLogger("chatworker.worker")

hide_trio_under_gevent()  # before any task module imports the openai client
app = get_app()
tasks = load_tasks()
if not tasks:
    log.warning("no chat tasks loaded: set CHATWORKER_TASKS to the modules that define them")


def tune_gc() -> None:
    """Make full garbage collections rare in a worker process (``CHATWORKER_GC_THRESHOLD``).

    A process streaming 1,000 chats holds millions of objects, and Python's default thresholds
    ran a full collection over all of them every few seconds (~0.3 s each, stalling every stream:
    a quarter of the worker's CPU in the benchmark). Objects alive after startup are frozen out
    of collections, and young collections run less often, so short-lived chunks die uncounted.
    """
    try:
        thresholds = gc_thresholds()
    except ValueError as exc:
        log.error("%s; keeping Python's garbage collector settings", exc)
        return
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    log.debug("gc thresholds %s, %d startup objects frozen", thresholds, gc.get_freeze_count())


@worker_ready.connect
def _announce(**_: object) -> None:
    # Start the mailbox now, so this worker sweeps for expired and orphaned runs even before it
    # runs anything itself (prefork children start theirs in worker_process_init).
    tune_gc()
    get_mailbox().start()
    log.info("chatworker worker ready: tasks %s, redis %s", ", ".join(sorted(tasks)) or "none",
             redis_url())


@worker_process_init.connect
def _child_started(**_: object) -> None:
    tune_gc()
    get_mailbox().start()


@worker_shutting_down.connect
def _draining(**_: object) -> None:
    get_mailbox().drain()


__all__ = ["app", "tune_gc"]
