"""Gateway test helpers: real gunicorn processes, a tiny SSE client, JSON calls, fixtures.

Import the fixtures you need into a test module (``from tests.gateway.conftest_helpers import
gateway_db``); they build on the session ``redis_url`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import pytest
import redis

from chatworker import config
from chatworker.gateway.hub import reset_hub
from chatworker.store.streams import OutputStream

from ..support import ARTIFACTS, ROOT, Backend, free_port

#: The Redis database gateway tests use: no celery worker consumes it, so runs stay queued.
GATEWAY_DB = 7


def db_url(redis_url: str, db: int) -> str:
    """``redis_url`` pointed at database ``db``."""
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


def gateway_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a gateway process (secret and tasks as the test session's)."""
    from ..conftest import SECRET

    env = dict(os.environ)
    env.update(
        {
            "CHATWORKER_REDIS_URL": redis_url,
            "CHATWORKER_SECRET_KEY": SECRET,
            "CHATWORKER_TASKS": "tests.tasks",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("CHATWORKER_DEV", None)
    env.update(overrides)
    return env


class Gunicorn:
    """``gunicorn -k gevent 'web.app:create_app()'`` on a free port, as in production."""

    def __init__(self, env: dict[str, str], *, name: str = "gw", workers: int = 1,
                 app: str = "web.app:create_app()", ready_path: str = "/healthz",
                 worker_connections: int = 4000) -> None:
        self.env = env
        self.app = app
        self.ready_path = ready_path
        self.worker_connections = worker_connections
        self.port = free_port()
        self.name = f"{name}-{self.port}"
        self.workers = workers
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"gunicorn-{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Self:
        args = [
            sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(self.workers),
            "--worker-connections", str(self.worker_connections),
            "-b", f"127.0.0.1:{self.port}",
            "--graceful-timeout", "3", "--log-level", "info", self.app,
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log()[-3000:]}")
            try:
                status, _, _ = call(self.url, "GET", self.ready_path, timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not come up:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def call(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 20,
) -> tuple[int, Any, http.client.HTTPMessage]:
    """One HTTP call; returns ``(status, parsed JSON body or text, headers)``."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    all_headers = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=data, headers=all_headers)
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return resp.status, parsed, resp.headers


@dataclass
class SSEEvent:
    """One SSE event (``id``/``data``), or a comment line (``comment``)."""

    id: str | None = None
    data: str | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data or "null")


class SSEClient:
    """A minimal SSE reader over ``http.client`` (what a browser's EventSource parses)."""

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        body: Any = None,
        timeout: float = 20,
    ) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        all_headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=data, headers=all_headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers

    def __iter__(self) -> Iterator[SSEEvent]:
        current = SSEEvent()
        data: list[str] = []
        while True:
            line = self.resp.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            if text.startswith(":"):
                yield SSEEvent(comment=text[1:].strip())
            elif text == "":
                if data or current.id is not None:
                    current.data = "\n".join(data)
                    yield current
                current, data = SSEEvent(), []
            else:
                name, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    current.id = value
                elif name == "data":
                    data.append(value)

    def events(self) -> Iterator[SSEEvent]:
        """Only the events (comments skipped)."""
        return (e for e in self if e.comment is None)

    def read_all(self) -> list[SSEEvent]:
        """Every event until the server closes the stream."""
        return list(self.events())

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def xadd_chunks(client: redis.Redis, run_id: str, chunks: list[dict[str, Any]]) -> list[str]:
    """Append chunks to a run's output stream as the engine does (each entry published too);
    returns their ids."""
    return OutputStream(client, run_id).write_many(chunks)


def finished_turn(
    turn: int = 0, words: int = 5, input_id: str | None = None
) -> list[dict[str, Any]]:
    """The chunks of one complete turn, markers included."""
    start: dict[str, Any] = {"type": "__turn_start", "turn": turn}
    marker: dict[str, Any] = {"type": "__turn_complete", "turn": turn, "stopped": False}
    if input_id:
        start["inputId"] = marker["inputId"] = input_id
    body = [
        {"type": "start", "messageId": f"m{turn}"},
        {"type": "start-step"},
        {"type": "text-start", "id": "t"},
        *({"type": "text-delta", "id": "t", "delta": f"w{i} "} for i in range(words)),
        {"type": "text-end", "id": "t"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]
    return [start, *body, marker]


@pytest.fixture(scope="module")
def gateway_db(redis_url: str) -> Iterator[str]:
    """This process pointed at :data:`GATEWAY_DB` (flushed), where no worker runs anything."""
    from .. import support

    with support.isolated_db(redis_url, GATEWAY_DB) as url:
        reset_hub()
        yield url
    reset_hub()
    config.reset_redis()


@pytest.fixture(scope="module")
def gateway_redis(gateway_db: str) -> redis.Redis:
    """A plain client of the gateway tests' database."""
    return redis.Redis.from_url(gateway_db, decode_responses=True)


@pytest.fixture(scope="module")
def live_gateway(redis_url: str, worker: object) -> Iterator[Gunicorn]:
    """A gunicorn gateway on the session's database, where the shared celery worker runs."""
    with Gunicorn(gateway_env(redis_url, CHATWORKER_SSE_HEARTBEAT="1"), name="live") as gw:
        yield gw
    assert "Traceback" not in gw.log(), gw.log()[-3000:]


@pytest.fixture(scope="session")
def cluster_gateway(cluster_backend: Backend, cluster_worker: object) -> Iterator[Gunicorn]:
    """A gunicorn gateway on the Redis Cluster, where the shared cluster worker runs."""
    env = gateway_env(cluster_backend.url, CHATWORKER_SSE_HEARTBEAT="1", **cluster_backend.env())
    with Gunicorn(env, name="cluster") as gw:
        yield gw
    assert "Traceback" not in gw.log(), gw.log()[-3000:]


@pytest.fixture
def gateway_on(stack: Any, request: pytest.FixtureRequest) -> Gunicorn:
    """The live gateway of the ``stack`` backend: one redis-server, then a Redis Cluster."""
    return request.getfixturevalue("cluster_gateway" if stack.backend.cluster else "live_gateway")
