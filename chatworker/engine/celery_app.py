"""The Celery app chat runs execute on, configured from the environment.

The settings keep a long-lived task from being delivered twice (early acks, no prefetch; see
docs/architecture.md): recovery from a dead worker is chatworker's own lease and checkpoint,
never broker redelivery. The broker is ``CHATWORKER_BROKER_URL`` (see :mod:`.broker`); the
settings that only Celery's Redis transport knows are given only to a Redis broker.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from celery import Celery

from ..config import Duration, broker_url, env
from ..types import TaskDefinition
from .broker import is_redis, transport_options
from .start import TriggerResult, start_run

log = logging.getLogger("chatworker.app")

#: The Celery queue chat runs travel on unless a task names another.
CHAT_QUEUE = env("CHATWORKER_QUEUE", "chat")

SETTINGS: dict[str, Any] = {
    "task_acks_late": False,
    "worker_prefetch_multiplier": 1,
    "task_default_queue": CHAT_QUEUE,
    "task_ignore_result": True,
    "task_serializer": "json",
    "accept_content": ["json"],
    "broker_connection_retry_on_startup": True,
    "worker_cancel_long_running_tasks_on_connection_loss": True,
    "worker_hijack_root_logger": False,
}


def broker_settings(url: str) -> dict[str, Any]:
    """The settings that depend on the broker's transport.

    A Redis broker gets no ack emulation (see :func:`~.broker.transport_options`) and
    ``worker_disable_prefetch`` (a worker fetches a message only when it has a free slot);
    Celery supports both for Redis only.
    """
    if not is_redis(url):
        return {}
    return {"worker_disable_prefetch": True, "broker_transport_options": transport_options(url)}

_app: Celery | None = None
_bound: list[TaskDefinition] = []


class CeleryBacked:
    """What chat tasks and manual tasks share: one Celery task per chatworker task, named
    ``chatworker.run.<id>``, whose only argument is the run id (the payload lives in Redis)."""

    id: str
    max_turns: int
    chat_access_token_ttl: Duration
    warm_timeout_in_seconds: float
    turn_timeout: Duration
    max_duration: Duration | None
    client_data_schema: Any
    ui_message_stream_options: dict[str, Any]
    queue: dict[str, Any]
    app: Celery | None = None

    def _setup_celery(self, app: Celery | None) -> None:
        self.celery_queue = CHAT_QUEUE
        self.celery_name = f"chatworker.run.{self.id}"
        attach(self, app)

    def execute(self, run_id: str) -> None:
        """Run ``run_id`` on this worker until it suspends or ends."""
        raise NotImplementedError

    def bind(self, app: Celery) -> None:
        """Register this task's Celery task on ``app``."""
        task = self

        def run(run_id: str) -> None:
            task.execute(run_id)

        run.__name__ = run.__qualname__ = "run_" + re.sub(r"\W", "_", self.id)
        app.task(name=self.celery_name, ignore_result=True, acks_late=False)(run)
        self.app = app

    def enqueue(self, run_id: str) -> None:
        """Send the Celery message that starts or resumes ``run_id`` on some worker."""
        app = self.app or get_app()
        app.send_task(self.celery_name, args=[run_id], queue=self.celery_queue)

    def trigger(
        self,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        principal: str | None = None,
    ) -> TriggerResult:
        """Start a run answering ``payload``; returns ``TriggerResult(run_id, token)``.

        ``principal`` (``tokens.subject_principal(user_id)``) is who the run belongs to.
        """
        return start_run(self, payload, idempotency_key=idempotency_key, principal=principal)


def create_app(name: str = "chatworker", broker: str | None = None) -> Celery:
    """A Celery app with chatworker's settings, using ``broker`` or ``CHATWORKER_BROKER_URL``
    (default ``CHATWORKER_REDIS_URL``) as its broker."""
    url = broker or broker_url()
    app = Celery(name, broker=url)
    app.conf.update(SETTINGS)
    app.conf.update(broker_settings(url))
    return app


def get_app() -> Celery:
    """The app chat tasks register on: the one given to :func:`configure`, or a default one."""
    global _app
    if _app is None:
        _app = create_app()
        for task in _bound:
            task.bind(_app)
    return _app


def configure(app: Celery | None = None) -> Celery:
    """Use ``app`` (your own Celery app) for every chat task that was not given one."""
    global _app
    if app is not None:
        defaults = {**SETTINGS, **broker_settings(str(app.conf.broker_url or ""))}
        app.conf.update({k: v for k, v in defaults.items() if k not in app.conf.changes})
    _app = app or create_app()
    for task in _bound:
        task.bind(_app)
    return _app


def attach(task: TaskDefinition, app: Celery | None) -> None:
    """Register ``task`` on ``app``, or on the default app now or when it is created."""
    if app is not None:
        task.bind(app)
        return
    _bound.append(task)
    if _app is not None:
        task.bind(_app)
