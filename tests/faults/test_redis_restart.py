"""Redis restarted under a live worker and gateway (append-only file, same port, same dir).

While Redis is down the gateway answers 503 with a JSON message naming Redis, and no worker
process dies. Once it is back, workers and gateways reconnect by themselves: a run that was
waiting answers its next message, a suspended run resumes, a stream reader resumes where it was
(losing and repeating nothing), and new runs start.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chatworker.store import keys

from ..conftest import worker_env
from ..gateway.conftest_helpers import Gunicorn, gateway_env
from ..support import RedisServer, Worker, user_message
from .helpers import Event, StreamReader, call, pointed_at, redis_entries, trigger_token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

DOWN_SECONDS = 5.0  # longer than a run's lease (4 s): leases lapse while Redis is away


class Stack:
    """Our own redis-server (AOF on) with a worker and a gateway pointed at it."""

    def __init__(self, data_dir: Path) -> None:
        self.redis = RedisServer("--appendonly", "yes", "--appendfsync", "always")
        self.redis.dir = str(data_dir)
        self.worker: Worker | None = None
        self.gateway: Gunicorn | None = None

    def kill_redis(self, sig: int) -> None:
        proc = self.redis.proc
        assert proc is not None
        proc.send_signal(sig)
        proc.wait(10)
        self.redis.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    data = tmp_path / "redis-data"
    data.mkdir()
    s = Stack(data)
    s.redis.start()
    try:
        with pointed_at(s.redis.url):
            s.worker = Worker(worker_env(s.redis.url), name="restart").start()
            s.gateway = Gunicorn(
                gateway_env(s.redis.url, CHATWORKER_SSE_HEARTBEAT="0.5"), name="restart"
            ).start()
            yield s
    finally:
        if s.gateway is not None:
            s.gateway.stop()
        if s.worker is not None:
            s.worker.stop()
        s.redis.stop()


def trigger(gw: Gunicorn, task: str, chat_id: str, text: str, **metadata: Any) -> dict[str, Any]:
    status, body, _ = call(
        gw.url, "POST", f"/api/chat/tasks/{task}/runs",
        {"chatId": chat_id, "messages": [user_message(text)], "metadata": metadata},
        token=trigger_token(task),
    )  # fmt: skip
    assert status == 201, body
    return dict(body)


def read_turn(gw: Gunicorn, run: dict[str, Any], after: str | None) -> list[Event]:
    reader = StreamReader("127.0.0.1", gw.port, run["runId"], run["publicAccessToken"],
                          last_id=after).open()
    try:
        out = []
        for ev in reader.events():
            out.append(ev)
            if ev.type in ("__turn_complete", "__run_end"):
                return out
        raise AssertionError(f"stream ended early: {reader.ended_by}")
    finally:
        reader.close()


def text_of(events: list[Event]) -> str:
    return "".join(e.json().get("delta", "") for e in events if e.type == "text-delta")


def send_when_back(gw: Gunicorn, run: dict[str, Any], chat_id: str, text: str,
                   timeout: float = 30) -> str:
    """POST a message, retrying while the gateway says Redis is unavailable (as a client would)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = call(
            gw.url, "POST", f"/api/chat/runs/{run['runId']}/input/messages",
            {"chatId": chat_id, "messages": [user_message(text)]},
            token=run["publicAccessToken"],
        )  # fmt: skip
        if status == 202:
            return str(body["inputId"])
        assert status == 503 and body["error"] == "redis_unavailable", (status, body)
        assert time.monotonic() < deadline, "the gateway never got Redis back"
        time.sleep(0.1)


def assert_503_while_down(gw: Gunicorn, run: dict[str, Any], chat_id: str) -> None:
    """Every route that needs Redis says so, quickly, as JSON."""
    auth = run["publicAccessToken"]
    probes: list[tuple[str, str, Any, str | None]] = [
        ("GET", "/healthz", None, None),
        ("GET", f"/api/chat/runs/{run['runId']}", None, auth),
        ("GET", f"/api/chat/runs/{run['runId']}/stream", None, auth),
        ("POST", f"/api/chat/runs/{run['runId']}/input/messages",
         {"chatId": chat_id, "messages": [user_message("lost?")]}, auth),
        ("POST", f"/api/chat/runs/{run['runId']}/input/stop", {"stop": True}, auth),
        ("POST", "/api/chat/tasks/echo/runs",
         {"chatId": chat_id + "-new", "messages": [user_message("new")]}, trigger_token()),
    ]  # fmt: skip
    for method, path, body, token in probes:
        began = time.monotonic()
        status, data, headers = call(gw.url, method, path, body, token=token)
        took = time.monotonic() - began
        assert status == 503, (path, status, data)
        assert headers.get_content_type() == "application/json", (path, headers)
        assert data["error"] == "redis_unavailable", data
        assert "Redis" in data["message"], data
        assert took < 3, (path, took)


