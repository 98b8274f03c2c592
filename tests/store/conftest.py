"""The store's tests talk to a real redis-server, in a database of their own, and to a real
three-master Redis Cluster (every test runs on both: they are fast)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from chatworker import config
from chatworker.store.run_store import RunStore


@pytest.fixture(params=["server", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        r = config.connect(cluster.url, cluster=True)
        yield r
        cluster.flush()
        r.close()
        return
    redis_url = request.getfixturevalue("redis_url")
    url = redis_url.rsplit("/", 1)[0] + "/11"
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


@pytest.fixture
def store(client: redis.Redis) -> RunStore:
    return RunStore(client)
