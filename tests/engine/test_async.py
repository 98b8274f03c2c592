"""``async def`` run functions, hooks, tools, sessions and raw loops on a real gevent worker;
and what stop, per-turn stream options and a zero turn timeout do (tasks in tests/async_tasks)."""

from __future__ import annotations

import pytest
import redis

from chatworker import runs
from chatworker.testing import ModelServer, Reasoning, Text, ToolCall

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


def texts(message: dict) -> list[str]:
    return [p["text"] for p in message["parts"] if p["type"] == "text"]


def test_awaited_pipes_and_async_hooks(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("async-pipes", payload(chat_id, user_message("hi")))
    entries = read_turn(r, started.run_id)
    # The pipe nobody awaited still streams, in its place between the awaited ones.
    assert text_of(entries) == "first forgotten last "
    assert types_of(entries)[-2:] == ["finish", "__turn_complete"]
    assert [e["hook"] for e in events(r, chat_id)][:2] == ["on_chat_start", "on_turn_start"]
    complete = hooks(r, chat_id, "on_turn_complete")[0]
    assert texts(complete["response_message"]) == ["first ", "forgotten ", "last "]
    assert [m["role"] for m in complete["ui_messages"]] == ["user", "assistant"]
    # The run lives on: the next turn runs the async run function again.
    runs.send_message(started.run_id, payload(chat_id, user_message("again")))
    assert text_of(read_turn(r, started.run_id, after=entries[-1][0])) == "first forgotten last "


def test_async_tool_and_async_on_finish(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"weather {chat_id}", [ToolCall("weather", {"city": "Oslo"})], once=True)
    model_server.on(f"weather {chat_id}", [Text("Sunny in Oslo.")])
    started = runs.trigger("async-tools", payload(chat_id, user_message(f"weather {chat_id}")))
    entries = read_turn(r, started.run_id)
    outputs = [c["output"] for _, c in entries if c["type"] == "tool-output-available"]
    assert outputs == [{"city": "Oslo", "sky": "sunny"}]
    assert text_of(entries) == "Sunny in Oslo."
    assert hooks(r, chat_id, "on_finish")[0]["text"] == "Sunny in Oslo."


def test_two_async_runs_stream_side_by_side_on_one_gevent_worker(
    worker: object, r: redis.Redis
) -> None:
    first = runs.trigger("async-slow", payload("chat-a", user_message("a")))
    second = runs.trigger("async-slow", payload("chat-b", user_message("b")))
    expected = "".join(f"w{i} " for i in range(15))
    a, b = read_turn(r, first.run_id), read_turn(r, second.run_id)
    assert text_of(a) == expected and text_of(b) == expected

    def deltas(entries: list) -> list[tuple[int, int]]:
        return [tuple(map(int, i.split("-"))) for i, c in entries if c["type"] == "text-delta"]

    # Interleaved: each run streamed while the other was streaming.
    assert deltas(b)[0] < deltas(a)[-1] and deltas(a)[0] < deltas(b)[-1]


@pytest.mark.parametrize("pool", ["threads", "prefork", "solo"])
def test_async_runs_on_the_other_pools(redis_url: str, pool: str) -> None:
    with (
        isolated_db(redis_url, 15) as url,
        running_worker(worker_env(url), pool=pool, concurrency=2, name=pool),
    ):
        r = redis.Redis.from_url(url, decode_responses=True)
        started = runs.trigger("async-pipes", payload(f"{pool}-a", user_message("hi")))
        slow = runs.trigger("async-slow", payload(f"{pool}-b", user_message("hi")))
        assert text_of(read_turn(r, started.run_id, timeout=30)) == "first forgotten last "
        expected = "".join(f"w{i} " for i in range(15))
        assert text_of(read_turn(r, slow.run_id, timeout=30)) == expected
        assert hooks(r, f"{pool}-a", "on_turn_complete")[0]["turn"] == 0


@pytest.mark.parametrize("task", ["stop-source", "async-stop-source"])
def test_nothing_a_source_yields_after_the_stop_is_written(
    worker: object, r: redis.Redis, chat_id: str, task: str
) -> None:
    started = runs.trigger(task, payload(chat_id, user_message("go")))
    wait_for(lambda: "before" in text_of(runs.read_stream(started.run_id)))
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    assert text_of(entries) == "before "
    assert types_of(entries)[-2:] == ["abort", "__turn_complete"]


def test_per_turn_stream_options_hold_for_every_pipe(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"think twice {chat_id}", [Reasoning("hmm"), Text("answer")])
    started = runs.trigger("options-twice",
                           payload(chat_id, user_message(f"think twice {chat_id}")))
    entries = read_turn(r, started.run_id)
    assert text_of(entries) == "answeranswer"
    assert not [t for t in types_of(entries) if t.startswith("reasoning")]


def test_async_session_turns_complete_capture_and_suspend(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger("async-session", payload(chat_id, user_message("one")))
    turn0 = read_turn(r, started.run_id)
    assert text_of(turn0) == "session one 0 "
    # Warm 0.5 s, then suspended; the next message re-enters the async run function.
    wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=10)
    runs.send_message(started.run_id, payload(chat_id, user_message("two")))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert text_of(turn1) == "session two 1 "
    assert types_of(turn1)[-2:] == ["finish", "__turn_complete"]
    runs.send_message(started.run_id, payload(chat_id, user_message("three")))
    turn2 = read_turn(r, started.run_id, after=turn1[-1][0])
    assert text_of(turn2) == "session three 2 "
    seen = hooks(r, chat_id, "session_turn", 3)
    assert [t["number"] for t in seen] == [0, 1, 2]
    history = seen[2]["ui_messages"]
    assert [m["role"] for m in history] == ["user", "assistant"] * 3
    assert [texts(m) for m in history if m["role"] == "assistant"] == [
        ["session one 0 "], ["session two 1 "], ["session three 2 "]]


def test_async_raw_loop(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("async-raw", {"chatId": chat_id, "messages": [], "trigger": "preload"})
    wait_for(lambda: runs.status(started.run_id).status in {"waiting", "running"})
    runs.send_message(started.run_id, payload(chat_id, user_message("first")))
    turn0 = read_turn(r, started.run_id)
    assert text_of(turn0) == "raw first 0 "
    runs.send_message(started.run_id, payload(chat_id, user_message("second")))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert text_of(turn1) == "raw second 1 "
    seen = hooks(r, chat_id, "raw_turn", 2)
    history = seen[1]["ui_messages"]
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert texts(history[-1]) == ["raw second 1 "]


def test_turn_timeout_zero_in_a_session_ends_the_run_after_the_warm_wait(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger("session-timeout-zero", payload(chat_id, user_message("hi")))
    turn0 = read_turn(r, started.run_id)
    assert text_of(turn0) == "once"
    end = read_turn(r, started.run_id, after=turn0[-1][0], timeout=15)[-1][1]
    assert end["type"] == "__run_end" and end["reason"] == "turn_timeout"
