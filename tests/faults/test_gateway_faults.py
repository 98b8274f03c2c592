"""A gateway killed mid-stream: the client resumes on another gateway, losing and repeating nothing.

Gateways hold no state of their own (the stream is in Redis, the ids are Redis stream ids), so a
browser whose gateway dies reconnects anywhere with its ``Last-Event-ID`` and must receive every
remaining event exactly once. We compare what the client got with the stream Redis holds.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from ..gateway.conftest_helpers import Gunicorn, gateway_env
from ..support import Worker, user_message
from .helpers import Event, StreamReader, call, increasing, redis_entries, trigger_token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WORDS = 140
DELAY = 0.035  # ~5 s of streaming: time to kill two gateways while the turn is in flight


def kill(gw: Gunicorn) -> None:
    """SIGKILL the whole gunicorn (arbiter and its worker): no graceful close of any stream."""
    assert gw.proc is not None
    os.killpg(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(10)


def read_some(reader: StreamReader, got: list[Event], deltas: int) -> None:
    """Read until ``deltas`` more text deltas arrived (the turn must still be streaming)."""
    seen = 0
    for ev in reader.events():
        got.append(ev)
        assert ev.type != "__turn_complete", "the turn ended before the gateway was killed"
        if ev.type == "text-delta":
            seen += 1
            if seen >= deltas:
                return
    raise AssertionError(f"stream ended early ({reader.ended_by})")


def drain_after_kill(reader: StreamReader, got: list[Event]) -> None:
    """What the client still gets from a killed gateway: complete events already sent, then the
    connection ends; a torn event is never delivered."""
    for ev in reader.events():
        got.append(ev)
    assert reader.ended_by is not None


def read_to_marker(reader: StreamReader, got: list[Event]) -> None:
    for ev in reader.events():
        got.append(ev)
        if ev.type in ("__turn_complete", "__run_end"):
            return
    raise AssertionError(f"stream ended before the marker ({reader.ended_by})")


def test_client_resumes_on_another_gateway_after_sigkill(
    redis_url: str, worker: Worker, r: redis.Redis, chat_id: str
) -> None:
    env = gateway_env(redis_url, CHATWORKER_SSE_HEARTBEAT="1")
    first, second, third = (Gunicorn(env, name=name) for name in ("doomed-a", "doomed-b", "c"))
    try:
        for gw in (first, second, third):
            gw.start()
        status, started, _ = call(
            first.url, "POST", "/api/chat/tasks/echo/runs",
            {"chatId": chat_id, "messages": [user_message("hello")],
             "metadata": {"words": WORDS, "delay": DELAY}},
            token=trigger_token(),
        )  # fmt: skip
        assert status == 201, started
        run_id, token = started["runId"], started["publicAccessToken"]
        got: list[Event] = []

        # 1. Reading from gateway A; A is SIGKILLed mid-turn.
        reader = StreamReader("127.0.0.1", first.port, run_id, token).open()
        read_some(reader, got, 20)
        kill(first)
        drain_after_kill(reader, got)
        reader.close()
        cut_a = len(got)

        # 2. Reconnect to B with the Last-Event-ID header (what EventSource sends); B dies too.
        reader = StreamReader("127.0.0.1", second.port, run_id, token, last_id=got[-1].id).open()
        read_some(reader, got, 20)
        kill(second)
        drain_after_kill(reader, got)
        reader.close()
        cut_b = len(got)

        # 3. Reconnect to C with ?lastEventId= (a client that cannot set headers).
        reader = StreamReader(
            "127.0.0.1", third.port, run_id, token, last_id=got[-1].id, use_query=True
        ).open()
        read_to_marker(reader, got)
        reader.close()
        assert cut_a < cut_b < len(got)  # each connection delivered part of the turn

        # Exactly the stream Redis holds, in order, each event once, ids and content alike.
        entries = redis_entries(r, run_id)
        assert [(e.id, e.data) for e in got] == entries[: len(got)]
        assert entries[len(got) - 1][1].startswith('{"type":"__turn_complete"')
        assert increasing([e.id for e in got])
        kinds = [e.type for e in got]
        assert kinds.count("__turn_start") == 1 and kinds.count("__turn_complete") == 1
        assert kinds.count("start") == 1 and kinds.count("finish") == 1
        text = "".join(e.json().get("delta", "") for e in got if e.type == "text-delta")
        words = " ".join(f"w{i}" for i in range(WORDS))
        assert text.strip() == f"echo: hello (turn 0) {words}"

        # The run never noticed: it answers the next message through the surviving gateway.
        marker = got[-1].json()
        status, sent, _ = call(
            third.url, "POST", f"/api/chat/runs/{run_id}/input/messages",
            {"chatId": chat_id, "messages": [user_message("again")]},
            token=marker["publicAccessToken"],
        )  # fmt: skip
        assert status == 202, sent
        reader = StreamReader("127.0.0.1", third.port, run_id, token, last_id=got[-1].id).open()
        turn1: list[Event] = []
        read_to_marker(reader, turn1)
        reader.close()
        assert turn1[-1].json()["inputId"] == sent["inputId"]
        assert [(e.id, e.data) for e in turn1] == redis_entries(r, run_id)[len(got):]
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        for gw in (first, second, third):
            gw.stop()


def test_a_killed_gateway_loses_no_message_or_stop(
    redis_url: str, worker: Worker, r: redis.Redis, chat_id: str
) -> None:
    """Messages and stops sent through a gateway that is then killed were already in Redis:
    the run answers them, and another gateway streams the answers."""
    env = gateway_env(redis_url)
    first, second = Gunicorn(env, name="short-a").start(), Gunicorn(env, name="short-b").start()
    try:
        status, started, _ = call(
            first.url, "POST", "/api/chat/tasks/echo/runs",
            {"chatId": chat_id, "messages": [user_message("one")],
             "metadata": {"words": 200, "delay": 0.02}},
            token=trigger_token(),
        )  # fmt: skip
        assert status == 201
        run_id, token = started["runId"], started["publicAccessToken"]
        reader = StreamReader("127.0.0.1", first.port, run_id, token).open()
        got: list[Event] = []
        read_some(reader, got, 5)
        status, sent, _ = call(
            first.url, "POST", f"/api/chat/runs/{run_id}/input/messages",
            {"chatId": chat_id, "messages": [user_message("two")], "metadata": {"words": 3}},
            token=token,
        )  # fmt: skip
        assert status == 202
        status, stopped, _ = call(first.url, "POST", f"/api/chat/runs/{run_id}/input/stop",
                                  {"stop": True}, token=token)
        assert status == 202 and stopped["stopped"] is True
        kill(first)
        drain_after_kill(reader, got)
        reader.close()
        time.sleep(0.2)
        reader = StreamReader("127.0.0.1", second.port, run_id, token, last_id=got[-1].id).open()
        # The rest of turn 0 (stopped; its marker may have come through the first gateway
        # before it was killed), then turn 1, answering "two".
        while sum(e.type == "__turn_complete" for e in got) < 2:
            read_to_marker(reader, got)
        reader.close()
        assert [(e.id, e.data) for e in got] == redis_entries(r, run_id)[: len(got)]
        markers = [e.json() for e in got if e.type == "__turn_complete"]
        assert [m["stopped"] for m in markers] == [True, False]
        assert markers[1]["inputId"] == sent["inputId"]
        kinds = [e.type for e in got]
        assert kinds.index("abort") < kinds.index("__turn_complete")
        text1 = "".join(
            e.json().get("delta", "") for e in got[kinds.index("__turn_complete"):]
            if e.type == "text-delta"
        )
        assert text1.strip() == "echo: two (turn 1) w0 w1 w2"
    finally:
        first.stop()
        second.stop()
