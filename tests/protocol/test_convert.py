"""convert_to_model_messages (AI SDK rules), cleanup_aborted_parts, strip_provider_metadata."""

from __future__ import annotations

from typing import Any

from chatworker.protocol.convert import (
    cleanup_aborted_parts,
    convert_to_model_messages,
    strip_provider_metadata,
)
from chatworker.protocol.messages import TextUIPart, UIMessage, dump, dump_all


def convert(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    return dump_all(convert_to_model_messages(list(messages)))


def assistant(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"id": "a1", "role": "assistant", "parts": list(parts)}


def test_system_message_joins_text_parts() -> None:
    result = convert(
        {
            "id": "s",
            "role": "system",
            "parts": [
                {"type": "text", "text": "You are "},
                {"type": "text", "text": "helpful.", "providerMetadata": {"x": {"cache": True}}},
            ],
        }
    )
    assert result == [
        {
            "role": "system",
            "content": "You are helpful.",
            "providerOptions": {"x": {"cache": True}},
        }
    ]


def test_user_text_and_files_kept_data_dropped() -> None:
    result = convert(
        {
            "id": "u",
            "role": "user",
            "parts": [
                {"type": "text", "text": "What is this?"},
                {"type": "data-context", "data": {"page": 3}},
                {
                    "type": "file",
                    "mediaType": "image/png",
                    "filename": "a.png",
                    "url": "https://x/a.png",
                },
            ],
        }
    )
    assert result == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "file",
                    "data": "https://x/a.png",
                    "filename": "a.png",
                    "mediaType": "image/png",
                },
            ],
        }
    ]


def test_assistant_split_at_step_start_with_tool_results() -> None:
    result = convert(
        assistant(
            {"type": "step-start"},
            {"type": "reasoning", "text": "Need weather.", "state": "done"},
            {
                "type": "tool-weather",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"temp": 20},
            },
            {
                "type": "tool-weather",
                "toolCallId": "c2",
                "state": "output-error",
                "input": {"city": "Nowhere"},
                "errorText": "unknown city",
            },
            {"type": "tool-weather", "toolCallId": "c3", "state": "input-streaming"},
            {"type": "step-start"},
            {"type": "text", "text": "Paris: 20C", "state": "done"},
            {"type": "source-url", "sourceId": "s", "url": "https://w"},
        )
    )
    assert result == [
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "Need weather."},
                {
                    "type": "tool-call",
                    "toolCallId": "c1",
                    "toolName": "weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool-call",
                    "toolCallId": "c2",
                    "toolName": "weather",
                    "input": {"city": "Nowhere"},
                },
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "weather",
                    "output": {"type": "json", "value": {"temp": 20}},
                },
                {
                    "type": "tool-result",
                    "toolCallId": "c2",
                    "toolName": "weather",
                    "output": {"type": "error-text", "value": "unknown city"},
                },
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Paris: 20C"}]},
    ]


def test_steering_message_becomes_a_user_message_after_the_step_tool_results() -> None:
    result = convert(
        assistant(
            {"type": "step-start"},
            {"type": "tool-weather", "toolCallId": "c1", "state": "output-available",
             "input": {"city": "Paris"}, "output": "sunny"},
            {"type": "steering-message", "id": "u2", "parts": [
                {"type": "text", "text": "And Rome?"},
                {"type": "file", "mediaType": "text/plain", "url": "data:text/plain;base64,eA=="},
            ]},
            {"type": "step-start"},
            {"type": "text", "text": "Rome too.", "state": "done"},
        )
    )
    assert [m["role"] for m in result] == ["assistant", "tool", "user", "assistant"]
    assert result[2]["content"] == [
        {"type": "text", "text": "And Rome?"},
        {"type": "file", "mediaType": "text/plain", "data": "data:text/plain;base64,eA=="},
    ]
    assert result[3] == {"role": "assistant", "content": [{"type": "text", "text": "Rome too."}]}


def test_client_tool_awaiting_result_has_call_but_no_tool_message() -> None:
    result = convert(
        assistant(
            {"type": "step-start"},
            {
                "type": "tool-askUser",
                "toolCallId": "c1",
                "state": "input-available",
                "input": {"question": "ok?"},
            },
        )
    )
    assert result == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool-call",
                    "toolCallId": "c1",
                    "toolName": "askUser",
                    "input": {"question": "ok?"},
                }
            ],
        }
    ]


