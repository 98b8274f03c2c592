"""The worker entry point: ``celery -A chatworker.worker worker -P gevent -Q chat``.

Exposes the Celery ``app`` configured from the environment, with the chat tasks of the modules
in ``CHATWORKER_TASKS`` loaded.
"""

from __future__ import annotations

import logging
import sys

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

from . import logs
from .ai._compat import hide_trio_under_gevent
from .config import redis_url, tune_gc
from .engine.broker import describe
from .engine.celery_app import get_app
from .engine.mailbox import get_mailbox
from .engine.registry import load_tasks
from .engine.worker_metrics import serve_worker_metrics
from .tokens import SecretMissing, check_secret, warn_dev_secret

log = logging.getLogger("chatworker.worker")

try:
    # Every run mints run tokens: without a secret each one would fail, so refuse to start,
    # as the gateway does (dev mode logs a warning about its generated secret instead).
    check_secret("chatworker worker", warn=False)  # warned once logging is set up
except SecretMissing as exc:
    sys.stderr.write(f"chatworker worker: refusing to start: {exc}\n")
    raise SystemExit(2) from None

hide_trio_under_gevent()  # before any task module imports the openai client
try:
    app = get_app()
except ValueError as exc:  # a setting it cannot work with, e.g. no broker for a cluster
    sys.stderr.write(f"chatworker worker: refusing to start: {exc}\n")
    raise SystemExit(2) from None
tasks = load_tasks()
if not tasks:
    log.warning("no chat tasks loaded: set CHATWORKER_TASKS to the modules that define them")


@worker_ready.connect  # type: ignore[untyped-decorator]
def _announce(**_: object) -> None:
    # Start the mailbox now, so this worker sweeps for expired and orphaned runs even before it
    # runs anything itself (prefork children start theirs in worker_process_init).
    tune_gc()
    get_mailbox().start()
    serve_worker_metrics()  # CHATWORKER_METRICS_PORT, when set
    warn_dev_secret("chatworker worker")
    log.info("chatworker worker ready: tasks %s, redis %s, broker %s",
             ", ".join(sorted(tasks)) or "none", describe(redis_url()),
             describe(str(app.conf.broker_url)))


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _child_started(**_: object) -> None:
    tune_gc()
    get_mailbox().start()
    serve_worker_metrics()


@after_setup_logger.connect  # type: ignore[untyped-decorator]
@after_setup_task_logger.connect  # type: ignore[untyped-decorator]
def _log_format(logger: logging.Logger, **_: object) -> None:
    # CHATWORKER_LOG_FORMAT=json: Celery's handlers write JSON lines with the run fields.
    if logs.log_format() == "json":
        logs.use_json(logger.handlers)


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _draining(**_: object) -> None:
    get_mailbox().drain()


__all__ = ["app"]
