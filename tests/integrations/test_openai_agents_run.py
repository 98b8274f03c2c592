"""An OpenAI Agents SDK agent answering a durable chat run on a real worker: two turns with a
tool call in between, and a stop while the model is silent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

pytest.importorskip(
    "agents", reason="the OpenAI Agents SDK (pip install 'chatworker[openai-agents]') is missing"
)

from chatworker import runs
from chatworker.engine.registry import load_tasks
from chatworker.testing import (
    Error,
    ModelServer,
    Reasoning,
    Seen,
    Silence,
    Text,
    ToolCall,
    call_then_report,
)
from chatworker.testing.checks import assert_valid_ui_stream

from ..conftest import TASKS, worker_env
from ..faults.helpers import pointed_at
from ..support import (
    Worker,
    payload,
    read_turn,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration

AGENT_TASKS = "tests.integrations.agents_tasks"


@pytest.fixture(scope="module")
def agents_url(redis_url: str) -> str:
    """A database of its own: the shared worker (which does not know this task) never sees it."""
    return redis_url.rsplit("/", 1)[0] + "/14"


@pytest.fixture(scope="module")
def agents_worker(agents_url: str, model_server: ModelServer) -> Iterator[Worker]:
    load_tasks(AGENT_TASKS)
    with pointed_at(agents_url):
        w = Worker(worker_env(agents_url, CHATWORKER_TASKS=f"{TASKS},{AGENT_TASKS}"),
                   pool="gevent", concurrency=20, name="agents").start()
        try:
            yield w
        finally:
            w.stop()


@pytest.fixture
def r(agents_worker: Worker, agents_url: str) -> redis.Redis:
    return redis.Redis.from_url(agents_url, decode_responses=True)


def chunks(entries: list[tuple[str, dict]]) -> list[dict]:
    return [c for _, c in entries if not c["type"].startswith("__")]


def test_two_turns_with_a_tool_call(agents_worker: Worker, model_server: ModelServer,
                                    r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"weather {chat_id}",
                    call_then_report(ToolCall("get_weather", {"city": "Oslo"})))
    model_server.on(f"remind {chat_id}", [Seen()])
    started = runs.trigger("openai-agents", payload(chat_id, user_message(f"weather {chat_id}")))
    first = read_turn(r, started.run_id)
    assert_valid_ui_stream(chunks(first))
    assert {"tool-input-start", "tool-input-delta", "tool-output-available"} <= set(
        types_of(first))
    assert "sunny" in text_of(first)
    runs.send_message(started.run_id, payload(chat_id, user_message(f"remind {chat_id}")))
    second = read_turn(r, started.run_id, after=first[-1][0])
    assert_valid_ui_stream(chunks(second))
    assert text_of(second) == f"saw: weather {chat_id} | remind {chat_id}"
    body = next(b for b in model_server.requests if f"remind {chat_id}" in str(b))
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_stop_while_the_model_is_silent(agents_worker: Worker, model_server: ModelServer,
                                        r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"silent {chat_id}", [Text("partial answer"), Silence(60)])
    started = runs.trigger("openai-agents", payload(chat_id, user_message(f"silent {chat_id}")))
    wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    assert types_of(entries)[-2:] == ["abort", "__turn_complete"]
    assert entries[-1][1]["stopped"] is True
    assert text_of(entries) == "partial answer"
    record = next(s for s in model_server.streams if f"silent {chat_id}" in str(s.body))
    assert record.closed.wait(5) and record.outcome == "client-closed"
    # the run is alive and answers the next message
    model_server.on(f"after {chat_id}", [Text("back again")])
    runs.send_message(started.run_id, payload(chat_id, user_message(f"after {chat_id}")))
    assert text_of(read_turn(r, started.run_id, after=entries[-1][0])) == "back again"


def test_a_model_failure_is_an_error_chunk_and_the_run_goes_on(
    agents_worker: Worker, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"fail {chat_id}", [Error(500)])
    started = runs.trigger("openai-agents", payload(chat_id, user_message(f"fail {chat_id}")))
    entries = read_turn(r, started.run_id)
    assert_valid_ui_stream(chunks(entries))
    # the task's on_error names the error
    assert [c["errorText"] for _, c in entries if c["type"] == "error"] == [
        "agent trouble: InternalServerError"]
    model_server.on(f"again {chat_id}", [Text("fine now")])
    runs.send_message(started.run_id, payload(chat_id, user_message(f"again {chat_id}")))
    assert text_of(read_turn(r, started.run_id, after=entries[-1][0])) == "fine now"


def test_the_tasks_stream_options_apply(agents_worker: Worker, model_server: ModelServer,
                                        r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"think {chat_id}", [Reasoning("pondering"), Text("An answer.")])
    started = runs.trigger("openai-agents-options",
                           payload(chat_id, user_message(f"think {chat_id}")))
    turn = chunks(read_turn(r, started.run_id))
    assert_valid_ui_stream(turn)
    # message_metadata: on start, and on finish next to the adapter's own agent and usage
    assert turn[0]["messageMetadata"] == {"model": "scripted-model"}
    finish = turn[-1]["messageMetadata"]
    assert finish["model"] == "scripted-model" and finish["agent"] == "assistant"
    assert finish["usage"]["outputTokens"] > 0
    # send_reasoning=False
    assert not [c for c in turn if c["type"].startswith("reasoning")]
    assert text_of([("", c) for c in turn]) == "An answer."
    # on_error
    model_server.on(f"fail {chat_id}", [Error(500)])
    runs.send_message(started.run_id, payload(chat_id, user_message(f"fail {chat_id}")))
    failed = chunks(read_turn(r, started.run_id, turn=1))
    assert [c["errorText"] for c in failed if c["type"] == "error"] == ["the task's error text"]