def test_string_output_becomes_text_and_dynamic_tool_uses_tool_name() -> None:
    result = convert(
        assistant(
            {
                "type": "dynamic-tool",
                "toolName": "mcp_search",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"q": "x"},
                "output": "three results",
            }
        )
    )
    assert result[1] == {
        "role": "tool",
        "content": [
            {
                "type": "tool-result",
                "toolCallId": "c1",
                "toolName": "mcp_search",
                "output": {"type": "text", "value": "three results"},
            }
        ],
    }
    assert result[0]["content"][0]["toolName"] == "mcp_search"


def test_null_output_is_json_null() -> None:
    result = convert(
        assistant(
            {
                "type": "tool-noop",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {},
                "output": None,
            }
        )
    )
    assert result[1]["content"][0]["output"] == {"type": "json", "value": None}


def test_provider_executed_tool_result_stays_in_assistant_message() -> None:
    result = convert(
        assistant(
            {
                "type": "tool-web_search",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"q": "news"},
                "output": [{"url": "https://n"}],
                "providerExecuted": True,
            },
            {
                "type": "tool-code",
                "toolCallId": "c2",
                "state": "output-error",
                "input": {},
                "errorText": "crashed",
                "providerExecuted": True,
            },
        )
    )
    assert result == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool-call",
                    "toolCallId": "c1",
                    "toolName": "web_search",
                    "input": {"q": "news"},
                    "providerExecuted": True,
                },
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "web_search",
                    "output": {"type": "json", "value": [{"url": "https://n"}]},
                },
                {
                    "type": "tool-call",
                    "toolCallId": "c2",
                    "toolName": "code",
                    "input": {},
                    "providerExecuted": True,
                },
                {
                    "type": "tool-result",
                    "toolCallId": "c2",
                    "toolName": "code",
                    "output": {"type": "error-json", "value": "crashed"},
                },
            ],
        }
    ]


def test_output_error_falls_back_to_raw_input() -> None:
    result = convert(
        assistant(
            {
                "type": "tool-w",
                "toolCallId": "c1",
                "state": "output-error",
                "rawInput": "{broken",
                "errorText": "Invalid input",
            }
        )
    )
    assert result[0]["content"][0]["input"] == "{broken"


def test_denied_tool_and_approvals() -> None:
    result = convert(
        assistant(
            {
                "type": "tool-delete",
                "toolCallId": "c1",
                "state": "output-denied",
                "input": {"path": "/"},
                "approval": {"id": "ap1", "approved": False, "reason": "Too dangerous"},
            }
        )
    )
    assert result == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool-call",
                    "toolCallId": "c1",
                    "toolName": "delete",
                    "input": {"path": "/"},
                },
                {"type": "tool-approval-request", "approvalId": "ap1", "toolCallId": "c1"},
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-approval-response",
                    "approvalId": "ap1",
                    "approved": False,
                    "reason": "Too dangerous",
                },
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "delete",
                    "output": {"type": "error-text", "value": "Too dangerous"},
                },
            ],
        },
    ]


def test_data_only_block_yields_no_empty_assistant_message() -> None:
    result = convert(
        assistant(
            {"type": "data-status", "data": "working"},
            {"type": "step-start"},
            {"type": "text", "text": "done"},
        )
    )
    assert result == [{"role": "assistant", "content": [{"type": "text", "text": "done"}]}]


def test_order_of_messages_is_preserved_across_roles() -> None:
    result = convert(
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
        assistant({"type": "step-start"}, {"type": "text", "text": "hello"}),
        {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "bye"}]},
    )
    assert [m["role"] for m in result] == ["user", "assistant", "user"]
    assert result[2]["content"] == [{"type": "text", "text": "bye"}]


def test_accepts_models_as_well_as_dicts() -> None:
    message = UIMessage(id="u", role="user", parts=[TextUIPart(text="x")])
    assert convert_to_model_messages([message]) == convert_to_model_messages([dump(message)])


# ------------------------------------------------------------------------------- cleanup

