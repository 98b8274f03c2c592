"""UI message chunk schema: what the strict AI SDK client accepts and rejects."""

from __future__ import annotations

from typing import Any

import pytest

from chatworker.protocol.chunks import (
    CHUNK_MODELS,
    FINISH_REASONS,
    DataChunk,
    FinishChunk,
    StartChunk,
    TextDeltaChunk,
    ToolInputAvailableChunk,
    ToolOutputAvailableChunk,
    chunk_model_for,
    is_control_chunk,
    to_chunk_dict,
    validate_chunk,
)

PM = {"openai": {"itemId": "x"}}

VALID_CHUNKS: list[dict[str, Any]] = [
    {"type": "start", "messageId": "m1"},
    {"type": "start", "messageId": "m1", "messageMetadata": {"a": 1}},
    {"type": "start-step"},
    {"type": "finish-step"},
    {"type": "text-start", "id": "t", "providerMetadata": PM},
    {"type": "text-delta", "id": "t", "delta": "hi"},
    {"type": "text-end", "id": "t"},
    {"type": "reasoning-start", "id": "r"},
    {"type": "reasoning-delta", "id": "r", "delta": "hmm"},
    {"type": "reasoning-end", "id": "r"},
    {"type": "tool-input-start", "toolCallId": "c", "toolName": "w", "dynamic": True},
    {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"a'},
    {"type": "tool-input-available", "toolCallId": "c", "toolName": "w", "input": {"a": 1}},
    {"type": "tool-input-available", "toolCallId": "c", "toolName": "w", "input": None},
    {
        "type": "tool-input-error",
        "toolCallId": "c",
        "toolName": "w",
        "input": "{bad",
        "errorText": "invalid json",
    },
    {"type": "tool-output-available", "toolCallId": "c", "output": None, "preliminary": True},
    {"type": "tool-output-error", "toolCallId": "c", "errorText": "x", "providerExecuted": True},
    {"type": "tool-output-denied", "toolCallId": "c"},
    {"type": "tool-approval-request", "approvalId": "a", "toolCallId": "c"},
    {"type": "source-url", "sourceId": "s", "url": "https://x", "title": "X"},
    {"type": "source-document", "sourceId": "s", "mediaType": "text/plain", "title": "T"},
    {"type": "file", "url": "data:text/plain;base64,eA==", "mediaType": "text/plain"},
    {"type": "data-weather", "id": "w1", "data": {"t": 1}},
    {"type": "data-weather", "data": None, "transient": True},
    {"type": "message-metadata", "messageMetadata": None},
    {"type": "finish", "finishReason": "tool-calls"},
    {"type": "finish"},
    {"type": "abort", "reason": "stopped"},
    {"type": "error", "errorText": "An error occurred."},
    {"type": "steering-message", "id": "u2", "parts": [{"type": "text", "text": "also this"}]},
]


@pytest.mark.parametrize("chunk", VALID_CHUNKS, ids=lambda c: str(c["type"]))
def test_valid_chunks_pass_unchanged(chunk: dict[str, Any]) -> None:
    assert validate_chunk(chunk) == chunk


def test_every_fixed_chunk_type_has_a_model() -> None:
    assert {c["type"] for c in VALID_CHUNKS if not c["type"].startswith("data-")} == set(
        CHUNK_MODELS
    )
    assert chunk_model_for("data-anything") is DataChunk
    assert chunk_model_for("data-") is None
    assert chunk_model_for("reset-step") is None


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "text-deltaa", "id": "t", "delta": "x"},
        {"type": "custom", "kind": "a.b"},  # v7 only
        {"type": "reset-step"},  # v7 only
        {"type": "data-", "data": 1},
    ],
)
def test_unknown_types_are_rejected(chunk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown UI message chunk type"):
        validate_chunk(chunk)


@pytest.mark.parametrize(
    ("chunk", "key"),
    [
        ({"type": "start", "messageId": None}, "messageId"),
        ({"type": "source-url", "sourceId": "s", "url": "u", "title": None}, "title"),
        ({"type": "text-start", "id": "t", "providerMetadata": None}, "providerMetadata"),
        ({"type": "finish", "finishReason": None}, "finishReason"),
        ({"type": "data-x", "id": None, "data": 1}, "id"),
        ({"type": "tool-input-start", "toolCallId": "c", "toolName": "w", "title": None}, "title"),
    ],
)
def test_null_in_optional_field_is_rejected(chunk: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}' is null"):
        validate_chunk(chunk)


@pytest.mark.parametrize(
    ("chunk", "key"),
    [
        ({"type": "text-delta", "id": "t"}, "delta"),
        ({"type": "text-delta", "delta": "x"}, "id"),
        ({"type": "tool-input-available", "toolCallId": "c", "toolName": "w"}, "input"),
        ({"type": "tool-output-available", "toolCallId": "c"}, "output"),
        ({"type": "data-x", "id": "d"}, "data"),
        ({"type": "message-metadata"}, "messageMetadata"),
        ({"type": "error"}, "errorText"),
        ({"type": "source-document", "sourceId": "s", "mediaType": "m"}, "title"),
    ],
)
def test_missing_required_key_is_rejected(chunk: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"missing required key '{key}'"):
        validate_chunk(chunk)


def test_bad_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="finishReason"):
        validate_chunk({"type": "finish", "finishReason": "end_turn"})
    with pytest.raises(ValueError, match="providerMetadata"):
        validate_chunk({"type": "text-start", "id": "t", "providerMetadata": {"x": 1}})
    with pytest.raises(ValueError, match="delta"):
        validate_chunk({"type": "text-delta", "id": "t", "delta": 5})
    with pytest.raises(ValueError, match="providerExecuted"):
        validate_chunk(
            {
                "type": "tool-output-error",
                "toolCallId": "c",
                "errorText": "e",
                "providerExecuted": 1,
            }
        )
    with pytest.raises(ValueError, match="type"):
        validate_chunk({"delta": "x"})
    with pytest.raises(ValueError, match="JSON object"):
        validate_chunk(["start"])  # type: ignore[arg-type]


