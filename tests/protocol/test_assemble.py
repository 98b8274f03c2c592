"""MessageAssembler: folding a UI message chunk stream into the assistant message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chatworker.protocol.assemble import MessageAssembler, merge_objects
from chatworker.protocol.chunks import TextDeltaChunk, validate_chunk
from chatworker.protocol.convert import cleanup_aborted_parts
from chatworker.protocol.messages import TextUIPart, ToolUIPart, UIMessage, dump


def assemble(chunks: list[dict[str, Any]], **kwargs: Any) -> MessageAssembler:
    assembler = MessageAssembler(**kwargs)
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler


REALISTIC_STREAM: list[dict[str, Any]] = [
    {"type": "start", "messageId": "msg-42", "messageMetadata": {"model": "gpt-4o"}},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r1"},
    {"type": "reasoning-delta", "id": "r1", "delta": "The user wants "},
    {"type": "reasoning-delta", "id": "r1", "delta": "the weather."},
    {"type": "reasoning-end", "id": "r1"},
    {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "weather"},
    {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"city"'},
    {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": ': "Paris"}'},
    {
        "type": "tool-input-available",
        "toolCallId": "call_1",
        "toolName": "weather",
        "input": {"city": "Paris"},
    },
    {"type": "tool-output-available", "toolCallId": "call_1", "output": {"temp": 21}},
    {"type": "finish-step"},
    {"type": "start-step"},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "It is "},
    {"type": "text-delta", "id": "t1", "delta": "21°C in Paris."},
    {"type": "text-end", "id": "t1"},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "stop", "messageMetadata": {"usage": {"total": 99}}},
]

EXPECTED_MESSAGE: dict[str, Any] = {
    "id": "msg-42",
    "role": "assistant",
    "metadata": {"model": "gpt-4o", "usage": {"total": 99}},
    "parts": [
        {"type": "step-start"},
        {"type": "reasoning", "id": "r1", "text": "The user wants the weather.", "state": "done"},
        {
            "type": "tool-weather",
            "toolCallId": "call_1",
            "state": "output-available",
            "input": {"city": "Paris"},
            "output": {"temp": 21},
        },
        {"type": "step-start"},
        {"type": "text", "text": "It is 21°C in Paris.", "state": "done"},
    ],
}


def test_realistic_stream_assembles_to_expected_message() -> None:
    for chunk in REALISTIC_STREAM:
        validate_chunk(chunk)  # the fixture itself is protocol-valid
    assembler = assemble(REALISTIC_STREAM)
    assert dump(assembler.message) == EXPECTED_MESSAGE
    assert assembler.to_dict() == EXPECTED_MESSAGE
    assert assembler.finish_reason == "stop"
    assert assembler.error_text is None
    assert assembler.aborted is False
    assert assembler.message.text == "It is 21°C in Paris."


def test_intermediate_tool_input_is_partial_json_parse() -> None:
    assembler = assemble(REALISTIC_STREAM[:8])
    tool = assembler.to_dict()["parts"][-1]
    assert tool["state"] == "input-streaming"
    assert tool["rawInput"] == '{"city"'
    assert tool["input"] == {}  # the key has no value yet
    assembler.feed({"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": ': "Pa'})
    tool = assembler.to_dict()["parts"][-1]
    assert tool["input"] == {"city": "Pa"}
    assert tool["rawInput"] == '{"city": "Pa'
    part = assembler.message.parts[-1]
    assert isinstance(part, ToolUIPart)
    assert part.input == {"city": "Pa"}
    # once the input is available the raw text is gone, as in the AI SDK
    assembler.feed(REALISTIC_STREAM[9])
    tool = assembler.to_dict()["parts"][-1]
    assert tool == {
        "type": "tool-weather",
        "toolCallId": "call_1",
        "state": "input-available",
        "input": {"city": "Paris"},
    }


def test_message_is_a_snapshot() -> None:
    assembler = assemble(REALISTIC_STREAM[:15])
    snapshot = assembler.message
    text_before = snapshot.parts[-1]
    assert isinstance(text_before, TextUIPart)
    assert (text_before.text, text_before.state) == ("It is ", "streaming")
    for chunk in REALISTIC_STREAM[15:]:
        assembler.feed(chunk)
    assert (text_before.text, text_before.state) == ("It is ", "streaming")
    assert dump(assembler.message) == EXPECTED_MESSAGE


def test_message_id_from_constructor_unless_start_has_one() -> None:
    assert assemble([{"type": "start"}], message_id="given").message.id == "given"
    assert assemble([{"type": "start", "messageId": "s"}], message_id="given").message.id == "s"
    assert assemble([]).message.id == ""


def test_tool_input_error_becomes_output_error_with_input() -> None:
    assembler = assemble(
        [
            {"type": "start-step"},
            {"type": "tool-input-start", "toolCallId": "c1", "toolName": "calc"},
            {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": "{oops"},
            {
                "type": "tool-input-error",
                "toolCallId": "c1",
                "toolName": "calc",
                "input": "{oops",
                "errorText": "Invalid JSON",
            },
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "step-start"},
        {
            "type": "tool-calc",
            "toolCallId": "c1",
            "state": "output-error",
            "input": "{oops",
            "errorText": "Invalid JSON",
        },
    ]


def test_tool_output_error_keeps_input() -> None:
    assembler = assemble(
        [
            {"type": "tool-input-available", "toolCallId": "c", "toolName": "f", "input": {"a": 1}},
            {"type": "tool-output-error", "toolCallId": "c", "errorText": "failed"},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "tool-f",
            "toolCallId": "c",
            "state": "output-error",
            "input": {"a": 1},
            "errorText": "failed",
        }
    ]


def test_dynamic_tool_parts() -> None:
    assembler = assemble(
        [
            {"type": "tool-input-start", "toolCallId": "c", "toolName": "mcp", "dynamic": True},
            {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"q": 1}'},
            {
                "type": "tool-input-available",
                "toolCallId": "c",
                "toolName": "mcp",
                "input": {"q": 1},
                "dynamic": True,
            },
            {"type": "tool-output-available", "toolCallId": "c", "output": None, "dynamic": True},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "dynamic-tool",
            "toolName": "mcp",
            "toolCallId": "c",
            "state": "output-available",
            "input": {"q": 1},
            "output": None,
        }
    ]
    assert dump(assembler.message)["parts"][0]["output"] is None


def test_server_executed_tool_metadata_and_preliminary_output() -> None:
    assembler = assemble(
        [
            {
                "type": "tool-input-available",
                "toolCallId": "c",
                "toolName": "search",
                "input": {},
                "providerExecuted": True,
                "providerMetadata": {"openai": {"itemId": "ws_1"}},
            },
            {"type": "tool-output-available", "toolCallId": "c", "output": 1, "preliminary": True},
            {
                "type": "tool-output-available",
                "toolCallId": "c",
                "output": 2,
                "providerMetadata": {"openai": {"itemId": "ws_2"}},
            },
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {
            "type": "tool-search",
            "toolCallId": "c",
            "state": "output-available",
            "input": {},
            "output": 2,
            "providerExecuted": True,
            "callProviderMetadata": {"openai": {"itemId": "ws_1"}},
            "resultProviderMetadata": {"openai": {"itemId": "ws_2"}},
        }
    ]


def test_approval_request_and_denial() -> None:
    assembler = assemble(
        [
            {"type": "tool-input-available", "toolCallId": "c", "toolName": "rm", "input": {}},
            {"type": "tool-approval-request", "approvalId": "ap", "toolCallId": "c"},
        ]
    )
    part = assembler.to_dict()["parts"][0]
    assert part["state"] == "approval-requested"
    assert part["approval"] == {"id": "ap"}
    assembler.feed({"type": "tool-output-denied", "toolCallId": "c"})
    assert assembler.to_dict()["parts"][0]["state"] == "output-denied"


def test_data_parts_upsert_by_type_and_id_and_skip_transient() -> None:
    assembler = assemble(
        [
            {"type": "data-progress", "id": "p", "data": {"pct": 10}},
            {"type": "data-status", "id": "p", "data": "other type, same id"},
            {"type": "data-progress", "id": "p", "data": {"pct": 90}, "transient": False},
            {"type": "data-progress", "data": "no id 1"},
            {"type": "data-progress", "data": "no id 2"},
            {"type": "data-toast", "id": "t", "data": "hi", "transient": True},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "data-progress", "id": "p", "data": {"pct": 90}},
        {"type": "data-status", "id": "p", "data": "other type, same id"},
        {"type": "data-progress", "data": "no id 1"},
        {"type": "data-progress", "data": "no id 2"},
    ]


def test_sources_and_files_are_pushed() -> None:
    assembler = assemble(
        [
            {"type": "source-url", "sourceId": "s1", "url": "https://a", "title": "A"},
            {
                "type": "source-document",
                "sourceId": "s2",
                "mediaType": "application/pdf",
                "title": "Doc",
                "filename": "d.pdf",
            },
            {"type": "file", "url": "data:image/png;base64,AA", "mediaType": "image/png"},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "source-url", "sourceId": "s1", "url": "https://a", "title": "A"},
        {
            "type": "source-document",
            "sourceId": "s2",
            "mediaType": "application/pdf",
            "title": "Doc",
            "filename": "d.pdf",
        },
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA"},
    ]


def test_metadata_deep_merges() -> None:
    assembler = assemble(
        [
            {"type": "start", "messageMetadata": {"a": {"x": 1, "list": [1, 2]}, "b": 1}},
            {"type": "message-metadata", "messageMetadata": {"a": {"y": 2, "list": [3]}}},
            {"type": "message-metadata", "messageMetadata": None},
            {"type": "finish", "messageMetadata": {"b": 2}},
        ]
    )
    assert assembler.message.metadata == {"a": {"x": 1, "y": 2, "list": [3]}, "b": 2}
    assert assembler.finish_reason is None


def test_error_abort_and_control_chunks_do_not_change_parts() -> None:
    assembler = assemble(
        [
            {"type": "start", "messageId": "m"},
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "par"},
            {"type": "error", "errorText": "model exploded"},
            {"type": "abort", "reason": "stopped"},
            {"type": "__turn_complete", "turn": 1},
            {"type": "__run_end", "status": "completed"},
        ]
    )
    assert assembler.error_text == "model exploded"
    assert assembler.aborted is True
    assert assembler.abort_reason == "stopped"
    assert assembler.to_dict()["parts"] == [{"type": "text", "text": "par", "state": "streaming"}]


def test_stopped_stream_is_cleaned_for_history() -> None:
    assembler = assemble(
        [
            {"type": "start", "messageId": "m"},
            {"type": "start-step"},
            {"type": "reasoning-start", "id": "r"},
            {"type": "reasoning-delta", "id": "r", "delta": "hmm"},
            {"type": "tool-input-start", "toolCallId": "c", "toolName": "w"},
            {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"a": 1'},
            {"type": "abort"},
        ]
    )
    raw = dump(assembler.message)
    assert raw["parts"][-1]["state"] == "input-streaming"
    assert raw["parts"][-1]["input"] == {"a": 1}
    cleaned = dump(cleanup_aborted_parts(assembler.message))
    assert cleaned["parts"] == [
        {"type": "step-start"},
        {"type": "reasoning", "id": "r", "text": "hmm", "state": "done"},
    ]


def test_sequence_errors_are_lenient(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chatworker.protocol.assemble")
    assembler = assemble(
        [
            {"type": "text-delta", "id": "t", "delta": "orphan"},
            {"type": "text-end", "id": "t"},
            {"type": "reasoning-end", "id": "never-started"},
            {"type": "tool-input-delta", "toolCallId": "x", "inputTextDelta": "{"},
            {"type": "tool-output-available", "toolCallId": "unknown", "output": 1},
            {"type": "tool-output-available", "toolCallId": "k", "toolName": "known", "output": 2},
            {"type": "something-new"},
            {"no": "type"},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "text", "text": "orphan", "state": "done"},
        {"type": "tool-known", "toolCallId": "k", "state": "output-available", "output": 2},
    ]
    assert "unknown tool call" in caplog.text
    assert "text-delta for unknown part id" in caplog.text


def test_finish_step_forgets_open_text_parts_like_v6() -> None:
    assembler = assemble(
        [
            {"type": "text-start", "id": "0"},
            {"type": "text-delta", "id": "0", "delta": "a"},
            {"type": "finish-step"},
            {"type": "start-step"},
            {"type": "text-delta", "id": "0", "delta": "b"},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "text", "text": "a", "state": "streaming"},
        {"type": "step-start"},
        {"type": "text", "text": "b", "state": "streaming"},
    ]


def test_same_tool_call_id_in_a_new_step_is_a_new_part() -> None:
    assembler = assemble(
        [
            {"type": "start-step"},
            {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 1},
            {"type": "start-step"},
            {"type": "tool-input-available", "toolCallId": "c", "toolName": "t", "input": 2},
            {"type": "tool-output-available", "toolCallId": "c", "output": "r"},
        ]
    )
    parts = assembler.to_dict()["parts"]
    assert [p.get("state") for p in parts] == [None, "input-available", None, "output-available"]
    assert parts[3]["input"] == 2


def test_text_provider_metadata_is_kept() -> None:
    meta = {"openai": {"itemId": "msg_1"}}
    assembler = assemble(
        [
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "x"},
            {"type": "text-end", "id": "t", "providerMetadata": meta},
        ]
    )
    assert assembler.to_dict()["parts"] == [
        {"type": "text", "text": "x", "state": "done", "providerMetadata": meta}
    ]


def test_feeding_chunk_models() -> None:
    assembler = MessageAssembler("m")
    assembler.feed({"type": "text-start", "id": "t"})
    assembler.feed(TextDeltaChunk(id="t", delta="from a model"))  # type: ignore[arg-type]
    assert assembler.message.text == "from a model"


def test_continues_a_previous_assistant_message() -> None:
    previous = UIMessage.model_validate(
        {
            "id": "prev",
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {"type": "tool-ask", "toolCallId": "c", "state": "input-available", "input": {}},
            ],
        }
    )
    assembler = MessageAssembler(previous=previous)
    assembler.feed({"type": "tool-output-available", "toolCallId": "c", "output": "yes"})
    assembler.feed({"type": "start-step"})
    assembler.feed({"type": "text-start", "id": "t"})
    assembler.feed({"type": "text-delta", "id": "t", "delta": "Thanks"})
    assembler.feed({"type": "text-end", "id": "t"})
    message = dump(assembler.message)
    assert message["id"] == "prev"
    assert message["parts"][1]["state"] == "output-available"
    assert message["parts"][1]["output"] == "yes"
    assert message["parts"][-1] == {"type": "text", "text": "Thanks", "state": "done"}
    # the previous message itself is untouched
    assert dump(previous)["parts"][1]["state"] == "input-available"


def test_long_text_stream_assembles_correctly() -> None:
    assembler = MessageAssembler("m")
    assembler.feed({"type": "text-start", "id": "t"})
    for i in range(20_000):
        assembler.feed({"type": "text-delta", "id": "t", "delta": f"{i % 10}"})
    assembler.feed({"type": "text-end", "id": "t"})
    text = assembler.message.text
    assert len(text) == 20_000
    assert text.startswith("0123456789")
    assert assembler.chunk_count == 20_002


def test_merge_objects() -> None:
    assert merge_objects(None, {"a": 1}) == {"a": 1}
    assert merge_objects({"a": 1}, None) == {"a": 1}
    base = {"a": {"b": 1}, "c": [1]}
    merged = merge_objects(base, {"a": {"d": 2}, "c": [2], "e": None})
    assert merged == {"a": {"b": 1, "d": 2}, "c": [2], "e": None}
    assert base == {"a": {"b": 1}, "c": [1]}
    assert merge_objects({"a": 1}, "scalar") == "scalar"


def test_steering_message_chunk_is_a_part_where_it_arrived() -> None:
    steered = {"type": "steering-message", "id": "u2",
               "parts": [{"type": "text", "text": "And Rome?"}]}
    message = assemble([
        {"type": "start", "messageId": "m1"},
        {"type": "start-step"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "w", "input": {}},
        {"type": "tool-output-available", "toolCallId": "c1", "output": "sunny"},
        {"type": "finish-step"},
        steered,
        {"type": "start-step"},
        {"type": "finish-step"},
    ]).to_dict()
    assert [p["type"] for p in message["parts"]] == [
        "step-start", "tool-w", "steering-message", "step-start"]
    assert message["parts"][2] == steered
    assert dump(UIMessage.model_validate(message))["parts"][2] == steered