STOPPED: dict[str, Any] = assistant(
    {"type": "step-start"},
    {"type": "reasoning", "text": "partial thought", "state": "streaming"},
    {"type": "tool-a", "toolCallId": "1", "state": "input-streaming", "input": {"x": 1}},
    {"type": "tool-a", "toolCallId": "2", "state": "input-available", "input": {"x": 1}},
    {"type": "tool-a", "toolCallId": "3", "state": "output-available", "input": {}, "output": 1},
    {"type": "tool-a", "toolCallId": "4", "state": "output-error", "input": {}, "errorText": "e"},
    {
        "type": "tool-a",
        "toolCallId": "5",
        "state": "approval-requested",
        "input": {},
        "approval": {"id": "ap"},
    },
    {"type": "dynamic-tool", "toolName": "d", "toolCallId": "6", "state": "input-streaming"},
    {"type": "tool-invocation", "toolInvocation": {"state": "partial-call"}},
    {"type": "tool-invocation", "toolInvocation": {"state": "result"}},
    {"type": "data-x", "data": 1},
    {"type": "text", "text": "Hel", "state": "streaming"},
)


def test_cleanup_aborted_parts() -> None:
    cleaned = dump(cleanup_aborted_parts(STOPPED))
    assert cleaned["parts"] == [
        {"type": "step-start"},
        {"type": "reasoning", "text": "partial thought", "state": "done"},
        {
            "type": "tool-a",
            "toolCallId": "3",
            "state": "output-available",
            "input": {},
            "output": 1,
        },
        {
            "type": "tool-a",
            "toolCallId": "4",
            "state": "output-error",
            "input": {},
            "errorText": "e",
        },
        {
            "type": "tool-a",
            "toolCallId": "5",
            "state": "approval-requested",
            "input": {},
            "approval": {"id": "ap"},
        },
        {"type": "tool-invocation", "toolInvocation": {"state": "result"}},
        {"type": "data-x", "data": 1},
        {"type": "text", "text": "Hel", "state": "done"},
    ]
    assert cleaned["id"] == "a1"


def test_cleanup_returns_a_copy() -> None:
    original = UIMessage.model_validate(STOPPED)
    before = dump(original)
    cleaned = cleanup_aborted_parts(original)
    assert cleaned is not original
    assert dump(original) == before
    cleaned.parts.clear()
    assert len(original.parts) == len(STOPPED["parts"])


def test_cleanup_of_clean_message_is_identity_in_content() -> None:
    message = assistant({"type": "text", "text": "fine", "state": "done"})
    assert dump(cleanup_aborted_parts(message)) == message


# ------------------------------------------------------------------------ strip metadata


def test_strip_provider_metadata_removes_only_openai_item_id() -> None:
    message = UIMessage.model_validate(
        assistant(
            {
                "type": "text",
                "text": "a",
                "providerMetadata": {"openai": {"itemId": "msg_1", "other": 2}, "x": {"y": 1}},
            },
            {"type": "reasoning", "text": "r", "providerMetadata": {"openai": {"itemId": "rs_1"}}},
            {
                "type": "tool-t",
                "toolCallId": "c",
                "state": "output-available",
                "input": {},
                "output": 1,
                "callProviderMetadata": {"openai": {"itemId": "fc_1"}},
            },
            {"type": "text", "text": "b", "providerMetadata": {"anthropic": {"sig": "s"}}},
        )
    )
    stripped = dump(strip_provider_metadata(message))
    assert stripped["parts"] == [
        {"type": "text", "text": "a", "providerMetadata": {"openai": {"other": 2}, "x": {"y": 1}}},
        {"type": "reasoning", "text": "r"},
        {
            "type": "tool-t",
            "toolCallId": "c",
            "state": "output-available",
            "input": {},
            "output": 1,
        },
        {"type": "text", "text": "b", "providerMetadata": {"anthropic": {"sig": "s"}}},
    ]
    # the original keeps its item ids
    original = dump(message)
    assert original["parts"][0]["providerMetadata"]["openai"]["itemId"] == "msg_1"
    assert original["parts"][2]["callProviderMetadata"] == {"openai": {"itemId": "fc_1"}}


def test_denied_answer_not_yet_acted_on_gives_an_execution_denied_result() -> None:
    result = convert(
        assistant(
            {
                "type": "tool-delete",
                "toolCallId": "c1",
                "state": "approval-responded",
                "input": {"path": "/"},
                "approval": {"id": "ap1", "approved": False, "reason": "Too dangerous"},
            }
        )
    )
    assert result[1] == {
        "role": "tool",
        "content": [
            {"type": "tool-approval-response", "approvalId": "ap1", "approved": False,
             "reason": "Too dangerous"},
            {"type": "tool-result", "toolCallId": "c1", "toolName": "delete",
             "output": {"type": "execution-denied", "reason": "Too dangerous"}},
        ],
    }
