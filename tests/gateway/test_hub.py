"""The SSE hub: catch-up then live without gap or duplicate, slow readers, wake-ups, Redis loss."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from chatworker import config
from chatworker.errors import StreamIdAhead, StreamTrimmed
from chatworker.gateway.hub import Hub
from chatworker.gateway.subscription import Subscription
from chatworker.store import keys
from chatworker.store.entry_ids import RawEntry as Entry
from chatworker.store.entry_ids import parse_id, previous_id
from chatworker.store.streams import OutputStream

from ..support import Backend, RedisServer, pointed_at_backend
from .conftest_helpers import gateway_db

__all__ = ["gateway_db"]


@pytest.fixture(params=["server", "cluster"])
def gateway_redis(request: pytest.FixtureRequest, gateway_db: str) -> Iterator[redis.Redis]:
    """The streams the hub reads: on one redis-server, then on a Redis Cluster (where the hub
    reads with one pipelined round per node instead of one blocking XREAD)."""
    if request.param == "server":
        yield redis.Redis.from_url(gateway_db, decode_responses=True)
        return
    cluster: Backend = request.getfixturevalue("cluster_backend")
    with pointed_at_backend(cluster):
        client = cluster.client()
        yield client
        client.close()


@pytest.fixture
def hub(gateway_redis: redis.Redis) -> Iterator[Hub]:
    h = Hub()
    yield h
    h.stop()


@pytest.fixture
def server_redis(gateway_db: str) -> redis.Redis:
    """One redis-server only (what these tests check has no cluster counterpart)."""
    return redis.Redis.from_url(gateway_db, decode_responses=True)


@pytest.fixture
def server_hub(server_redis: redis.Redis) -> Iterator[Hub]:
    h = Hub()
    yield h
    h.stop()


def new_run() -> str:
    return "run_hub_" + uuid.uuid4().hex[:10]


def add(r: redis.Redis, run_id: str, n: int, tag: str = "x") -> list[str]:
    """Append ``n`` entries as the engine does (each published too)."""
    return OutputStream(r, run_id).write_many({"type": f"data-{tag}", "data": i} for i in range(n))


def all_ids(r: redis.Redis, run_id: str) -> list[str]:
    return [str(i) for i, _ in r.xrange(keys.output(run_id))]


def collect(sub: Subscription, until: str, timeout: float = 20) -> list[str]:
    """Ids from ``sub`` until ``until`` is seen."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = sub.next_batch(0.5)
        got.extend(i for i, _ in batch)
        if until in got:
            return got
        assert not sub.dropped
    raise AssertionError(f"timed out after {len(got)} entries")


def test_ids() -> None:
    assert parse_id("5-3") == (5, 3)
    assert previous_id("5-3") == "5-2"
    assert previous_id("5-0") == f"4-{2**64 - 1}"
    assert previous_id("0-0") is None
    for bad in ["", "5", "a-b", "1-2-3", "-1-0", f"{2**64}-0"]:
        with pytest.raises(ValueError):
            parse_id(bad)


def test_catch_up_then_live(hub: Hub, gateway_redis: redis.Redis) -> None:
    run_id = new_run()
    first = add(gateway_redis, run_id, 1200)  # more than one catch-up page
    with hub.subscribe(run_id) as sub:
        got = [i for i, _ in sub.next_batch(1)]
        while len(got) < len(first):
            got.extend(i for i, _ in sub.next_batch(1))
        assert got == first
        later = add(gateway_redis, run_id, 10)
        assert collect(sub, later[-1]) == later
    with hub.subscribe(run_id, after=first[599]) as sub:
        assert collect(sub, later[-1]) == first[600:] + later


