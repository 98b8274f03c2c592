"""Session fixtures: a real redis-server, a real celery worker process, a scripted model, and a
real RabbitMQ broker for the tests that run on both brokers (the ``broker`` fixture)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from chatworker import config
from chatworker.engine.registry import load_tasks

# Gateway fixtures (a gunicorn gateway as in production), usable from any test module.
from .gateway.conftest_helpers import gateway_db, gateway_redis, live_gateway  # noqa: F401
from .rabbitmq_support import RabbitMQServer
from .support import (
    Backend,
    RedisClusterServers,
    RedisServer,
    Worker,
    isolated_db,
    pointed_at_backend,
)

#: Long enough for every HMAC algorithm a test signs with (HS512 wants 64 bytes or more).
SECRET = "test-secret-" + uuid.uuid4().hex + uuid.uuid4().hex
#: The modules whose tasks the shared worker runs: the test tasks and the seed examples' ports.
TASKS = "tests.tasks,tests.seeds.tasks"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    os.environ["CHATWORKER_REDIS_URL"] = server.url
    os.environ.pop("CHATWORKER_BROKER_URL", None)  # the broker is that Redis unless a test says
    os.environ["CHATWORKER_SECRET_KEY"] = SECRET
    os.environ.setdefault("CHATWORKER_TASKS", TASKS)
    config.reset_redis()
    load_tasks(TASKS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real three-master Redis Cluster on loopback, for the tests that run on a cluster too."""
    cluster = RedisClusterServers().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(scope="session")
def model_server() -> Iterator[object]:
    from chatworker.testing.model_server import ModelServer

    server = ModelServer(port=0)
    server.start()
    os.environ["OPENAI_BASE_URL"] = server.base_url
    os.environ["OPENAI_API_KEY"] = "test-key"
    yield server
    server.stop()


def worker_env(redis_url: str, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CHATWORKER_REDIS_URL": redis_url,
            "CHATWORKER_SECRET_KEY": SECRET,
            "CHATWORKER_TASKS": TASKS,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def worker(redis_url: str, model_server: object) -> Iterator[Worker]:
    """One gevent worker shared by the integration tests."""
    env = worker_env(redis_url, CHATWORKER_BROKER_URL=redis_url)
    w = Worker(env, pool="gevent", concurrency=100, name="main").start()
    yield w
    w.stop()


@pytest.fixture
def chat_id() -> str:
    return "chat-" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQServer]:
    """A private RabbitMQ broker (started only by the tests that ask for it)."""
    server = RabbitMQServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> RabbitMQServer | None:
    """The Celery broker a test runs on: the Redis of the run state (``None``), or RabbitMQ
    (give it to :func:`tests.support.isolated_db`)."""
    if request.param == "rabbitmq":
        server: RabbitMQServer = request.getfixturevalue("rabbitmq")
        return server
    return None


@pytest.fixture(scope="session")
def rabbitmq_worker(rabbitmq: RabbitMQServer, redis_server: RedisServer,
                    model_server: object) -> Iterator[str]:
    """A gevent worker whose broker is RabbitMQ, its run state in a Redis of its own (so no
    other worker's sweeps touch its runs); yields that Redis's URL."""
    state = RedisServer().start()
    env = worker_env(state.url, CHATWORKER_BROKER_URL=rabbitmq.url("engine"))
    w = Worker(env, pool="gevent", concurrency=100, name="rabbitmq").start()
    yield state.url
    w.stop()
    state.stop()


@pytest.fixture(params=["redis", "rabbitmq", "cluster"])
def engine(request: pytest.FixtureRequest, redis_url: str) -> Iterator[redis.Redis]:
    """A worker taking this test's runs, and a client of the Redis holding their state: the
    shared worker (one Redis for state and broker), :func:`rabbitmq_worker` (RabbitMQ as the
    broker), or :func:`cluster_worker` (state on a Redis Cluster, this process pointed at it)."""
    if request.param == "redis":
        request.getfixturevalue("worker")
        yield redis.Redis.from_url(redis_url, decode_responses=True)
        return
    if request.param == "cluster":
        cluster: Backend = request.getfixturevalue("cluster_backend")
        request.getfixturevalue("cluster_worker")
        with pointed_at_backend(cluster):
            client = cluster.client()
            yield client
            client.close()
        return
    rabbitmq: RabbitMQServer = request.getfixturevalue("rabbitmq")
    state_url = request.getfixturevalue("rabbitmq_worker")
    with isolated_db(state_url, 0, broker=rabbitmq.url("engine"), flush=False) as url:
        yield redis.Redis.from_url(url, decode_responses=True)


# -- the cluster variants: run state on a Redis Cluster, the broker a single redis-server ------
#: The broker database of the cluster tests' shared worker (on the session's redis-server).
CLUSTER_BROKER_DB = 9


@pytest.fixture(scope="session")
def cluster_backend(redis_server: RedisServer, redis_cluster: RedisClusterServers) -> Backend:
    broker = redis_server.url.rsplit("/", 1)[0] + f"/{CLUSTER_BROKER_DB}"
    redis.Redis.from_url(broker).flushdb()
    return Backend("cluster", redis_cluster.url, broker)


@pytest.fixture(scope="session")
def cluster_worker(cluster_backend: Backend, model_server: object) -> Iterator[Worker]:
    """One gevent worker on the cluster, shared by the cluster variants of the tests."""
    env = worker_env(cluster_backend.url, **cluster_backend.env())
    w = Worker(env, pool="gevent", concurrency=100, name="cluster").start()
    yield w
    w.stop()


@pytest.fixture(params=["server", "cluster"])
def backend(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Backend]:
    """Run state on one redis-server, then on a Redis Cluster (this process pointed at it for
    the test); no worker. A test taking it runs on both."""
    if request.param == "server":
        yield Backend("server", redis_url, redis_url)
        return
    cluster: Backend = request.getfixturevalue("cluster_backend")
    with pointed_at_backend(cluster):
        yield cluster


@dataclass
class Stack:
    """A backend with a worker running the test tasks on it, and a client of its run state."""

    backend: Backend
    r: redis.Redis


@pytest.fixture
def stack(backend: Backend, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """:func:`backend` with the shared worker of that backend running."""
    request.getfixturevalue("cluster_worker" if backend.cluster else "worker")
    client = backend.client()
    yield Stack(backend, client)
    client.close()
