"""LangGraph tools that need the user's approval (``require_approval``): the graph's
``interrupt()`` becomes an AI SDK ``tool-approval-request``, and the answer in the resubmitted
assistant message runs the tool (or tells the model it was denied) on the next turn. A ReAct
agent with ``ChatOpenAI`` pointed at the scripted OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

pytest.importorskip("langgraph", reason="LangGraph is not installed (extra 'langgraph')")
pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import create_react_agent
from langgraph.types import Command

from chatworker.integrations.langgraph import require_approval, stream
from chatworker.testing import ModelServer, Text, ToolCall, call_then_report
from chatworker.testing.checks import assert_valid_ui_stream, collapse_deltas

from ..approval_support import answer, assistant_of
from .test_langgraph import Turn, collect, get_weather, types, user

BOOKED: list[str] = []


@tool
def book_table(place: str, people: int = 2) -> str:
    """Book a table (the user must agree)."""
    BOOKED.append(place)
    return f"booked {people} at {place}"


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    BOOKED.clear()
    with ModelServer() as srv:
        yield srv


def agent(server: ModelServer, *tools: Any) -> Any:
    model = ChatOpenAI(model="scripted-model", base_url=server.base_url, api_key="k",
                       max_retries=0, stream_usage=True,
                       http_async_client=openai.DefaultAsyncHttpxClient())
    return create_react_agent(model, list(tools) or [get_weather,
                                                     require_approval(book_table)])


def ask(server: ModelServer) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Turn 1: the model calls ``book_table``, which asks. The chunks, and the assistant
    message the client holds. (Each turn builds its graph: a run's model client belongs to its
    event loop, and each ``collect`` is a loop of its own.)"""
    server.on("book", call_then_report(ToolCall("book_table", {"place": "Nora"}, id="c-b")))
    chunks = collect(stream(agent(server), Turn([user("book Nora")])))
    return chunks, assistant_of(chunks)


def tool_messages(server: ModelServer) -> list[dict[str, Any]]:
    return [m for m in server.requests[-1]["messages"] if m["role"] == "tool"]


def test_a_call_needing_approval_asks_and_is_not_run(server: ModelServer) -> None:
    chunks, message = ask(server)
    assert_valid_ui_stream(chunks)
    assert collapse_deltas(chunks)[-4:-2] == [
        {"type": "tool-input-available", "toolCallId": "c-b", "toolName": "book_table",
         "input": {"place": "Nora"}},
        {"type": "tool-approval-request", "approvalId": "c-b", "toolCallId": "c-b"},
    ]
    assert {"type": "tool-approval-request", "approvalId": "c-b", "toolCallId": "c-b"} in chunks
    assert types(chunks)[-3:] == ["tool-approval-request", "finish-step", "finish"]
    assert chunks[-1]["finishReason"] == "tool-calls"
    part = next(p for p in message["parts"] if p["type"] == "tool-book_table")
    assert part["state"] == "approval-requested" and part["approval"] == {"id": "c-b"}
    assert BOOKED == [] and len(server.requests) == 1


def test_an_approved_call_runs_and_the_reply_continues(server: ModelServer) -> None:
    _, message = ask(server)
    approved = answer(message, approved=True)
    chunks = collect(stream(agent(server), Turn([user("book Nora"), approved])))
    assert_valid_ui_stream(chunks, known_tool_calls=["c-b"])
    assert chunks[:2] == [{"type": "start"}, {"type": "tool-output-available",
                                              "toolCallId": "c-b", "output": "booked 2 at Nora"}]
    assert BOOKED == ["Nora"]
    assert tool_messages(server) == [{"role": "tool", "tool_call_id": "c-b",
                                      "content": "booked 2 at Nora"}]
    reply = assistant_of(chunks, previous=approved)
    assert reply["parts"][-1] == {"type": "text", "text": "Got book_table: booked 2 at Nora",
                                  "state": "done"}
    done = next(p for p in reply["parts"] if p["type"] == "tool-book_table")
    assert done["state"] == "output-available"
    assert done["approval"] == {"id": "c-b", "approved": True}


def test_a_denied_call_is_not_run_and_the_model_hears_why(server: ModelServer) -> None:
    _, message = ask(server)
    denied = answer(message, approved=False, reason="Not tonight.")
    chunks = collect(stream(agent(server), Turn([user("book Nora"), denied])))
    assert_valid_ui_stream(chunks, known_tool_calls=["c-b"])
    assert chunks[1] == {"type": "tool-output-denied", "toolCallId": "c-b"}
    assert BOOKED == []
    assert tool_messages(server) == [{"role": "tool", "tool_call_id": "c-b",
                                      "content": "Not tonight."}]
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "Got book_table: Not tonight."
    # without a reason the model is told the call was denied
    _, message = ask(server)
    collect(stream(agent(server), Turn([user("book Nora"), answer(message, approved=False)])))
    assert tool_messages(server)[0]["content"] == "Tool execution denied."


def test_a_request_left_unanswered_is_dropped_once_the_user_moves_on(
    server: ModelServer,
) -> None:
    _, message = ask(server)
    server.on("never mind", [Text("Fine.")])
    chunks = collect(stream(agent(server), Turn([user("book Nora"), message,
                                         user("never mind", id="u2")])))
    assert_valid_ui_stream(chunks)
    assert [m["role"] for m in server.requests[-1]["messages"]] == ["user", "user"]
    assert BOOKED == []


def test_only_the_calls_the_check_accepts_ask(server: ModelServer) -> None:
    big = require_approval(book_table, when=lambda args: args.get("people", 2) > 4)
    server.on("small", call_then_report(ToolCall("book_table", {"place": "Nora"}, id="c-s")))
    server.on("large", call_then_report(ToolCall("book_table", {"place": "Nora", "people": 9},
                                                 id="c-l")))
    small = collect(stream(agent(server, big), Turn([user("small table")])))
    assert "tool-approval-request" not in types(small) and BOOKED == ["Nora"]
    large = collect(stream(agent(server, big), Turn([user("large table")])))
    assert {"type": "tool-approval-request", "approvalId": "c-l", "toolCallId": "c-l"} in large
    assert BOOKED == ["Nora"]


def test_the_wrapped_tool_resumes_natively_from_a_checkpointer(server: ModelServer) -> None:
    """Outside chatworker the wrapped tool is a plain LangGraph interrupt: a checkpointed graph
    resumes it with ``Command(resume={"approved": ...})``."""
    server.on("book", call_then_report(ToolCall("book_table", {"place": "Nora"}, id="c-n")))
    model = ChatOpenAI(model="scripted-model", base_url=server.base_url, api_key="k",
                       max_retries=0)
    graph = create_react_agent(model, [require_approval(book_table)],
                               checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t"}}
    paused = graph.invoke({"messages": [HumanMessage("book Nora")]}, config)
    (pending,) = paused["__interrupt__"]
    assert pending.value == {"type": "tool-approval", "toolCallId": "c-n",
                             "toolName": "book_table", "input": {"place": "Nora"}}
    done = graph.invoke(Command(resume={"approved": True}), config)
    assert BOOKED == ["Nora"]
    assert done["messages"][-1].content == "Got book_table: booked 2 at Nora"
