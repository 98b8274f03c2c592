"""A LangGraph agent returned from a chat task, on a real worker: durable turns, stop, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

pytest.importorskip("langgraph", reason="LangGraph is not installed (extra 'langgraph')")
pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")

from chatworker import runs
from chatworker.testing import Error, ModelServer, Silence, Text, ToolCall, call_then_report
from chatworker.testing.checks import assert_valid_ui_stream

from ..approval_support import answer, assistant_of
from ..conftest import worker_env
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
from . import langgraph_tasks  # noqa: F401 - registers the task in this process too

pytestmark = pytest.mark.integration

TASKS = "tests.integrations.langgraph_tasks"


@pytest.fixture(scope="module")
def lg_url(redis_url: str) -> str:
    """A database of its own: the shared worker (which does not know this task) never sees it."""
    return redis_url.rsplit("/", 1)[0] + "/12"


@pytest.fixture(scope="module")
def lg_worker(lg_url: str, model_server: ModelServer) -> Iterator[Worker]:
    with pointed_at(lg_url):
        worker = Worker(worker_env(lg_url, CHATWORKER_TASKS=TASKS), pool="gevent",
                        concurrency=20, name="langgraph").start()
        try:
            yield worker
        finally:
            worker.stop()


@pytest.fixture
def r(lg_worker: Worker, lg_url: str) -> redis.Redis:
    return redis.Redis.from_url(lg_url, decode_responses=True)


def chunks(entries: list[tuple[str, dict]]) -> list[dict]:
    return [c for _, c in entries if not c["type"].startswith("__")]


def test_two_turns_with_a_tool_call(lg_worker: Worker, model_server: ModelServer,
                                    r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"weather {chat_id}", [ToolCall("get_weather", {"city": "Oslo"},
                                                    id=f"c-{chat_id}")], once=True)
    model_server.on(f"weather {chat_id}", [Text("It is sunny in Oslo.")], once=True)
    model_server.on(f"thanks {chat_id}", [Text("You are welcome.")])
    started = runs.trigger("langgraph-agent", payload(chat_id, user_message(f"weather {chat_id}")))
    first = read_turn(r, started.run_id)
    assert_valid_ui_stream(chunks(first))
    assert "tool-input-delta" in types_of(first)
    assert {"type": "tool-output-available", "toolCallId": f"c-{chat_id}",
            "output": "sunny in Oslo"} in chunks(first)
    assert text_of(first) == "It is sunny in Oslo."

    runs.send_message(started.run_id, payload(chat_id, user_message(f"thanks {chat_id}")))
    second = read_turn(r, started.run_id, after=first[-1][0])
    assert_valid_ui_stream(chunks(second))
    assert text_of(second) == "You are welcome."
    body = next(b for b in model_server.requests if f"thanks {chat_id}" in str(b))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "assistant",
                                                     "user"]
    assert body["messages"][1]["tool_calls"][0]["id"] == f"c-{chat_id}"
    assert body["messages"][2]["content"] == "sunny in Oslo"


def test_stop_while_the_model_is_silent(lg_worker: Worker, model_server: ModelServer,
                                        r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"silent {chat_id}", [Text("partial answer "), Silence(60)])
    started = runs.trigger("langgraph-agent", payload(chat_id, user_message(f"silent {chat_id}")))
    wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
    record = next(s for s in model_server.streams if f"silent {chat_id}" in str(s.body))
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    assert types_of(entries)[-2:] == ["abort", "__turn_complete"]
    assert entries[-1][1]["stopped"] is True
    assert_valid_ui_stream(chunks(entries))
    # the request to the model was closed, not left open for its 60 s of silence
    assert record.closed.wait(5)
    assert record.outcome == "client-closed"
    assert text_of(entries) == "partial answer "


def test_model_failure_is_an_error_chunk_and_the_run_lives(
    lg_worker: Worker, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"fail {chat_id}", [Error(500, "upstream exploded")])
    started = runs.trigger("langgraph-agent", payload(chat_id, user_message(f"fail {chat_id}")))
    entries = read_turn(r, started.run_id)
    assert_valid_ui_stream(chunks(entries))
    errors = [c for c in chunks(entries) if c["type"] == "error"]
    assert len(errors) == 1 and "exploded" not in errors[0]["errorText"]
    assert runs.status(started.run_id).status in {"waiting", "running"}


def test_an_approval_ends_the_turn_and_the_answer_runs_the_tool(
    lg_worker: Worker, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    call_id = f"b-{chat_id}"
    model_server.on(f"book {chat_id}", call_then_report(
        ToolCall("book_table", {"place": "Nora"}, id=call_id)))
    user = user_message(f"book {chat_id}")
    started = runs.trigger("langgraph-agent", payload(chat_id, user))
    first = read_turn(r, started.run_id)
    assert_valid_ui_stream(chunks(first))
    assert types_of(first)[-4:] == ["tool-approval-request", "finish-step", "finish",
                                    "__turn_complete"]
    message = assistant_of(chunks(first), message_id=chunks(first)[0]["messageId"])
    assert message["parts"][-1]["state"] == "approval-requested"

    runs.send_message(started.run_id, payload(chat_id, user, answer(message, approved=True)))
    second = chunks(read_turn(r, started.run_id, after=first[-1][0]))
    assert_valid_ui_stream(second, [call_id])
    assert second[0] == {"type": "start", "messageId": message["id"]}
    assert second[1] == {"type": "tool-output-available", "toolCallId": call_id,
                         "output": "booked at Nora"}
    assert text_of([("", c) for c in second]) == "Got book_table: booked at Nora"
