"""The store's tests talk to a real redis-server, in a database of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from chatworker.store.run_store import RunStore


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    url = redis_url.rsplit("/", 1)[0] + "/11"
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


@pytest.fixture
def store(client: redis.Redis) -> RunStore:
    return RunStore(client)
