"""The demo app as the browser tests run it: a worker and a gunicorn gateway serving the page.

``create_demo_app()`` is the gateway app (``web.app.create_app()`` plus the demo API blueprint);
:func:`demo_stack` starts a celery worker with ``web.demo_tasks`` and that gateway on their own
Redis database, with the demo model pointed at a scripted model server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from flask import Flask

from ..gateway.conftest_helpers import Gunicorn, call, db_url, gateway_env
from ..support import Worker

#: How the gateway app of :func:`create_demo_app` is named for gunicorn.
DEMO_APP = "tests.web.browser_support:create_demo_app()"


def create_demo_app() -> Flask:
    """The gateway app with the demo API (as ``web/app.py`` does when it serves the demo)."""
    from web.app import create_app
    from web.demo_api import demo_blueprint

    app = create_app()
    if "chatworker_demo" not in app.blueprints:
        app.register_blueprint(demo_blueprint())
    return app


def create_demo_app_without(*packages: str) -> Flask:
    """:func:`create_demo_app` on a machine where ``packages`` are not installed: importing
    them fails as it does for a missing package (for the demo's optional framework agents)."""
    for name in packages:
        sys.modules[name] = None  # type: ignore[assignment]
    return create_demo_app()


def DemoGateway(env: dict[str, str], *, name: str) -> Gunicorn:
    """:class:`Gunicorn` serving :data:`DEMO_APP`, ready once the demo API answers."""
    return Gunicorn(env, name=name, app=DEMO_APP, ready_path="/api/demo/config",
                    worker_connections=1000)


@dataclass
class DemoStack:
    """A running demo: its gateway URL, SQLite file and Redis database."""

    gateway: Gunicorn
    worker: Worker
    db_path: Path
    redis: redis.Redis

    @property
    def url(self) -> str:
        return self.gateway.url

    def stored_chat(self, chat_id: str) -> dict[str, Any] | None:
        """``GET /api/demo/chats/<id>`` (None for 404)."""
        status, body, _ = call(self.url, "GET", f"/api/demo/chats/{chat_id}")
        return body if status == 200 else None

    def run_info(self, run_id: str, token: str) -> dict[str, Any]:
        """``GET /api/chat/runs/<id>``."""
        status, body, _ = call(self.url, "GET", f"/api/chat/runs/{run_id}", token=token)
        assert status == 200, body
        return dict(body)

    def logs(self) -> str:
        """The tails of the gateway's and the worker's logs (for failure messages)."""
        return (
            f"--- gateway ---\n{self.gateway.log()[-2500:]}\n"
            f"--- worker ---\n{self.worker.log()[-2500:]}"
        )


@contextmanager
def demo_stack(
    redis_url: str, db: int, model_url: str, db_path: Path, *, tasks: str = "web.demo_tasks",
    **env: str,
) -> Iterator[DemoStack]:
    """Start the demo's worker and gateway on Redis database ``db`` (flushed first), both
    loading ``tasks`` (``CHATWORKER_TASKS``)."""
    url = db_url(redis_url, db)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    environment = gateway_env(
        url,
        CHATWORKER_TASKS=tasks,
        CHATWORKER_DEMO_MODEL_URL=model_url,
        CHATWORKER_DEMO_DB=str(db_path),
        CHATWORKER_SSE_HEARTBEAT="2",
        **env,
    )
    # No key: the page shows the offline demo note, and the model is the scripted server.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CHATWORKER_MODEL"):
        environment.pop(name, None)
    # As the dev stack's: it runs the demo's task-backed tool (queue ``tools``) too.
    worker = Worker(environment, pool="gevent", concurrency=20, name=f"demo{db}",
                    queues="chat,tools").start()
    gateway = DemoGateway(environment, name=f"demo{db}")
    try:
        yield DemoStack(gateway.start(), worker, db_path, client)
    finally:
        gateway.stop()
        worker.stop()


def chromium_path() -> str:
    """Debian's chromium; the browser tests fail (never skip) without it."""
    path = os.environ.get("CHATWORKER_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(path):
        raise RuntimeError(
            f"no Chromium at {path}: install Debian's `chromium` package "
            "(or set CHATWORKER_CHROMIUM to a Chromium binary)"
        )
    return path


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
