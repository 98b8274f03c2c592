"""UIMessage / ModelMessage models: parsing, part dispatch, and null-free serialisation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from chatworker.protocol.messages import (
    AssistantModelMessage,
    DataUIPart,
    DynamicToolUIPart,
    FileUIPart,
    GenericContentPart,
    GenericUIPart,
    ReasoningUIPart,
    SourceDocumentUIPart,
    SourceUrlUIPart,
    StepStartUIPart,
    SystemModelMessage,
    TextPart,
    TextUIPart,
    ToolCallPart,
    ToolModelMessage,
    ToolResultOutput,
    ToolResultPart,
    ToolUIPart,
    UIMessage,
    UserModelMessage,
    dump,
    dump_all,
    is_tool_part,
    parse_model_message,
    parse_model_messages,
    parse_ui_part,
)

RICH_MESSAGE: dict[str, Any] = {
    "id": "msg-1",
    "role": "assistant",
    "metadata": {"model": "gpt-4o", "usage": {"tokens": 12}},
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "text": "thinking", "state": "done"},
        {
            "type": "tool-weather",
            "toolCallId": "call-1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"temp": 20},
            "callProviderMetadata": {"openai": {"itemId": "fc_1"}},
        },
        {
            "type": "dynamic-tool",
            "toolName": "search",
            "toolCallId": "call-2",
            "state": "output-error",
            "input": {"q": "x"},
            "errorText": "boom",
        },
        {"type": "source-url", "sourceId": "s1", "url": "https://example.com", "title": "Ex"},
        {
            "type": "source-document",
            "sourceId": "s2",
            "mediaType": "application/pdf",
            "title": "Doc",
        },
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAAA"},
        {"type": "data-progress", "id": "p1", "data": {"pct": 50}},
        {"type": "text", "text": "Hello", "state": "done", "providerMetadata": {"openai": {}}},
        {"type": "future-part", "something": [1, 2], "nested": {"k": None}},
    ],
}


def test_parts_dispatch_to_their_models() -> None:
    message = UIMessage.model_validate(RICH_MESSAGE)
    kinds = [type(p) for p in message.parts]
    assert kinds == [
        StepStartUIPart,
        ReasoningUIPart,
        ToolUIPart,
        DynamicToolUIPart,
        SourceUrlUIPart,
        SourceDocumentUIPart,
        FileUIPart,
        DataUIPart,
        TextUIPart,
        GenericUIPart,
    ]
    tool = message.parts[2]
    assert isinstance(tool, ToolUIPart)
    assert tool.tool_name == "weather"
    assert tool.tool_call_id == "call-1"
    assert tool.call_provider_metadata == {"openai": {"itemId": "fc_1"}}
    dynamic = message.parts[3]
    assert isinstance(dynamic, DynamicToolUIPart)
    assert dynamic.tool_name == "search"
    assert dynamic.error_text == "boom"


def test_rich_message_round_trips_exactly() -> None:
    message = UIMessage.model_validate(RICH_MESSAGE)
    assert dump(message) == RICH_MESSAGE
    # and through JSON text too
    assert json.loads(message.model_dump_json()) == RICH_MESSAGE


def test_unknown_part_types_are_kept_not_rejected() -> None:
    part = parse_ui_part({"type": "custom", "kind": "acme.widget", "providerMetadata": None})
    assert isinstance(part, GenericUIPart)
    assert dump(part) == {"type": "custom", "kind": "acme.widget", "providerMetadata": None}


def test_legacy_tool_invocation_is_not_mistaken_for_a_tool_part() -> None:
    part = parse_ui_part({"type": "tool-invocation", "toolInvocation": {"state": "call"}})
    assert isinstance(part, GenericUIPart)
    assert not is_tool_part(part)
    assert is_tool_part({"type": "tool-x"})
    assert is_tool_part({"type": "dynamic-tool"})
    assert not is_tool_part({"type": "text"})


def test_unknown_keys_round_trip_on_known_parts() -> None:
    data = {"type": "text", "text": "hi", "futureKey": {"a": 1}}
    part = parse_ui_part(data)
    assert isinstance(part, TextUIPart)
    assert dump(part) == data


def test_dump_never_emits_null_for_absent_optionals() -> None:
    part = ToolUIPart(type="tool-weather", tool_call_id="c1", state="input-streaming")
    assert dump(part) == {"type": "tool-weather", "toolCallId": "c1", "state": "input-streaming"}
    text = TextUIPart(text="x", state=None, provider_metadata=None)
    assert dump(text) == {"type": "text", "text": "x"}
    message = UIMessage(id="m", role="user", parts=[text], metadata=None)
    assert dump(message) == {"id": "m", "role": "user", "parts": [{"type": "text", "text": "x"}]}
    assert "null" not in message.model_dump_json()


def test_dump_keeps_explicit_none_for_input_output_and_data() -> None:
    tool = ToolUIPart(
        type="tool-ping", tool_call_id="c1", state="output-available", input=None, output=None
    )
    assert dump(tool) == {
        "type": "tool-ping",
        "toolCallId": "c1",
        "state": "output-available",
        "input": None,
        "output": None,
    }
    assert dump(DataUIPart(type="data-x", data=None)) == {"type": "data-x", "data": None}
    # parsed from JSON with explicit nulls: kept as well
    parsed = parse_ui_part({"type": "data-x", "id": "d", "data": None})
    assert dump(parsed) == {"type": "data-x", "id": "d", "data": None}
    call = ToolCallPart(tool_call_id="c", tool_name="t", input=None)
    assert dump(call)["input"] is None
    assert "input" not in dump(ToolCallPart(tool_call_id="c", tool_name="t"))
    output = ToolResultOutput(type="json", value=None)
    assert dump(output) == {"type": "json", "value": None}


def test_snake_case_and_camel_case_both_populate() -> None:
    a = ToolUIPart.model_validate({"type": "tool-a", "toolCallId": "1", "state": "x"})
    b = ToolUIPart.model_validate({"type": "tool-a", "tool_call_id": "1", "state": "x"})
    assert a.tool_call_id == b.tool_call_id == "1"
    assert dump(b) == {"type": "tool-a", "toolCallId": "1", "state": "x"}


def test_required_keys_are_enforced() -> None:
    with pytest.raises(ValidationError):
        parse_ui_part({"type": "tool-weather", "state": "input-available"})
    with pytest.raises(ValidationError):
        parse_ui_part({"type": "dynamic-tool", "toolCallId": "1", "state": "input-available"})
    with pytest.raises(ValidationError):
        UIMessage.model_validate({"id": "x", "role": "tool", "parts": []})


def test_text_property_concatenates_text_parts_only() -> None:
    message = UIMessage.model_validate(
        {
            "id": "m",
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "Hello, "},
                {"type": "reasoning", "text": "ignored"},
                {"type": "step-start"},
                {"type": "text", "text": "world"},
            ],
        }
    )
    assert message.text == "Hello, world"
    assert UIMessage(id="e", role="user").text == ""


def test_model_messages_parse_by_role_and_dump_camel_case() -> None:
    raw: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "image", "image": "u"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "r"},
                {"type": "tool-call", "toolCallId": "c1", "toolName": "t", "input": {"a": 1}},
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "t",
                    "output": {"type": "error-text", "value": "bad"},
                }
            ],
        },
    ]
    parsed = parse_model_messages(raw)
    assert [type(m) for m in parsed] == [
        SystemModelMessage,
        UserModelMessage,
        AssistantModelMessage,
        ToolModelMessage,
    ]
    assert dump_all(parsed) == raw
    tool_message = parsed[3]
    assert isinstance(tool_message, ToolModelMessage)
    result = tool_message.content[0]
    assert isinstance(result, ToolResultPart)
    assert result.output.type == "error-text"


def test_model_message_string_content_and_unknown_content_parts() -> None:
    message = parse_model_message({"role": "assistant", "content": "plain"})
    assert isinstance(message, AssistantModelMessage)
    assert message.content == "plain"
    odd = parse_model_message({"role": "assistant", "content": [{"type": "custom", "kind": "a.b"}]})
    assert isinstance(odd, AssistantModelMessage)
    assert isinstance(odd.content, list)
    assert isinstance(odd.content[0], GenericContentPart)
    assert dump(odd) == {"role": "assistant", "content": [{"type": "custom", "kind": "a.b"}]}


def test_constructing_model_messages_in_python() -> None:
    message = UserModelMessage(content=[TextPart(text="hello")])
    assert dump(message) == {"role": "user", "content": [{"type": "text", "text": "hello"}]}
    with pytest.raises(ValidationError):
        parse_model_message({"role": "robot", "content": "x"})
