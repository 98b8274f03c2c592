"""``chatworker.integrations.langgraph.stream``: a LangGraph ReAct agent (``ChatOpenAI`` pointed
at the scripted OpenAI-compatible server) streamed as AI SDK UI message chunks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

pytest.importorskip("langgraph", reason="LangGraph is not installed (extra 'langgraph')")
pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent
from langgraph.types import interrupt

from chatworker.integrations.langgraph import stream
from chatworker.protocol.assemble import MessageAssembler
from chatworker.protocol.messages import UIMessage, parse_ui_message
from chatworker.signals import AbortController, AbortSignal
from chatworker.testing import Error, ModelServer, Silence, Text, ToolCall
from chatworker.testing.checks import assert_valid_ui_stream, collapse_deltas


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def broken(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no station in {city}")


@dataclass
class Turn:
    """The part of a chat run's context the adapter reads."""

    ui_messages: list[UIMessage]
    signal: AbortSignal = field(default_factory=lambda: AbortController().signal)


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def agent(server: ModelServer, tools: Any = None) -> Any:
    # a client of its own: each test reads on a new event loop (see docs, one client per run)
    model = ChatOpenAI(model="scripted-model", base_url=server.base_url, api_key="k",
                       max_retries=0, stream_usage=True,
                       http_async_client=openai.DefaultAsyncHttpxClient())
    return create_react_agent(model, tools if tools is not None else [get_weather, broken])


def user(text: str, id: str = "u1") -> UIMessage:
    return parse_ui_message({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]})


def collect(source: Any, on_chunk: Any = None) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        out = []
        async for chunk in source:
            out.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        return out

    return asyncio.run(read())


def assembled(chunks: list[dict[str, Any]], id: str = "a1") -> UIMessage:
    assembler = MessageAssembler(id)
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.message


def types(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in chunks]


def test_text_reply_is_a_complete_valid_stream_with_usage(server: ModelServer) -> None:
    server.on("hello", [Text("Hi there, friend.")])
    chunks = collect(stream(agent(server), Turn([user("hello")])))
    assert_valid_ui_stream(chunks)
    collapsed = collapse_deltas(chunks)
    assert types(collapsed) == ["start", "start-step", "text-start", "text-delta", "text-end",
                                "finish-step", "finish"]
    assert collapsed[3]["delta"] == "Hi there, friend."
    finish = chunks[-1]
    assert finish["finishReason"] == "stop"
    usage = finish["messageMetadata"]["usage"]
    assert usage["outputTokens"] > 0 and usage["totalTokens"] == (
        usage["inputTokens"] + usage["outputTokens"])