def test_redis_restart_runs_continue(stack: Stack, chat_id: str) -> None:
    gw, worker = stack.gateway, stack.worker
    assert gw is not None and worker is not None and worker.proc is not None
    r = stack.client()

    # A run waiting warm, a suspended run, and one streaming while Redis goes away.
    waiting = trigger(gw, "echo", chat_id + "-a", "first")
    waiting_turn0 = read_turn(gw, waiting, None)
    asleep = trigger(gw, "sleepy", chat_id + "-b", "first")
    asleep_turn0 = read_turn(gw, asleep, None)
    deadline = time.monotonic() + 10
    while r.hget(keys.run(asleep["runId"]), "status") != "suspended":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    streaming = trigger(gw, "echo", chat_id + "-c", "long", words=150, delay=0.04)
    reader = StreamReader("127.0.0.1", gw.port, streaming["runId"],
                          streaming["publicAccessToken"], timeout=60).open()
    got: list[Event] = []
    for ev in reader.events():
        got.append(ev)
        if sum(e.type == "text-delta" for e in got) >= 20:
            break

    # -- Redis dies (SIGKILL: no goodbye; the append-only file has every acknowledged write).
    stack.kill_redis(signal.SIGKILL)
    down_at = time.monotonic()
    assert_503_while_down(gw, waiting, chat_id + "-a")
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
    assert worker.proc.poll() is None, "the worker died while Redis was down"
    assert gw.proc is not None and gw.proc.poll() is None
    stack.redis.start()
    up_at = time.monotonic()

    # The gateway serves again by itself.
    while call(gw.url, "GET", "/healthz")[0] != 200:
        assert time.monotonic() - up_at < 20
        time.sleep(0.05)
    healthy_in = time.monotonic() - up_at

    # The stream reader resumes: the same connection, or a reconnect with Last-Event-ID.
    reconnects = 0
    while not any(e.type in ("__turn_complete", "__run_end") for e in got):
        for ev in reader.events():
            got.append(ev)
            if ev.type in ("__turn_complete", "__run_end"):
                break
        else:
            reader.close()
            reconnects += 1
            assert reconnects < 20, reader.ended_by
            reader = StreamReader("127.0.0.1", gw.port, streaming["runId"],
                                  streaming["publicAccessToken"], last_id=got[-1].id,
                                  timeout=60).open()
    reader.close()
    stream_done_in = time.monotonic() - up_at
    assert [(e.id, e.data) for e in got] == redis_entries(r, streaming["runId"])[: len(got)]
    kinds = [e.type for e in got]
    assert kinds[-1] == "__turn_complete", kinds[-5:]
    assert kinds.count("__turn_complete") == 1
    # A turn whose writes failed while Redis was away is answered again from its input, as
    # after a worker death: the partial reply is closed by `abort`, then the turn starts over.
    starts = [i for i, kind in enumerate(kinds) if kind == "__turn_start"]
    assert all(got[i].json()["turn"] == 0 for i in starts)
    for i in starts[1:]:
        assert kinds[i - 1] == "abort", kinds[i - 3: i + 1]
    last = starts[-1]
    assert kinds[last:].count("start") == 1 and "abort" not in kinds[last:]
    words = " ".join(f"w{i}" for i in range(150))
    assert text_of(got[last:]).strip() == f"echo: long (turn 0) {words}"

    # The waiting run answers its next message; the suspended run resumes for its own.
    sent_at = time.monotonic()
    a_input = send_when_back(gw, waiting, chat_id + "-a", "second")
    a_turn1 = read_turn(gw, waiting, waiting_turn0[-1].id)
    waiting_answered_in = time.monotonic() - sent_at
    assert [e.type for e in a_turn1][-1] == "__turn_complete"
    assert a_turn1[-1].json()["inputId"] == a_input
    assert text_of(a_turn1).strip() == "echo: second (turn 1)"
    b_input = send_when_back(gw, asleep, chat_id + "-b", "second")
    b_turn1 = read_turn(gw, asleep, asleep_turn0[-1].id)
    assert b_turn1[-1].json()["inputId"] == b_input
    assert text_of(b_turn1).strip() == "echo: second (turn 1)"

    # New runs start (the worker's broker connection is back too).
    fresh = trigger(gw, "echo", chat_id + "-d", "hello again")
    assert text_of(read_turn(gw, fresh, None)).strip() == "echo: hello again (turn 0)"

    # -- A graceful stop (SIGTERM) and restart while runs wait: the same again.
    stack.kill_redis(signal.SIGTERM)
    assert_503_while_down(gw, waiting, chat_id + "-a")
    time.sleep(1.0)
    stack.redis.start()
    a_input = send_when_back(gw, waiting, chat_id + "-a", "third")
    a_turn2 = read_turn(gw, waiting, a_turn1[-1].id)
    assert a_turn2[-1].json()["inputId"] == a_input
    assert text_of(a_turn2).strip() == "echo: third (turn 2)"

    assert worker.proc.poll() is None and gw.proc is not None and gw.proc.poll() is None
    for run in (waiting, asleep, streaming):
        status, info, _ = call(gw.url, "GET", f"/api/chat/runs/{run['runId']}",
                               token=run["publicAccessToken"])
        assert status == 200 and info["status"] not in ("failed", "canceled"), info
    print(json.dumps({  # the figures quoted in the docs
        "healthy_after_restart_s": round(healthy_in, 2),
        "stream_resumed_and_done_s": round(stream_done_in, 2),
        "waiting_run_answered_s": round(waiting_answered_in, 2),
        "stream_reconnects": reconnects,
        "turn_restarts": len(starts) - 1,
    }))
