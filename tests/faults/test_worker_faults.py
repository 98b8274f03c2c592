"""Workers that die or shut down: runs are recovered, nothing is lost or answered twice."""

from __future__ import annotations

import http.client
import signal
import time

import pytest
import redis

from chatworker import runs

from ..conftest import worker_env
from ..gateway.conftest_helpers import Gunicorn, gateway_env
from ..rabbitmq_support import RabbitMQServer
from ..support import (
    Backend,
    Worker,
    events,
    isolated,
    isolated_db,
    payload,
    read_turn,
    running_worker,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration


def completes_for(r: redis.Redis, chat_id: str) -> list[dict]:
    return [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"]


def test_sigkill_mid_turn_restarts_the_turn_elsewhere(
    backend: Backend, chat_id: str, broker: RabbitMQServer | None
) -> None:
    """(On one redis-server and on a Redis Cluster, on both brokers: the turn is recovered from
    its lease, never redelivered.)"""
    with isolated(backend, 6, rabbitmq=broker) as on:
        r = on.client()
        # Both workers are up before the turn starts (a worker slow to start on a loaded
        # machine must not let the turn finish before the kill); the one streaming is killed.
        first = Worker(worker_env(on.url, **on.env()), name="first").start()
        second = Worker(worker_env(on.url, **on.env()), name="second").start()
        try:
            started = runs.trigger("echo", payload(chat_id, user_message("hello"),
                                                   metadata={"words": 60, "delay": 0.05}))
            wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 20)
            owner = runs.status(started.run_id).owner or ""
            assert first.proc is not None
            doomed = first if owner.split(":")[1:2] == [str(first.proc.pid)] else second
            killed_at = time.time()
            doomed.stop(signal.SIGKILL)
            entries = read_turn(r, started.run_id, timeout=30)
            kinds = types_of(entries)
            # The partial reply is closed by `abort` before the turn is answered again.
            first_abort = kinds.index("abort")
            assert entries[first_abort][1]["reason"] == "worker lost"
            assert kinds[first_abort + 1:].count("start") == 1
            assert kinds.count("__turn_complete") == 1
            assert entries[-1][1]["stopped"] is False
            restarted = [c for _, c in entries[first_abort:] if c["type"] == "text-delta"]
            assert "".join(c["delta"] for c in restarted).startswith("echo: hello (turn 0)")
            # Stream entry ids carry Redis's clock: when was the turn started again?
            restart_id = [i for i, c in entries[first_abort:] if c["type"] == "__turn_start"]
            restarted_after = int(restart_id[0].split("-")[0]) / 1000 - killed_at
            print(f"turn restarted {restarted_after:.2f}s after the kill")
            assert restarted_after < 15  # lease 3 s + sweep each second: docs/reliability.md
            done = wait_for(lambda: completes_for(r, chat_id))
            time.sleep(1.5)
            assert len(completes_for(r, chat_id)) == 1  # on_turn_complete fired once
            assert [m["role"] for m in done[0]["ui_messages"]] == ["user", "assistant"]
            # The run keeps working for later turns.
            runs.send_message(started.run_id, payload(chat_id, user_message("again")))
            turn1 = read_turn(r, started.run_id, after=entries[-1][0])
            assert text_of(turn1).strip() == "echo: again (turn 1)"
        finally:
            first.stop(signal.SIGKILL)
            second.stop(signal.SIGKILL)


def test_killed_while_warm_or_suspended_runs_answer_next_message(redis_url: str,
                                                                chat_id: str) -> None:
    with isolated_db(redis_url, 7) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        doomed = Worker(worker_env(url), name="doomed2").start()
        try:
            warm = runs.trigger("echo", payload(chat_id + "-w", user_message("w")))
            asleep = runs.trigger("sleepy", payload(chat_id + "-s", user_message("s")))
            warm_turn = read_turn(r, warm.run_id)
            sleep_turn = read_turn(r, asleep.run_id)
            wait_for(lambda: runs.status(asleep.run_id).status == "suspended", timeout=10)
            assert runs.status(warm.run_id).status == "waiting"
            doomed.stop(signal.SIGKILL)
            with running_worker(worker_env(url), name="rescuer2"):
                runs.send_message(warm.run_id, payload(chat_id + "-w", user_message("w2")))
                runs.send_message(asleep.run_id, payload(chat_id + "-s", user_message("s2")))
                t1 = read_turn(r, warm.run_id, after=warm_turn[-1][0], timeout=30)
                t2 = read_turn(r, asleep.run_id, after=sleep_turn[-1][0], timeout=30)
                assert text_of(t1).strip() == "echo: w2 (turn 1)"
                assert text_of(t2).strip() == "echo: s2 (turn 1)"
                assert "abort" not in types_of(t1)  # nothing was streaming when it died
        finally:
            doomed.stop(signal.SIGKILL)


def test_sigterm_suspends_warm_runs_at_once(redis_url: str, chat_id: str) -> None:
    with isolated_db(redis_url, 8) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        worker = Worker(worker_env(url), name="graceful").start()
        started = runs.trigger("echo", payload(chat_id, user_message("x")))  # warm: 10 s
        turn0 = read_turn(r, started.run_id)
        wait_for(lambda: runs.status(started.run_id).status == "waiting")
        began = time.monotonic()
        worker.stop(signal.SIGTERM, timeout=30)
        assert time.monotonic() - began < 8  # did not sit out the 10 s warm timeout
        assert runs.status(started.run_id).status == "suspended"
        with running_worker(worker_env(url), name="next"):
            runs.send_message(started.run_id, payload(chat_id, user_message("y")))
            t1 = read_turn(r, started.run_id, after=turn0[-1][0], timeout=30)
            assert text_of(t1).strip() == "echo: y (turn 1)"


def test_redelivered_message_never_gives_a_run_two_owners(redis_url: str, chat_id: str) -> None:
    """Start messages sent twice (a requeue racing a slow claim): one owner, one answer."""
    with isolated_db(redis_url, 9) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        env = worker_env(url)
        with running_worker(env, name="vis-a"), running_worker(env, name="vis-b"):
            started = runs.trigger("echo", payload(chat_id, user_message("long"),
                                                   metadata={"words": 80, "delay": 0.06}))
            entries = read_turn(r, started.run_id, timeout=40)
            assert types_of(entries).count("start") == 1
            assert types_of(entries).count("__turn_start") == 1
            assert text_of(entries).count("echo: long") == 1
            runs.enqueue(started.run_id)  # a second start message for a running run
            time.sleep(3)
            assert len(completes_for(r, chat_id)) == 1
            # Two resumes racing for the same suspended run: one owner, one answer.
            runs.send_message(started.run_id, payload(chat_id, user_message("next")))
            runs.enqueue(started.run_id)
            runs.enqueue(started.run_id)
            turn1 = read_turn(r, started.run_id, after=entries[-1][0], timeout=20)
            assert types_of(turn1).count("start") == 1
            time.sleep(1)
            assert len(completes_for(r, chat_id)) == 2


def read_until(resp: http.client.HTTPResponse, wanted: str, timeout: float) -> list[str]:
    """SSE lines read until one equals ``wanted`` (AssertionError after ``timeout`` seconds)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = resp.readline().decode().rstrip("\r\n")
        lines.append(line)
        if line == wanted:
            return lines
    raise AssertionError(f"no {wanted!r} within {timeout}s; got {lines[-20:]}")


def test_stream_says_when_a_turn_waits_for_a_worker(redis_url: str, chat_id: str) -> None:
    """A turn whose only worker died: its stream says so within seconds, long before the next
    keep-alive tick, and says keep-alive again once a worker has taken the run over."""
    with isolated_db(redis_url, 6) as url:
        doomed = Worker(worker_env(url), name="doomed").start()
        gateway = Gunicorn(gateway_env(url, CHATWORKER_SSE_HEARTBEAT="60"), name="stall").start()
        try:
            started = runs.trigger("echo", payload(chat_id, user_message("hello"),
                                                   metadata={"words": 80, "delay": 0.05}))
            conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
            conn.request("GET", f"/api/chat/runs/{started.run_id}/stream",
                         headers={"Authorization": f"Bearer {started.public_access_token}"})
            resp = conn.getresponse()
            assert resp.status == 200
            read_until(resp, ": stream open", 10)
            wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 20)
            doomed.stop(signal.SIGKILL)
            # The lease lapses (3 s) and the gateway's check (every 2 s) notices: well before
            # the 60 s heartbeat.
            read_until(resp, ": waiting for a worker", 20)
            with running_worker(worker_env(url), name="rescuer"):
                after = read_until(resp, ": keep-alive", 30)
                assert not any("__turn_complete" in line for line in after)
                rest = read_until(resp, "", 30)
                while not any("__turn_complete" in line for line in rest):
                    rest += read_until(resp, "", 30)
            conn.close()
        finally:
            gateway.stop()
            doomed.stop(signal.SIGKILL)