def test_reasoning_and_text_of_a_node_that_does_not_stream() -> None:
    """A node may answer without a streaming model (``ChatOpenAI`` does not read the
    ``reasoning_content`` of chat completions, so reasoning comes from content blocks)."""

    def answer(state: MessagesState) -> dict[str, Any]:
        seen = state["messages"][-1].text
        return {"messages": [AIMessage(id="m1", content=[
            {"type": "reasoning", "reasoning": "Let me think."},
            {"type": "text", "text": f"You said {seen}."},
        ])]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    chunks = collect(stream(builder.compile(), Turn([user("think")])))
    assert_valid_ui_stream(chunks)
    message = assembled(chunks)
    assert [(p.type, p.text) for p in message.parts if p.type in ("reasoning", "text")] == [
        ("reasoning", "Let me think."), ("text", "You said think.")]
    assert chunks[-1] == {"type": "finish", "finishReason": "stop"}  # no usage known

    hidden = collect(stream(builder.compile(), Turn([user("think")]), send_reasoning=False))
    assert "reasoning-delta" not in types(hidden)


def test_tool_call_streamed_end_to_end(server: ModelServer) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"}, id="c1")], once=True)
    server.on("weather", [Text("It is sunny in Oslo.")])
    chunks = collect(stream(agent(server), Turn([user("weather in Oslo?")])))
    assert_valid_ui_stream(chunks)
    collapsed = collapse_deltas(chunks)
    assert types(collapsed) == [
        "start", "start-step", "tool-input-start", "tool-input-delta", "tool-input-available",
        "tool-output-available", "finish-step", "start-step", "text-start", "text-delta",
        "text-end", "finish-step", "finish",
    ]
    # the input arrived in several deltas, as the model sent it
    assert sum(1 for c in chunks if c["type"] == "tool-input-delta") > 1
    assert collapsed[2] == {"type": "tool-input-start", "toolCallId": "c1",
                            "toolName": "get_weather"}
    assert collapsed[3]["inputTextDelta"] == '{"city": "Oslo"}'
    assert collapsed[4]["input"] == {"city": "Oslo"}
    assert collapsed[5] == {"type": "tool-output-available", "toolCallId": "c1",
                            "output": "sunny in Oslo"}
    message = assembled(chunks)
    tool_part = next(p for p in message.parts if p.type == "tool-get_weather")
    assert tool_part.state == "output-available"


def test_tool_error_handled_by_the_tool_node_is_a_tool_output_error(
    server: ModelServer,
) -> None:
    server.on("broken", [ToolCall("broken", {"city": "Oslo"}, id="c9")], once=True)
    server.on("broken", [Text("The station is down.")])
    graph = agent(server, ToolNode([broken], handle_tool_errors=True))
    chunks = collect(stream(graph, Turn([user("broken please")])))
    assert_valid_ui_stream(chunks)
    errors = [c for c in chunks if c["type"] == "tool-output-error"]
    assert len(errors) == 1 and errors[0]["toolCallId"] == "c9"
    assert "no station in Oslo" in errors[0]["errorText"]
    assert chunks[-1]["finishReason"] == "stop"
    assert assembled(chunks).parts[-1].text == "The station is down."


def test_tool_exception_the_graph_raises_ends_the_turn_with_an_error(
    server: ModelServer,
) -> None:
    server.on("broken", [ToolCall("broken", {"city": "Oslo"}, id="c9")])
    chunks = collect(stream(agent(server, [broken]), Turn([user("broken please")])))
    assert_valid_ui_stream(chunks)
    assert collapse_deltas(chunks)[-4:] == [
        {"type": "tool-output-error", "toolCallId": "c9", "errorText": "The model request failed."},
        {"type": "finish-step"},
        {"type": "error", "errorText": "The model request failed."},
        {"type": "finish", "finishReason": "error"},
    ]
    assert len(server.requests) == 1


def test_second_turn_sees_the_first_with_its_tool_call_and_result(server: ModelServer) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"}, id="c1")], once=True)
    server.on("weather", [Text("It is sunny in Oslo.")], once=True)
    server.on("thanks", [Text("You are welcome.")])
    graph = agent(server)

    async def two_turns() -> list[dict[str, Any]]:
        # one run's turns share its event loop (see the docs on a client per run)
        first = [c async for c in stream(graph, Turn([user("weather in Oslo?")]))]
        history = [user("weather in Oslo?"), assembled(first), user("thanks!", id="u2")]
        return [c async for c in stream(graph, Turn(history))]

    second = asyncio.run(two_turns())
    assert_valid_ui_stream(second)
    assert assembled(second).parts[-1].text == "You are welcome."

    seen = server.requests[-1]["messages"]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool", "assistant", "user"]
    assert seen[0]["content"] == "weather in Oslo?"
    call = seen[1]["tool_calls"][0]
    assert call["id"] == "c1" and call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"].replace(" ", "") == '{"city":"Oslo"}'
    assert seen[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny in Oslo"}
    assert seen[3]["content"] == "It is sunny in Oslo."
    assert seen[4]["content"] == "thanks!"


def test_stop_while_the_model_is_silent_closes_its_request(server: ModelServer) -> None:
    server.on("hello", [Text("Partial words"), Silence(30), Text(" never sent")])
    controller = AbortController()
    fired: list[float] = []

    def on_chunk(chunk: dict[str, Any]) -> None:
        if chunk["type"] == "text-delta" and not fired:
            def fire() -> None:
                fired.append(time.monotonic())
                controller.abort("stop")
            threading.Timer(0.2, fire).start()

    chunks = collect(stream(agent(server), Turn([user("hello")], controller.signal)), on_chunk)
    ended = time.monotonic()
    assert fired, "the stop never fired"
    assert_valid_ui_stream(chunks)
    assert chunks[-1] == {"type": "abort", "reason": "stop"}
    assert "finish" not in types(chunks) and "error" not in types(chunks)
    assert assembled(chunks).parts[-1].text == "Partial words"  # the partial reply is kept
    record = server.streams[-1]
    assert record.closed.wait(5), "the model request is still open"
    assert record.outcome == "client-closed"
    assert record.ended_at is not None
    # well inside the model's 30 s of silence: the stop cut the request
    assert ended - fired[0] < 2 and record.ended_at - fired[0] < 2


def test_stop_before_start_makes_no_request(server: ModelServer) -> None:
    controller = AbortController()
    controller.abort("stop")
    chunks = collect(stream(agent(server), Turn([user("hello")], controller.signal)))
    assert chunks == [{"type": "start"}, {"type": "abort", "reason": "stop"}]
    assert server.requests == []


def test_model_failure_is_an_error_chunk(server: ModelServer) -> None:
    server.on("hello", [Error(500, "secret-internal-detail")])
    chunks = collect(stream(agent(server), Turn([user("hello")])))
    assert_valid_ui_stream(chunks)
    assert {"type": "error", "errorText": "The model request failed."} in chunks
    assert chunks[-1] == {"type": "finish", "finishReason": "error"}
    assert "secret-internal-detail" not in str(chunks)


def test_on_error_names_the_error(server: ModelServer) -> None:
    server.on("hello", [Error(503, "overloaded")])
    seen: list[BaseException] = []

    def on_error(error: BaseException) -> str:
        seen.append(error)
        return "The model is busy, try again."

    chunks = collect(stream(agent(server), Turn([user("hello")]), on_error=on_error))
    assert_valid_ui_stream(chunks)
    assert {"type": "error", "errorText": "The model is busy, try again."} in chunks
    assert len(seen) == 1


def test_an_interrupt_ends_the_turn_with_its_value_as_a_data_part() -> None:
    """An interrupt that is no tool approval reaches the client as its value, in a data part."""

    def ask(state: MessagesState) -> dict[str, Any]:
        answer = interrupt({"question": "Book the flight?"})
        return {"messages": [AIMessage(content=f"You said {answer}.")]}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}
    chunks = collect(stream(graph, Turn([user("book it")]), config=config))
    assert_valid_ui_stream(chunks)
    data = [c for c in chunks if c["type"] == "data-langgraph-interrupt"]
    assert len(data) == 1 and data[0]["data"] == {"question": "Book the flight?"}
    assert chunks[-1] == {"type": "finish", "finishReason": "other"}


def test_a_model_shared_across_event_loops_fails_with_advice(
    server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each run has its own event loop; ChatOpenAI's default pooled client does not survive the
    loop it connected on. The turn ends with an error chunk and the log says what to do."""
    server.on("hello", [Text("Hi.")])
    shared = ChatOpenAI(model="scripted-model", base_url=server.base_url, api_key="k",
                        max_retries=0)
    graph = create_react_agent(shared, [])
    first = collect(stream(graph, Turn([user("hello")])))
    assert first[-1]["finishReason"] == "stop"
    caplog.set_level(logging.ERROR, logger="chatworker.integrations")
    second = collect(stream(graph, Turn([user("hello")])))  # a new loop, like the next run
    assert_valid_ui_stream(second)
    assert second[-2:] == [{"type": "error", "errorText": "The model request failed."},
                           {"type": "finish", "finishReason": "error"}]
    assert any("http_async_client" in r.getMessage() for r in caplog.records)
