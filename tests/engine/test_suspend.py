"""Warm waiting, suspension, resumption and run expiry with real worker processes."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis

from chatworker import RunEnded, runs

from ..conftest import Stack, worker_env
from ..rabbitmq_support import RabbitMQServer
from ..support import (
    events,
    isolated_db,
    payload,
    read_turn,
    running_worker,
    text_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_suspended_run_frees_its_slot_and_resumes(
    redis_url: str, chat_id: str, broker: RabbitMQServer | None
) -> None:
    """(On both brokers: a worker with one slot takes a message only when that slot is free.)"""
    with (
        isolated_db(redis_url, 3, rabbitmq=broker) as url,
        running_worker(worker_env(url), pool="gevent", concurrency=1, name="solo"),
    ):
        r = redis.Redis.from_url(url, decode_responses=True)
        first = runs.trigger("sleepy", payload(chat_id, user_message("first chat")))
        turn0 = read_turn(r, first.run_id)
        wait_for(lambda: runs.status(first.run_id).status == "suspended", timeout=10)

        # The only worker slot is free: a second chat is served while the first sleeps.
        other = runs.trigger("sleepy", payload(chat_id + "-b", user_message("second chat")))
        assert text_of(read_turn(r, other.run_id, timeout=10)).startswith("echo: second chat")

        input_id = runs.send_message(first.run_id, payload(chat_id, user_message("wake up")))
        turn1 = read_turn(r, first.run_id, after=turn0[-1][0])
        assert turn1[-1][1]["inputId"] == input_id
        assert text_of(turn1).strip() == "echo: wake up (turn 1)"
        complete = wait_for(
            lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"][1:]
        )
        # History survived suspension: restored from the checkpoint on resume.
        assert [m["role"] for m in complete[0]["ui_messages"]] == [
            "user",
            "assistant",
            "user",
            "assistant",
        ]


def test_turn_timeout_completes_then_continuation(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    history = [user_message("remember me")]
    first = runs.trigger("brief", payload(chat_id, *history))
    turn0 = read_turn(r, first.run_id)
    end = read_turn(r, first.run_id, after=turn0[-1][0], timeout=15)[-1][1]
    assert end == {"type": "__run_end", "status": "completed", "reason": "turn_timeout"}
    assert runs.status(first.run_id).status == "completed"
    with pytest.raises(RunEnded):
        runs.send_message(first.run_id, payload(chat_id, user_message("too late")))

    done = wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"])
    full = [*done[0]["ui_messages"], user_message("too late")]
    second = runs.trigger(
        "brief", payload(chat_id, *full, continuation=True, previousRunId=first.run_id)
    )
    assert text_of(read_turn(r, second.run_id)).strip() == "echo: too late (turn 0)"
    starts = [e for e in events(r, chat_id) if e["hook"] == "on_chat_start"]
    assert starts[1]["continuation"] is True
    assert starts[1]["previous_run_id"] == first.run_id
    assert starts[0]["continuation"] is False


def test_runtime_overrides_survive_suspension(stack: Stack, chat_id: str) -> None:
    r = stack.r  # on one redis-server, then on a Redis Cluster
    started = runs.trigger("overrides", payload(chat_id, user_message("a")))
    turn0 = read_turn(r, started.run_id)
    # The task's static warm timeout is 30 s; the override (0.3 s) suspends it at once.
    wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=5)
    runs.send_message(started.run_id, payload(chat_id, user_message("b")))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert text_of(turn1).strip() == "echo: b (turn 1)"
    # After resuming on a fresh ChatRun, both overrides still hold: suspend fast, end at 3 s.
    wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=5)
    end = read_turn(r, started.run_id, after=turn1[-1][0], timeout=15)[-1][1]
    assert end["reason"] == "turn_timeout"


def test_hammer_messages_at_the_moment_of_suspending(
    stack: Stack, chat_id: str
) -> None:
    """Warm timeout 0: each turn ends by suspending at once; send exactly then, many times."""
    r = stack.r  # on one redis-server, then on a Redis Cluster
    started = runs.trigger("instant", payload(chat_id, user_message("m0")))
    cursor = read_turn(r, started.run_id)[-1][0]
    rng = random.Random(7)
    sent: list[str] = []
    for i in range(1, 41):
        time.sleep(rng.choice([0, 0, 0.0005, 0.002, 0.01]))
        sent.append(runs.send_message(started.run_id, payload(chat_id, user_message(f"m{i}"))))
        entries = read_turn(r, started.run_id, after=cursor, turn=i, timeout=15)
        cursor = entries[-1][0]
        assert entries[-1][1]["inputId"] == sent[-1]
        assert text_of(entries).strip() == f"echo: m{i} (turn {i})"


def test_concurrent_senders_lose_nothing(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("instant", payload(chat_id, user_message("start")))
    read_turn(r, started.run_id)
    sent: list[str] = []
    lock = threading.Lock()

    def sender(n: int) -> None:
        for i in range(8):
            time.sleep(random.random() * 0.02)
            input_id = runs.send_message(
                started.run_id, payload(chat_id, user_message(f"s{n}-{i}"))
            )
            with lock:
                sent.append(input_id)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = wait_for(
        lambda: (
            (
                m := [
                    c
                    for _, c in runs.read_stream(started.run_id)
                    if c["type"] == "__turn_complete" and "inputId" in c
                ]
            )
            and len(m) >= len(sent)
            and m
        ),
        timeout=30,
    )
    ids = [m["inputId"] for m in answered]
    assert sorted(ids) == sorted(sent) and len(set(ids)) == len(ids)
    # Answered in the order Redis accepted them (i1, i2, ...).
    assert ids == sorted(ids, key=lambda s: int(s[1:]))


def test_prefork_pool_runs_turns_and_suspends(redis_url: str, chat_id: str) -> None:
    with (
        isolated_db(redis_url, 4) as url,
        running_worker(worker_env(url), pool="prefork", concurrency=2, name="prefork"),
    ):
        r = redis.Redis.from_url(url, decode_responses=True)
        started = runs.trigger(
            "sleepy", payload(chat_id, user_message("p"), metadata={"words": 60, "delay": 0.03})
        )
        wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 10)
        runs.stop(started.run_id)
        turn0 = read_turn(r, started.run_id)
        assert turn0[-1][1]["stopped"] is True
        wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=10)
        runs.send_message(started.run_id, payload(chat_id, user_message("q")))
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        assert text_of(turn1).strip() == "echo: q (turn 1)"