def test_joining_at_random_positions_while_writing(hub: Hub, gateway_redis: redis.Redis) -> None:
    run_id = new_run()
    add(gateway_redis, run_id, 50)
    total = 1500
    stop = threading.Event()

    def writer() -> None:
        for _ in range(total // 10):
            add(gateway_redis, run_id, 10, "live")
            time.sleep(random.uniform(0, 0.004))
        stop.set()

    results: list[tuple[str | None, list[str]]] = []
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        time.sleep(rng.uniform(0, 0.4))
        existing = all_ids(gateway_redis, run_id)
        after = rng.choice([None, *existing])
        try:
            with hub.subscribe(run_id, after=after) as sub:
                stop.wait(30)
                final = all_ids(gateway_redis, run_id)[-1]
                results.append((after, collect(sub, final)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ids = all_ids(gateway_redis, run_id)
    assert len(results) == 16
    for after, got in results:
        start = 0 if after is None else ids.index(after) + 1
        assert got == ids[start:], f"after={after}: {len(got)} vs {len(ids) - start}"


def test_slow_subscriber_is_dropped_without_slowing_others(
    gateway_db: str, gateway_redis: redis.Redis
) -> None:
    # The slow subscriber never reads 800 entries; the fast one reads after every 20, so its
    # backlog stays far below the limit even when a loaded machine delays the hub's reader.
    hub = Hub(mailbox_limit=200)
    try:
        run_id = new_run()
        slow = hub.subscribe(run_id)
        fast = hub.subscribe(run_id)
        assert slow.next_batch(0.1) == [] and fast.next_batch(0.1) == []
        assert slow.live and fast.live
        ids: list[str] = []
        got: list[str] = []
        for _ in range(40):
            ids.extend(add(gateway_redis, run_id, 20))
            got.extend(i for i, _ in fast.next_batch(1))
        got.extend(collect(fast, ids[-1]) if ids[-1] not in got else [])
        assert got == ids
        assert slow.dropped and slow.next_batch(0.1) == []
        assert hub.stats() == {"streams": 1, "subscribers": 1}
        slow.close()
        fast.close()
        assert hub.stats() == {"streams": 0, "subscribers": 0}
    finally:
        hub.stop()


def test_a_new_stream_wakes_the_reader(gateway_db: str, gateway_redis: redis.Redis) -> None:
    hub = Hub(idle_seconds=10)  # without a wake-up, a new stream would wait up to 10 s
    try:
        a, b = new_run(), new_run()
        with hub.subscribe(a) as sub_a:
            sub_a.next_batch(0.3)
            time.sleep(0.3)  # the reader is now blocked on stream a only
            with hub.subscribe(b) as sub_b:
                assert sub_b.next_batch(0.01) == []
                [entry] = add(gateway_redis, b, 1)
                start = time.monotonic()
                assert collect(sub_b, entry, timeout=5) == [entry]
                assert time.monotonic() - start < 1.0
    finally:
        hub.stop()


def test_idle_stream_longer_than_the_socket_timeout(server_hub: Hub,
                                                    server_redis: redis.Redis) -> None:
    hub = server_hub  # a cluster's reads do not block: no socket timeout to outlast
    run_id = new_run()
    with hub.subscribe(run_id) as sub:
        assert sub.next_batch(0.1) == []
        timer = threading.Timer(6.5, add, args=(server_redis, run_id, 1))
        timer.start()
        batch: list[Entry] = []
        deadline = time.monotonic() + 10
        while not batch and time.monotonic() < deadline:
            batch = sub.next_batch(1)
        timer.join()
        assert len(batch) == 1 and not sub.dropped


def test_a_thousand_subscriptions_use_a_handful_of_connections(
    server_hub: Hub, server_redis: redis.Redis
) -> None:
    hub, gateway_redis = server_hub, server_redis  # connections counted on one server

    def connections() -> int:
        return len(gateway_redis.client_list())

    before = connections()
    run_ids = [new_run() for _ in range(200)]
    subs = [hub.subscribe(run_ids[n % 200]) for n in range(1000)]
    try:
        for sub in subs:
            assert sub.next_batch(0) == []
        assert hub.stats() == {"streams": 200, "subscribers": 1000}
        assert connections() - before <= 4
        ids = {run_id: add(gateway_redis, run_id, 1)[0] for run_id in run_ids}
        for n, sub in enumerate(subs):
            assert collect(sub, ids[run_ids[n % 200]], timeout=10) == [ids[run_ids[n % 200]]]
        assert connections() - before <= 4
    finally:
        for sub in subs:
            sub.close()


def test_reader_reconnects_after_redis_restarts(gateway_db: str) -> None:
    server = RedisServer().start()
    old_url = os.environ["CHATWORKER_REDIS_URL"]
    os.environ["CHATWORKER_REDIS_URL"] = server.url
    config.reset_redis()
    hub = Hub()
    try:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        run_id = new_run()
        first = add(r, run_id, 3)
        with hub.subscribe(run_id) as sub:
            assert collect(sub, first[-1]) == first
            server.stop()
            time.sleep(1.5)
            server.start()
            later = add(r, run_id, 2)  # the restarted Redis has forgotten the scripts too
            assert collect(sub, later[-1], timeout=15) == later
    finally:
        hub.stop()
        server.stop()
        os.environ["CHATWORKER_REDIS_URL"] = old_url
        config.reset_redis()


def test_a_future_position_is_refused_and_never_holds_back_others(
    hub: Hub, gateway_redis: redis.Redis
) -> None:
    run_id = new_run()
    [head] = add(gateway_redis, run_id, 1)
    future = f"{parse_id(head)[0] + 10**9}-0"
    ahead = hub.subscribe(run_id, after=future)
    other = hub.subscribe(run_id)
    try:
        with pytest.raises(StreamIdAhead, match=head):
            ahead.next_batch(0.1)
        assert collect(other, head) == [head]
        assert other.live
        later = add(gateway_redis, run_id, 3)
        assert collect(other, later[-1]) == later
    finally:
        ahead.close()
        other.close()


def test_a_trimmed_position_is_refused(hub: Hub, gateway_redis: redis.Redis) -> None:
    run_id = new_run()
    ids = add(gateway_redis, run_id, 300)
    # Trimmed as XADD MAXLEN trims, oldest entries first (exactly here).
    gateway_redis.xtrim(keys.output(run_id), minid=ids[120], approximate=False)
    with hub.subscribe(run_id, after=ids[10]) as sub, pytest.raises(StreamTrimmed):
        sub.next_batch(0.1)
    with hub.subscribe(run_id, after=previous_id(ids[120])) as sub:  # right before the first
        assert collect(sub, ids[-1]) == ids[120:]
    with hub.subscribe(run_id) as sub:  # no position: from the first retained entry
        assert collect(sub, ids[-1]) == ids[120:]


def test_a_subscription_ends_when_its_run_vanishes(
    gateway_db: str, gateway_redis: redis.Redis
) -> None:
    hub = Hub(check_seconds=0.2)
    try:
        watched, unwatched = new_run(), new_run()
        for run_id in (watched, unwatched):
            gateway_redis.hset(keys.run(run_id), "status", "waiting")
        [entry] = add(gateway_redis, watched, 1)
        with hub.subscribe(watched, watch_run=True) as sub, hub.subscribe(unwatched) as plain:
            assert collect(sub, entry) == [entry]
            assert plain.next_batch(0.1) == [] and not sub.lost
            gateway_redis.delete(keys.run(watched), keys.run(unwatched), keys.output(watched))
            deadline = time.monotonic() + 10
            while not sub.lost:
                assert sub.next_batch(0.5) == []
                assert time.monotonic() < deadline, "the lost run was never noticed"
            assert not plain.lost  # only subscribers that asked are told
            assert hub.stats() == {"streams": 1, "subscribers": 1}
    finally:
        hub.stop()
