"""Manual tasks, sessions, raw primitives and the Features-page APIs on a real worker."""

from __future__ import annotations

import json

import pytest
import redis

from chatworker import RunEnded, runs
from chatworker.store import keys

from ..conftest import worker_env
from ..support import (
    events,
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


def hooks(r: redis.Redis, chat_id: str, name: str, count: int = 1) -> list[dict]:
    return wait_for(
        lambda: (
            (found := [e for e in events(r, chat_id) if e["hook"] == name])
            and len(found) >= count
            and found
        )
    )


def test_manual_task_pipes_one_turn_and_ends(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("manual-echo", payload(chat_id, user_message("plain")))
    entries = read_turn(r, started.run_id)
    assert text_of(entries).strip() == "manual: plain"
    assert types_of(entries)[-2:] == ["finish", "__turn_complete"]
    end = read_turn(r, started.run_id, after=entries[-1][0])[-1][1]
    assert end == {"type": "__run_end", "status": "completed", "reason": "returned"}
    with pytest.raises(RunEnded):
        runs.send_message(started.run_id, payload(chat_id, user_message("more")))


def test_manual_task_stop(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger(
        "manual-echo",
        payload(chat_id, user_message("stop me"), metadata={"words": 100, "delay": 0.03}),
    )
    wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 10)
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    assert types_of(entries)[-2:] == ["abort", "__turn_complete"]
    assert entries[-1][1]["stopped"] is True


def test_session_turns_stop_suspend_and_reenter(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger("session-echo", payload(chat_id, user_message("one")))
    turn0 = read_turn(r, started.run_id)
    assert text_of(turn0).strip() == "session: one (turn 0)"
    # Warm 0.5 s, then the session suspends: the run function returns, the slot is free.
    wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=10)

    runs.send_message(
        started.run_id,
        payload(chat_id, user_message("two"), metadata={"words": 100, "delay": 0.03}),
    )
    wait_for(lambda: runs.status(started.run_id).is_streaming)
    wait_for(lambda: len(text_of(runs.read_stream(started.run_id, after=turn0[-1][0]))) > 25)
    runs.stop(started.run_id)
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert turn1[-1][1]["stopped"] is True
    assert text_of(turn1).startswith("session: two (turn 1)")

    runs.send_message(started.run_id, payload(chat_id, user_message("three")))
    turn2 = read_turn(r, started.run_id, after=turn1[-1][0])
    assert text_of(turn2).strip() == "session: three (turn 2)"
    seen = hooks(r, chat_id, "session_turn", 3)
    assert [t["number"] for t in seen] == [0, 1, 2]
    assert seen[1]["stopped"] is True
    assert [m["role"] for m in seen[2]["ui_messages"]] == ["user", "assistant"] * 3
    # The set-up code before the loop ran once per (re-)entry of the run function.
    assert r.lrange(f"test:setup:{chat_id}", 0, -1) == [started.run_id] * 2


def test_raw_loop_with_preload_stop_and_turns(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("raw-echo", {"chatId": chat_id, "messages": [], "trigger": "preload"})
    wait_for(lambda: runs.status(started.run_id).status in {"waiting", "running"})
    runs.send_message(started.run_id, payload(chat_id, user_message("first")))
    turn0 = read_turn(r, started.run_id)
    assert text_of(turn0).strip() == "raw: first (turn 0)"

    runs.send_message(
        started.run_id,
        payload(chat_id, user_message("second"), metadata={"words": 100, "delay": 0.03}),
    )
    wait_for(lambda: len(text_of(runs.read_stream(started.run_id, after=turn0[-1][0]))) > 25)
    runs.stop(started.run_id)
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert turn1[-1][1]["stopped"] is True and types_of(turn1)[-2] == "abort"

    runs.send_message(started.run_id, payload(chat_id, user_message("third")))
    turn2 = read_turn(r, started.run_id, after=turn1[-1][0])
    assert text_of(turn2).strip() == "raw: third (turn 2)"
    seen = hooks(r, chat_id, "raw_turn", 3)
    assert [t["stopped"] for t in seen] == [False, True, False]
    assert [m["role"] for m in seen[2]["ui_messages"]] == ["user", "assistant"] * 3
    # Parked past its warm timeout, the raw run still answers (no message lost).
    wait_for(lambda: r.hget(keys.run(started.run_id), "parked") == "1", timeout=5)
    runs.send_message(started.run_id, payload(chat_id, user_message("fourth")))
    assert (
        text_of(read_turn(r, started.run_id, after=turn2[-1][0])).strip() == "raw: fourth (turn 3)"
    )


def test_concurrency_limit_holds_across_two_workers(redis_url: str) -> None:
    with (
        isolated_db(redis_url, 5) as url,
        running_worker(worker_env(url), name="qa"),
        running_worker(worker_env(url), name="qb"),
    ):
        r = redis.Redis.from_url(url, decode_responses=True)
        started = [
            runs.trigger("tight-queue", payload(f"tight-{i}", user_message(str(i))))
            for i in range(5)
        ]
        for s in started:
            assert text_of(read_turn(r, s.run_id, timeout=30)) == "done"
        peaks = [int(p) for p in r.lrange("test:tight:peaks", 0, -1)]
        assert len(peaks) == 5 and max(peaks) <= 2
        log = [json.loads(e) for e in r.lrange("test:tight", 0, -1)]
        active, most = 0, 0
        for event in sorted(log, key=lambda e: e["at"]):
            active += 1 if event["event"] == "start" else -1
            most = max(most, active)
        assert most == 2  # the limit was reached, never exceeded
        wait_for(lambda: r.zcard(keys.queue_slots("tight")) == 0)  # every slot was given back


def test_retry_after_a_failure(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("flaky", payload(chat_id, user_message("x")))
    entries = read_turn(r, started.run_id, timeout=20)
    kinds = types_of(entries)
    # The failed attempt's partial message is closed by `abort`, then a fresh message follows.
    assert (
        kinds.count("start") == 2
        and kinds.index("abort") < len(kinds) - kinds[::-1].index("start") - 1
    )
    assert text_of(entries).endswith("attempt 2")
    assert entries[-1][1]["type"] == "__turn_complete" and entries[-1][1]["stopped"] is False
    assert r.lrange(f"test:attempts:{chat_id}", 0, -1) == ["1", "2"]


def test_defer_local_data_parts_and_suspension(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger("features", payload(chat_id, user_message("a")))
    turn0 = read_turn(r, started.run_id)
    wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=10)
    runs.send_message(started.run_id, payload(chat_id, user_message("b")))
    read_turn(r, started.run_id, after=turn0[-1][0])
    seen = hooks(r, chat_id, "features", 2)
    # Deferred work finished before on_turn_complete ran.
    assert [s["audit"] for s in seen] == ["written", "written"]
    # chat.local survived suspension within the run.
    assert [s["counter"]["turns"] for s in seen] == [1, 2]
    complete = hooks(r, chat_id, "on_turn_complete", 2)
    parts = complete[1]["response_message"]["parts"]
    data = [p for p in parts if p["type"].startswith("data-")]
    assert data == [{"type": "data-status", "id": "s1", "data": {"step": "done"}}]
    # The transient part reached the stream but not the stored message.
    assert "data-ping" in types_of(turn0)
    # Persisted history carries the data part too.
    assistant = complete[1]["ui_messages"][1]
    assert any(p["type"] == "data-status" for p in assistant["parts"])


def test_local_starts_empty_in_a_continuation(worker: object, r: redis.Redis, chat_id: str) -> None:
    first = runs.trigger("features", payload(chat_id, user_message("a")))
    read_turn(r, first.run_id)
    runs.cancel(first.run_id)
    second = runs.trigger(
        "features",
        payload(chat_id, user_message("a"), continuation=True, previousRunId=first.run_id),
    )
    read_turn(r, second.run_id)
    seen = hooks(r, chat_id, "features", 2)
    assert seen[1]["counter"] == {"turns": 1, "run": second.run_id}


def test_preload_then_first_message(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger(
        "features",
        {"chatId": chat_id, "messages": [], "trigger": "preload", "metadata": {"words": 1}},
    )
    preload = hooks(r, chat_id, "on_preload")[0]
    assert preload["run_id"] == started.run_id and preload["client_data"]["words"] == 1
    assert runs.status(started.run_id).turn == 0
    runs.send_message(started.run_id, payload(chat_id, user_message("hello")))
    entries = read_turn(r, started.run_id)
    assert text_of(entries).startswith("echo: hello (turn 0)")
    start = hooks(r, chat_id, "on_chat_start")[0]
    assert start["preloaded"] is True


def test_async_run_function_generator_and_hook(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger("async-chat", payload(chat_id, user_message("hi")))
    entries = read_turn(r, started.run_id)
    assert text_of(entries) == "async chunks stream "
    complete = hooks(r, chat_id, "on_turn_complete")[0]
    assert complete["response_message"]["parts"][-1]["text"] == "async chunks stream "
