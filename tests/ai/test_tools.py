"""stream_text tool calls: streaming input, execution (sync/async), errors, client tools, steps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from chatworker.ai import (
    Tool,
    ToolCallOptions,
    step_count_is,
    stream_text,
    tool,
)
from chatworker.ai.providers import OpenAIChatModel
from chatworker.testing import ModelServer, Text, ToolCall

from .helpers import ui

USER = [{"role": "user", "content": "weather in Oslo?"}]


class City(BaseModel):
    city: str
    units: str = "metric"


def of_type(chunks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in chunks if c["type"] == kind]


def weather_tool(calls: list[Any]) -> Tool:
    def execute(args: City) -> dict[str, Any]:
        calls.append(args)
        return {"city": args.city, "temperature": 7}

    return tool(description="Current weather for a city.", parameters=City, execute=execute)


def test_tool_input_fragments_and_client_side_tool(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"}, id="call-1", fragment_size=4)])
    client_tool = tool(description="Ask the browser.", parameters=City)
    result = stream_text(
        model=model, messages=USER, tools={"get_weather": client_tool}, max_steps=5
    )
    chunks = ui(result)
    assert of_type(chunks, "tool-input-start") == [
        {"type": "tool-input-start", "toolCallId": "call-1", "toolName": "get_weather"}
    ]
    deltas = of_type(chunks, "tool-input-delta")
    assert len(deltas) > 1
    assert "".join(d["inputTextDelta"] for d in deltas) == json.dumps({"city": "Oslo"})
    # a tool without execute ends the turn at tool-input-available; no second model call
    assert [c["type"] for c in chunks[-3:]] == ["tool-input-available", "finish-step", "finish"]
    assert chunks[-3] == {
        "type": "tool-input-available",
        "toolCallId": "call-1",
        "toolName": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert chunks[-1] == {"type": "finish", "finishReason": "tool-calls"}
    assert len(server.requests) == 1
    assert result.tool_calls == [
        {"toolCallId": "call-1", "toolName": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert result.tool_results == []


def test_tool_definitions_are_sent(server: ModelServer, model: OpenAIChatModel) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    tools = {"get_weather": weather_tool([]), "search": tool(parameters=schema)}
    stream_text(model=model, messages=USER, tools=tools).consume_stream()
    sent = {t["function"]["name"]: t for t in server.requests[0]["tools"]}
    assert sent["search"] == {
        "type": "function",
        "function": {"name": "search", "parameters": schema},
    }
    weather = sent["get_weather"]["function"]
    assert weather["description"] == "Current weather for a city."
    assert weather["parameters"]["properties"]["city"]["type"] == "string"
    assert weather["parameters"]["required"] == ["city"]


def test_sync_execute_and_multi_step_loop(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"}, id="c1")], once=True)
    server.on("weather", [Text("It is 7 degrees in Oslo.")])
    calls: list[Any] = []
    result = stream_text(
        model=model, messages=USER, tools={"get_weather": weather_tool(calls)}, max_steps=3
    )
    chunks = ui(result)
    assert calls == [City(city="Oslo")]
    assert of_type(chunks, "tool-output-available") == [
        {
            "type": "tool-output-available",
            "toolCallId": "c1",
            "output": {"city": "Oslo", "temperature": 7},
        }
    ]
    types = [c["type"] for c in chunks]
    assert types.count("start-step") == 2 and types.count("finish-step") == 2
    first_step_end = types.index("finish-step")
    assert types.index("tool-output-available") < first_step_end
    assert result.text == "It is 7 degrees in Oslo."
    assert result.finish_reason == "stop"
    # the second request carries the tool call and its result
    second = server.requests[1]["messages"]
    assert second[1]["tool_calls"][0]["id"] == "c1"
    assert second[2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": '{"city": "Oslo", "temperature": 7}',
    }
    assert [m["role"] for m in result.response_messages] == ["assistant", "tool", "assistant"]


def test_default_is_one_step_even_with_executable_tools(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"})])
    result = stream_text(model=model, messages=USER, tools={"get_weather": weather_tool([])})
    chunks = ui(result)
    assert len(of_type(chunks, "tool-output-available")) == 1
    assert chunks[-1] == {"type": "finish", "finishReason": "tool-calls"}
    assert len(server.requests) == 1


def test_async_execute_with_options(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("weather", [ToolCall("lookup", {"city": "Rome"}, id="c9")])
    seen: list[ToolCallOptions] = []

    async def execute(args: dict[str, Any], options: ToolCallOptions) -> str:
        seen.append(options)
        await asyncio.sleep(0.01)
        return f"sunny in {args['city']}"

    lookup = tool(parameters={"type": "object"}, execute=execute)
    result = stream_text(model=model, messages=USER, tools={"lookup": lookup})
    chunks = ui(result)
    assert of_type(chunks, "tool-output-available") == [
        {"type": "tool-output-available", "toolCallId": "c9", "output": "sunny in Rome"}
    ]
    assert seen[0].tool_call_id == "c9"
    assert seen[0].messages[0]["content"] == "weather in Oslo?"
    assert result.tool_results[0]["output"] == {"type": "text", "value": "sunny in Rome"}


def test_async_execute_inside_running_loop(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("weather", [ToolCall("lookup", {})])

    async def execute(args: dict[str, Any]) -> int:
        await asyncio.sleep(0)
        return 42

    async def main() -> list[dict[str, Any]]:
        result = stream_text(
            model=model,
            messages=USER,
            tools={"lookup": tool(parameters={"type": "object"}, execute=execute)},
        )
        return ui(result)

    chunks = asyncio.run(main())
    assert of_type(chunks, "tool-output-available")[0]["output"] == 42


def test_execute_raising_gives_tool_output_error(
    server: ModelServer, model: OpenAIChatModel, caplog: pytest.LogCaptureFixture
) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"}, id="c1")], once=True)
    server.on("weather", [Text("Sorry, the weather service is down.")])

    def broken(args: City) -> None:
        raise RuntimeError("db password=hunter2 rejected")

    tools = {"get_weather": tool(parameters=City, execute=broken)}
    result = stream_text(model=model, messages=USER, tools=tools, max_steps=2)
    chunks = ui(result, message_id="m")
    errors = of_type(chunks, "tool-output-error")
    assert errors == [
        {
            "type": "tool-output-error",
            "toolCallId": "c1",
            "errorText": "The tool 'get_weather' failed.",
        }
    ]
    assert "hunter2" not in json.dumps(chunks)
    assert not of_type(chunks, "error")
    assert "hunter2" in caplog.text  # the details are in the server log
    # the model is told about the failure and answers
    tool_message = server.requests[1]["messages"][2]
    assert tool_message["role"] == "tool" and "hunter2" in tool_message["content"]
    assert result.text == "Sorry, the weather service is down."
    # on_error decides what the client sees
    custom = ui(result, on_error=lambda exc: f"custom: {type(exc.__cause__).__name__}")
    assert of_type(custom, "tool-output-error")[0]["errorText"] == "custom: RuntimeError"


@pytest.mark.parametrize(
    ("arguments", "name", "error"),
    [
        (
            '{"city": "Os',
            "get_weather",
            "The model called the tool 'get_weather' with invalid input.",
        ),
        (
            '{"town": "Oslo"}',
            "get_weather",
            "The model called the tool 'get_weather' with invalid input.",
        ),
        ('{"city": "Oslo"}', "no_such_tool", "The model called an unknown tool 'no_such_tool'."),
    ],
)
def test_invalid_tool_input(
    server: ModelServer, model: OpenAIChatModel, arguments: str, name: str, error: str
) -> None:
    server.on("weather", [ToolCall(name, arguments, id="bad")], once=True)
    server.on("weather", [Text("Let me try again later.")])
    calls: list[Any] = []
    result = stream_text(
        model=model, messages=USER, tools={"get_weather": weather_tool(calls)}, max_steps=2
    )
    chunks = ui(result)
    assert of_type(chunks, "tool-input-error") == [
        {
            "type": "tool-input-error",
            "toolCallId": "bad",
            "toolName": name,
            "input": arguments,
            "errorText": error,
        }
    ]
    assert not of_type(chunks, "tool-input-available")
    assert calls == []
    # the model is told its input was invalid, and answers in a second step
    assert (
        "Invalid input" in server.requests[1]["messages"][2]["content"]
        or "unavailable tool" in server.requests[1]["messages"][2]["content"]
    )
    assert result.text == "Let me try again later."


@pytest.mark.parametrize(
    ("options", "expected_steps"),
    [
        ({"max_steps": 3}, 3),
        ({"stop_when": step_count_is(2)}, 2),
        ({"stop_when": [step_count_is(4), lambda steps: len(steps) >= 2]}, 2),
    ],
)
def test_step_limit(
    server: ModelServer, model: OpenAIChatModel, options: dict[str, Any], expected_steps: int
) -> None:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"})])  # always calls the tool
    calls: list[Any] = []
    result = stream_text(
        model=model, messages=USER, tools={"get_weather": weather_tool(calls)}, **options
    )
    chunks = ui(result)
    assert len(server.requests) == expected_steps
    assert len(calls) == expected_steps
    assert [c["type"] for c in chunks].count("start-step") == expected_steps
    assert len(result.steps) == expected_steps
    assert chunks[-1] == {"type": "finish", "finishReason": "tool-calls"}
    # each follow-up request carries every earlier tool result
    last = server.requests[-1]["messages"]
    assert sum(1 for m in last if m["role"] == "tool") == expected_steps - 1


def test_parallel_tool_calls_in_one_step(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on(
        "weather",
        [
            ToolCall("get_weather", {"city": "Oslo"}, id="a"),
            ToolCall("get_weather", {"city": "Rome"}, id="b"),
        ],
        once=True,
    )
    server.on("weather", [Text("Both done.")])
    calls: list[Any] = []
    result = stream_text(
        model=model, messages=USER, tools={"get_weather": weather_tool(calls)}, max_steps=2
    )
    chunks = ui(result)
    assert [c["toolCallId"] for c in of_type(chunks, "tool-output-available")] == ["a", "b"]
    assert [c.city for c in calls] == ["Oslo", "Rome"]
    tool_ids = [m["tool_call_id"] for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_ids == ["a", "b"]
