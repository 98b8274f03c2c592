"""Model handles: what ``open_stream`` yields, and models that yield SDK chunk objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai as openai_sdk
import pytest
from openai.types.chat import ChatCompletionChunk
from pydantic import BaseModel

from chatworker.ai import stream_text, tool
from chatworker.ai.providers import OpenAIChatModel
from chatworker.testing import ModelServer, Reasoning, Text, Usage
from chatworker.testing.checks import assert_valid_ui_stream

from .helpers import USER


def test_open_stream_yields_chunk_dicts(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Text("Hi there, friend."), Usage(prompt_tokens=3, completion_tokens=2)])
    stream = model.open_stream({"messages": USER})
    chunks = list(stream)
    assert all(type(chunk) is dict for chunk in chunks)
    text = "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )
    assert text == "Hi there, friend."
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert stream.response.is_closed


class OldSdkStream:
    """An ``openai.Stream`` as older SDKs had it: iterable, but without ``_iter_events``."""

    def __init__(self, stream: openai_sdk.Stream[ChatCompletionChunk]) -> None:
        self._stream = stream
        self.response = stream.response

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return iter(self._stream)

    def close(self) -> None:
        self._stream.close()


def test_older_sdk_without_the_event_decoder_still_streams(
    server: ModelServer, model: OpenAIChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    completions = model.client.chat.completions
    create = completions.create
    monkeypatch.setattr(completions, "create", lambda **params: OldSdkStream(create(**params)))
    server.on("hello", [Reasoning("Thinking."), Text("Hi there.")])
    assert all(isinstance(c, ChatCompletionChunk) for c in model.open_stream({"messages": USER}))
    result = stream_text(model=model, messages=USER)
    assert result.text == "Hi there."
    assert result.reasoning_text == "Thinking."
    assert result.finish_reason == "stop"


class City(BaseModel):
    city: str


def sdk_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Any:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "hand-written",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


class SdkChunkModel:
    """A user-written LanguageModel that yields the SDK's chunk objects."""

    model_id = "hand-written"

    def open_stream(self, request: dict[str, Any]) -> list[Any]:
        arguments = json.dumps({"city": "Oslo"})
        return [
            sdk_chunk({"role": "assistant", "reasoning_content": "Need weather."}),
            sdk_chunk({"content": "Checking "}),
            sdk_chunk({"content": "Oslo."}),
            sdk_chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call-9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments[:6]},
                        }
                    ]
                }
            ),
            sdk_chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[6:]}}]}),
            sdk_chunk({}, "tool_calls"),
            ChatCompletionChunk.model_validate(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "hand-written",
                    "choices": [],
                    "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
                }
            ),
        ]


def test_model_yielding_sdk_chunk_objects() -> None:
    weather = tool(description="Weather for a city.", parameters=City)
    result = stream_text(model=SdkChunkModel(), messages=USER, tools={"get_weather": weather})
    chunks = list(result.to_ui_message_stream())
    assert_valid_ui_stream(chunks)
    assert [c["delta"] for c in chunks if c["type"] == "text-delta"] == ["Checking ", "Oslo."]
    assert [c["delta"] for c in chunks if c["type"] == "reasoning-delta"] == ["Need weather."]
    assert [c for c in chunks if c["type"] == "tool-input-start"] == [
        {"type": "tool-input-start", "toolCallId": "call-9", "toolName": "get_weather"}
    ]
    assert result.text == "Checking Oslo."
    assert result.tool_calls == [
        {"toolCallId": "call-9", "toolName": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert result.finish_reason == "tool-calls"
    assert result.usage == {"inputTokens": 4, "outputTokens": 6, "totalTokens": 10}
