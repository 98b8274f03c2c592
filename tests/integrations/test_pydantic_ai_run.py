"""A pydantic-ai agent inside a durable chat run: a real worker, Redis and the scripted model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

pytest.importorskip(
    "pydantic_ai", reason="pydantic-ai is not installed (pip install 'chatworker[pydantic-ai]')"
)

from chatworker import config, runs
from chatworker.engine.registry import load_tasks
from chatworker.testing import Error, ModelServer, Silence, Text, ToolCall
from chatworker.testing.checks import assert_valid_ui_stream

from ..conftest import worker_env
from ..faults.helpers import pointed_at
from ..support import (
    Worker,
    events,
    payload,
    read_turn,
    read_until,
    text_of,
    user_message,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TASKS = "tests.tasks,tests.integrations.pydantic_ai_tasks"


@pytest.fixture(scope="module")
def agent_worker(redis_url: str, model_server: ModelServer) -> Iterator[Worker]:
    load_tasks("tests.integrations.pydantic_ai_tasks")
    url = redis_url.rsplit("/", 1)[0] + "/11"
    with pointed_at(url):
        worker = Worker(worker_env(url, CHATWORKER_TASKS=TASKS), name="pydantic-ai").start()
        try:
            yield worker
        finally:
            worker.stop()
    assert "failed in turn" not in worker.log(), worker.log()[-3000:]


@pytest.fixture
def store(agent_worker: Worker) -> redis.Redis:
    return redis.Redis.from_url(config.redis_url(), decode_responses=True)


def ui(entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [c for _, c in entries if not c["type"].startswith("__")]


def test_agent_turns_tools_history_and_stop_in_a_durable_run(
    agent_worker: Worker, model_server: ModelServer, store: redis.Redis, chat_id: str
) -> None:
    tag = chat_id
    model_server.on(f"Paris {tag}", [ToolCall("get_weather", {"city": "Paris"}, id="call_p")],
                    once=True)
    model_server.on(f"Paris {tag}", [Text("It is sunny in Paris.")], once=True)
    model_server.on(f"tomorrow {tag}", [Text("Still sunny.")], once=True)
    model_server.on(f"story {tag}", [Text("Once upon"), Silence(10), Text(" never")], once=True)

    # turn 0: a tool call streamed end to end
    started = runs.trigger("pydantic-ai-agent", payload(chat_id, user_message(f"Paris {tag}")))
    entries = read_turn(store, started.run_id, timeout=30)
    chunks = ui(entries)
    assert_valid_ui_stream(chunks)
    kinds = [c["type"] for c in chunks]
    assert {"tool-input-start", "tool-input-available", "tool-output-available"} <= set(kinds)
    assert chunks[-1]["type"] == "finish"
    assert text_of(entries) == "It is sunny in Paris."
    assert entries[-1][1]["type"] == "__turn_complete" and entries[-1][1]["stopped"] is False

    # turn 1: the model is shown the first turn, its tool call and result included
    runs.send_message(started.run_id, payload(chat_id, user_message(f"tomorrow {tag}")))
    entries = read_turn(store, started.run_id, after=entries[-1][0], timeout=30)
    assert text_of(entries) == "Still sunny."
    seen = next(b for b in reversed(model_server.requests)
                if f"tomorrow {tag}" in str(b["messages"][-1]))["messages"]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool", "assistant", "user"]
    assert seen[1]["tool_calls"][0]["id"] == "call_p"
    assert "sunny in Paris" in seen[2]["content"]

    # turn 2: stopped while the model is silent; the partial reply is kept
    runs.send_message(started.run_id, payload(chat_id, user_message(f"story {tag}")))
    after = entries[-1][0]
    read_until(store, started.run_id,
               lambda c: c["type"] == "text-delta" and "upon" in c["delta"], after, 30)
    assert runs.stop(started.run_id)
    entries = read_turn(store, started.run_id, after=after, timeout=30)
    chunks = ui(entries)
    assert_valid_ui_stream(chunks)
    assert entries[-1][1]["stopped"] is True
    assert text_of(entries) == "Once upon"
    record = next(r for r in reversed(model_server.streams)
                  if f"story {tag}" in str(r.body["messages"][-1]))
    assert record.closed.wait(5) and record.outcome == "client-closed"
    completes = wait_for(lambda: [e for e in events(store, chat_id)
                                  if e["hook"] == "on_turn_complete"][2:] or None, timeout=20)
    assert completes[0]["stopped"] is True
    kept = completes[0]["response_message"]["parts"]
    assert "".join(p.get("text", "") for p in kept if p["type"] == "text") == "Once upon"


def test_an_async_run_function_pipes_the_agent(
    agent_worker: Worker, model_server: ModelServer, store: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"async {chat_id}", [Text("Piped from async code.")], once=True)
    started = runs.trigger("pydantic-ai-agent-async",
                           payload(chat_id, user_message(f"async {chat_id}")))
    entries = read_turn(store, started.run_id, timeout=30)
    assert_valid_ui_stream(ui(entries))
    assert text_of(entries) == "Piped from async code."


def test_a_model_failure_is_the_tasks_error_text_and_the_run_lives_on(
    agent_worker: Worker, model_server: ModelServer, store: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"fail {chat_id}", [Error(400, "secret-detail")], once=True)
    model_server.on(f"again {chat_id}", [Text("Back again.")], once=True)
    started = runs.trigger("pydantic-ai-agent", payload(chat_id, user_message(f"fail {chat_id}")))
    entries = read_turn(store, started.run_id, timeout=30)
    chunks = ui(entries)
    assert_valid_ui_stream(chunks)
    assert [c["errorText"] for c in chunks if c["type"] == "error"] == ["the agent failed"]
    assert chunks[-1] == {"type": "finish", "finishReason": "error"}
    assert entries[-1][1]["type"] == "__turn_complete"
    runs.send_message(started.run_id, payload(chat_id, user_message(f"again {chat_id}")))
    entries = read_turn(store, started.run_id, after=entries[-1][0], timeout=30)
    assert text_of(entries) == "Back again."