def test_finish_reasons() -> None:
    assert (
        frozenset({"stop", "length", "content-filter", "tool-calls", "error", "other"})
        == FINISH_REASONS
    )
    for reason in FINISH_REASONS:
        assert validate_chunk({"type": "finish", "finishReason": reason})["finishReason"] == reason


def test_extra_keys_pass_through() -> None:
    chunk = {"type": "text-delta", "id": "t", "delta": "x", "futureKey": None}
    assert validate_chunk(chunk) == chunk


def test_models_validate_to_wire_dicts() -> None:
    assert validate_chunk(TextDeltaChunk(id="t", delta="x")) == {
        "type": "text-delta",
        "id": "t",
        "delta": "x",
    }
    assert validate_chunk(StartChunk(message_id="m")) == {"type": "start", "messageId": "m"}
    assert validate_chunk(ToolInputAvailableChunk(tool_call_id="c", tool_name="w", input=None)) == {
        "type": "tool-input-available",
        "toolCallId": "c",
        "toolName": "w",
        "input": None,
    }
    # a model built with an out-of-schema value is still caught
    bad = FinishChunk.model_construct(finish_reason="end_turn")
    with pytest.raises(ValueError, match="finishReason"):
        validate_chunk(bad)


def test_control_chunks() -> None:
    marker = {"type": "__turn_complete", "turn": 1, "stopped": False, "inputId": None}
    assert is_control_chunk(marker)
    assert not is_control_chunk({"type": "start"})
    assert not is_control_chunk({"type": None})
    with pytest.raises(ValueError, match="control chunk"):
        validate_chunk(marker)
    assert validate_chunk(marker, allow_control=True) == {
        "type": "__turn_complete",
        "turn": 1,
        "stopped": False,
    }


def test_to_chunk_dict_drops_none_optionals_but_keeps_required_any_keys() -> None:
    assert to_chunk_dict({"type": "start", "messageId": "m", "messageMetadata": None}) == {
        "type": "start",
        "messageId": "m",
    }
    assert to_chunk_dict(
        {"type": "tool-output-available", "toolCallId": "c", "output": None, "dynamic": None}
    ) == {"type": "tool-output-available", "toolCallId": "c", "output": None}
    assert to_chunk_dict({"type": "data-x", "id": None, "data": None}) == {
        "type": "data-x",
        "data": None,
    }
    assert to_chunk_dict({"type": "message-metadata", "messageMetadata": None}) == {
        "type": "message-metadata",
        "messageMetadata": None,
    }
    assert to_chunk_dict(
        {
            "type": "tool-input-error",
            "toolCallId": "c",
            "toolName": "w",
            "input": None,
            "errorText": "e",
            "title": None,
        }
    ) == {
        "type": "tool-input-error",
        "toolCallId": "c",
        "toolName": "w",
        "input": None,
        "errorText": "e",
    }


def test_to_chunk_dict_fast_path_and_models() -> None:
    clean = {"type": "text-delta", "id": "t", "delta": "x"}
    assert to_chunk_dict(clean) is clean
    assert to_chunk_dict(ToolOutputAvailableChunk(tool_call_id="c", output=None)) == {
        "type": "tool-output-available",
        "toolCallId": "c",
        "output": None,
    }
    assert to_chunk_dict(DataChunk(type="data-x", data=[1])) == {"type": "data-x", "data": [1]}
    with pytest.raises(TypeError):
        to_chunk_dict("text")  # type: ignore[arg-type]
