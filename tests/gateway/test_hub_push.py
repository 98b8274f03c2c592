"""The hub is pushed published entries: no XREAD per chunk, and nothing lost or repeated when
streams join while entries are appended or when its Pub/Sub connection is killed."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatworker import tokens
from chatworker.gateway.hub import Hub
from chatworker.gateway.subscription import Subscription
from chatworker.store import keys
from chatworker.store.streams import OutputStream

from ..support import user_message
from .conftest_helpers import Gunicorn as Gateway
from .conftest_helpers import SSEClient, SSEEvent, call, gateway_db, gateway_redis, live_gateway

__all__ = ["gateway_db", "gateway_redis", "live_gateway"]

#: The name the hub gives its Pub/Sub connection (``CLIENT LIST``).
HUB_CONNECTION = "chatworker-hub"


@pytest.fixture
def hub(gateway_db: str) -> Iterator[Hub]:
    h = Hub()
    yield h
    h.stop()


def add(r: redis.Redis, run_id: str, n: int) -> list[str]:
    return OutputStream(r, run_id).write_many({"type": "data-x", "data": i} for i in range(n))


def stream_ids(r: redis.Redis, run_id: str) -> list[str]:
    return [str(i) for i, _ in r.xrange(keys.output(run_id))]


def kill_hub_connections(r: redis.Redis) -> int:
    """``CLIENT KILL`` every hub Pub/Sub connection of the server; how many there were."""
    killed = 0
    for client in r.client_list(_type="pubsub"):
        if client.get("name") == HUB_CONNECTION:
            killed += int(r.client_kill_filter(_id=client["id"]))
    return killed


def read_until(sub: Subscription, last: str, timeout: float = 30) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while last not in got:
        assert time.monotonic() < deadline, f"timed out after {len(got)} entries"
        assert not sub.dropped
        got.extend(i for i, _ in sub.next_batch(0.5))
    return got


def test_streams_joining_while_entries_are_appended_lose_and_repeat_nothing(
    hub: Hub, gateway_redis: redis.Redis
) -> None:
    """Subscribers keep joining and leaving streams (each join of a stream nobody follows
    subscribes its channel anew) while every stream is appended to; each sees a gapless run."""
    runs = ["run_push_" + uuid.uuid4().hex[:10] for _ in range(12)]
    for run_id in runs:
        add(gateway_redis, run_id, 3)
    writing = threading.Event()
    writing.set()

    def writer() -> None:
        rng = random.Random(1)
        for _ in range(300):
            add(gateway_redis, rng.choice(runs), rng.randint(1, 4))
            time.sleep(rng.uniform(0, 0.003))
        writing.clear()

    seen: list[tuple[str, str | None, list[str]]] = []
    errors: list[BaseException] = []

    def joiner(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while writing.is_set():
                run_id = rng.choice(runs)
                after = rng.choice([None, *stream_ids(gateway_redis, run_id)[-5:]])
                with hub.subscribe(run_id, after=after) as sub:
                    got: list[str] = []
                    until = time.monotonic() + rng.uniform(0, 0.05)
                    while time.monotonic() < until:
                        got.extend(i for i, _ in sub.next_batch(0.01))
                    assert not sub.dropped
                seen.append((run_id, after, got))
            for run_id in runs:  # then each stream to its end, joined after the last append
                with hub.subscribe(run_id) as sub:
                    got = read_until(sub, stream_ids(gateway_redis, run_id)[-1])
                seen.append((run_id, None, got))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=joiner, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    ids = {run_id: stream_ids(gateway_redis, run_id) for run_id in runs}
    assert len(seen) > 8 * len(runs)
    for run_id, after, got in seen:
        start = 0 if after is None else ids[run_id].index(after) + 1
        assert got == ids[run_id][start : start + len(got)], f"{run_id} after {after}"
    assert hub.stats() == {"streams": 0, "subscribers": 0}


def test_a_killed_pubsub_connection_loses_nothing(hub: Hub, gateway_redis: redis.Redis) -> None:
    runs = ["run_push_" + uuid.uuid4().hex[:10] for _ in range(3)]
    subs = [hub.subscribe(run_id) for run_id in runs]
    try:
        for sub in subs:
            assert sub.next_batch(0.1) == []
        kills = 0
        for n in range(40):
            for run_id in runs:
                add(gateway_redis, run_id, 5)
            if n % 10 == 5:
                deadline = time.monotonic() + 10
                while not (killed := kill_hub_connections(gateway_redis)):
                    assert time.monotonic() < deadline, "the hub has no Pub/Sub connection"
                    time.sleep(0.05)
                kills += killed
            time.sleep(0.01)
        assert kills == 4
        for run_id, sub in zip(runs, subs, strict=True):
            ids = stream_ids(gateway_redis, run_id)
            assert read_until(sub, ids[-1]) == ids
    finally:
        for sub in subs:
            sub.close()


# -- through a real gateway and worker ----------------------------------------------------------


def start_turn(gw: Gateway, chat_id: str, words: int, delay: float) -> tuple[str, str]:
    status, started, _ = call(
        gw.url, "POST", "/api/chat/tasks/echo/runs",
        {"chatId": chat_id, "messages": [user_message("hi")],
         "metadata": {"words": words, "delay": delay}},
        token=tokens.create_trigger_token("echo", multiple_use=True),
    )  # fmt: skip
    assert status == 201, started
    return started["runId"], started["publicAccessToken"]


def read_turn(gw: Gateway, run_id: str, token: str, on_delta: Any = None) -> list[SSEEvent]:
    headers = {"Authorization": f"Bearer {token}"}
    out: list[SSEEvent] = []
    deltas = 0
    with SSEClient(gw.url, f"/api/chat/runs/{run_id}/stream?timeout=30", headers=headers) as sse:
        for event in sse.events():
            out.append(event)
            kind = event.json()["type"]
            if kind in ("__turn_complete", "__run_end"):
                return out
            if kind == "text-delta" and on_delta is not None:
                deltas += 1
                on_delta(deltas)
    raise AssertionError(f"stream closed early after {len(out)} events")


def xread_calls(r: redis.Redis) -> int:
    stats: dict[str, Any] = r.info("commandstats")
    return int(stats.get("cmdstat_xread", {}).get("calls", 0))


def test_a_streamed_turn_reads_no_stream_per_chunk(
    live_gateway: Gateway, r: redis.Redis, chat_id: str
) -> None:
    """A turn streamed chunk by chunk through the gateway costs Redis a fixed number of XREADs
    (the hub's catch-up when the stream joins), not one per chunk."""
    r.config_resetstat()
    run_id, token = start_turn(live_gateway, chat_id, words=120, delay=0.01)
    events = read_turn(live_gateway, run_id, token)
    deltas = sum(1 for e in events if e.json()["type"] == "text-delta")
    assert deltas > 120
    assert [e.id for e in events] == stream_ids(r, run_id)[: len(events)]
    calls = xread_calls(r)
    assert calls <= 3, f"{calls} XREADs for {len(events)} chunks"


def test_a_gateway_whose_pubsub_connection_is_killed_mid_turn_loses_nothing(
    live_gateway: Gateway, r: redis.Redis, chat_id: str
) -> None:
    run_id, token = start_turn(live_gateway, chat_id, words=150, delay=0.01)
    kills: list[int] = []

    def kill(deltas: int) -> None:
        if deltas % 40 == 0:
            kills.append(kill_hub_connections(r))

    events = read_turn(live_gateway, run_id, token, on_delta=kill)
    assert kills and all(kills), kills
    ids = [e.id for e in events]
    assert ids == stream_ids(r, run_id)[: len(ids)]
    text = "".join(e.json().get("delta", "") for e in events if e.json()["type"] == "text-delta")
    assert text.strip().endswith("w149")
