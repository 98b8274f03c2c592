"""stream_text against the scripted model server: text, order, reasoning, sources, usage, finish."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chatworker.ai import FinishEvent, openai, stream_text
from chatworker.ai.providers import OpenAIChatModel
from chatworker.protocol.assemble import MessageAssembler
from chatworker.protocol.messages import parse_model_messages
from chatworker.testing import Citation, Finish, ModelServer, Reasoning, Text, ToolCall, Usage
from chatworker.testing.checks import assert_valid_ui_stream, collapse_deltas
from chatworker.testing.script import Step, split_tokens

from .helpers import USER, types, ui


def test_text_chunks_in_exact_order(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Text("Hi there, friend."), Usage(prompt_tokens=11, completion_tokens=3)])
    result = stream_text(model=model, messages=USER)
    chunks = ui(result, message_id="msg-1")
    text_id = chunks[2]["id"]
    # one delta per token unless tokens queued up meanwhile (those are merged): compare joined
    assert 1 <= len([c for c in chunks if c["type"] == "text-delta"]) <= 3
    assert collapse_deltas(chunks) == [
        {"type": "start", "messageId": "msg-1"},
        {"type": "start-step"},
        {"type": "text-start", "id": text_id},
        {"type": "text-delta", "id": text_id, "delta": "Hi there, friend."},
        {"type": "text-end", "id": text_id},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]
    assert result.text == "Hi there, friend."
    assert result.finish_reason == "stop"
    assert result.usage == {"inputTokens": 11, "outputTokens": 3, "totalTokens": 14}
    assert result.response_messages == [
        {"role": "assistant", "content": [{"type": "text", "text": "Hi there, friend."}]}
    ]


def test_start_without_message_id_has_no_null(model: OpenAIChatModel) -> None:
    chunks = ui(stream_text(model=model, messages=USER))
    assert chunks[0] == {"type": "start"}


def test_request_sent_to_the_model(server: ModelServer, model: OpenAIChatModel) -> None:
    result = stream_text(
        model=model,
        system="Be brief.",
        messages=USER,
        temperature=0.2,
        max_output_tokens=50,
        provider_options={"openai": {"reasoning_effort": "low"}},
    )
    result.consume_stream()
    body = server.requests[-1]
    assert body["model"] == "test-model"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert body["reasoning_effort"] == "low"
    assert "tools" not in body


def test_model_messages_are_converted(server: ModelServer, model: OpenAIChatModel) -> None:
    history = [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "image": "https://img.test/a.png"},
                {"type": "file", "data": "aGVsbG8=", "mediaType": "image/png"},
                {
                    "type": "file",
                    "data": "JVBERg==",
                    "mediaType": "application/pdf",
                    "filename": "a.pdf",
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "hmm"},
                {"type": "text", "text": "calling"},
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
                    "output": {"type": "json", "value": {"ok": True}},
                },
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ]
    expected = [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://img.test/a.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
                {
                    "type": "file",
                    "file": {
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,JVBERg==",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "t", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"ok": true}'},
        {"role": "user", "content": "and now?"},
    ]
    stream_text(model=model, messages=history).consume_stream()
    assert server.requests[-1]["messages"] == expected
    # the same conversation as pydantic ModelMessage models
    stream_text(model=model, messages=parse_model_messages(history)).consume_stream()
    assert server.requests[-1]["messages"] == expected


def test_call_is_lazy_and_results_work_without_iterating(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    result = stream_text(model=model, messages=USER)
    assert server.requests == []
    assert result.text == "Hello! I am a scripted model."
    assert len(server.requests) == 1
    # the UI stream can still be read afterwards: same chunks, no second model call
    chunks = ui(result, message_id="m")
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == result.text
    assert len(server.requests) == 1


def test_properties_after_iterating(model: OpenAIChatModel) -> None:
    result = stream_text(model=model, messages=USER)
    deltas = list(result.text_stream)
    assert "".join(deltas) == result.text == "Hello! I am a scripted model."
    assert result.steps[0].text == result.text


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_chunks(server: ModelServer, model: OpenAIChatModel, field: str) -> None:
    server.on("hello", [Reasoning("Let me think.", field=field), Text("Done.")])  # type: ignore[arg-type]
    result = stream_text(model=model, messages=USER)
    chunks = ui(result)
    assert types(collapse_deltas(chunks)) == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]
    reasoning = "".join(c["delta"] for c in chunks if c["type"] == "reasoning-delta")
    assert reasoning == "Let me think." == result.reasoning_text
    assert result.response_messages[0]["content"][0] == {
        "type": "reasoning",
        "text": "Let me think.",
    }


def test_send_reasoning_false_drops_reasoning(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Reasoning("secret thoughts"), Text("Answer.")])
    result = stream_text(model=model, messages=USER)
    chunks = ui(result, send_reasoning=False)
    assert not [c for c in chunks if c["type"].startswith("reasoning")]
    assert [c["delta"] for c in chunks if c["type"] == "text-delta"] == ["Answer."]
    assert result.reasoning_text == "secret thoughts"


def test_sources_only_with_send_sources(server: ModelServer, model: OpenAIChatModel) -> None:
    reply: list[Step] = [
        Text("See the docs."),
        Citation("https://docs.test/a", "Doc A"),
        Citation("https://docs.test/a", "Doc A"),
        Citation("https://docs.test/b"),
    ]
    server.on("hello", reply)
    result = stream_text(model=model, messages=USER)
    with_sources = ui(result, send_sources=True)
    sources = [c for c in with_sources if c["type"] == "source-url"]
    assert [(s["url"], s["title"]) for s in sources] == [
        ("https://docs.test/a", "Doc A"),
        ("https://docs.test/b", "https://docs.test/b"),
    ]
    assert len({s["sourceId"] for s in sources}) == 2
    assert not [c for c in ui(result) if c["type"] == "source-url"]
    assert [s["url"] for s in result.sources] == ["https://docs.test/a", "https://docs.test/b"]


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content-filter"),
        ("end_turn", "stop"),
        ("something_new", "other"),
    ],
)
def test_finish_reasons(server: ModelServer, model: OpenAIChatModel, raw: str, mapped: str) -> None:
    server.on("hello", [Text("x"), Finish(raw)])
    result = stream_text(model=model, messages=USER)
    chunks = ui(result)
    assert chunks[-1] == {"type": "finish", "finishReason": mapped}
    assert result.finish_reason == mapped


def test_usage_counts_per_step_and_total(server: ModelServer, model: OpenAIChatModel) -> None:
    from chatworker.ai import tool

    server.on("hello", [ToolCall("t", {}), Usage(prompt_tokens=5, completion_tokens=2)], once=True)
    server.on(
        "hello", [Text("ok"), Usage(prompt_tokens=9, completion_tokens=1, reasoning_tokens=0)]
    )
    noop = tool(description="noop", parameters={"type": "object"}, execute=lambda args: "done")
    result = stream_text(model=model, messages=USER, tools={"t": noop}, max_steps=2)
    assert result.usage == {
        "inputTokens": 9,
        "outputTokens": 1,
        "totalTokens": 10,
        "reasoningTokens": 0,
    }
    total = result.total_usage
    assert (total["inputTokens"], total["outputTokens"], total["totalTokens"]) == (14, 3, 17)
    assert [s.usage["inputTokens"] for s in result.steps] == [5, 9]


def test_stream_options(model: OpenAIChatModel) -> None:
    result = stream_text(model=model, messages=USER)
    seen: list[dict[str, Any]] = []

    def metadata(part: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(part)
        return {"kind": part["type"]} if part["type"] in ("start", "text-end", "finish") else None

    chunks = ui(result, message_id="m", message_metadata=metadata)
    assert chunks[0] == {"type": "start", "messageId": "m", "messageMetadata": {"kind": "start"}}
    assert chunks[-1] == {
        "type": "finish",
        "finishReason": "stop",
        "messageMetadata": {"kind": "finish"},
    }
    # As in the AI SDK: asked for every part; other parts' metadata follows them as its own chunk.
    assert list(dict.fromkeys(c["type"] for c in seen)) == [
        "start", "start-step", "text-start", "text-delta", "text-end", "finish-step", "finish"]
    end = types(chunks).index("text-end")
    assert chunks[end + 1] == {"type": "message-metadata", "messageMetadata": {"kind": "text-end"}}
    bare = ui(result, send_start=False, send_finish=False)
    assert types(bare)[0] == "start-step" and types(bare)[-1] == "finish-step"


def test_on_finish_receives_the_outcome(model: OpenAIChatModel) -> None:
    events: list[FinishEvent] = []
    result = stream_text(model=model, messages=USER, on_finish=events.append)
    result.consume_stream()
    assert len(events) == 1
    event = events[0]
    assert event.text == "Hello! I am a scripted model."
    assert event.finish_reason == "stop"
    assert event.response_messages == result.response_messages
    assert event.error is None


def test_prompt_shortcut(server: ModelServer, model: OpenAIChatModel) -> None:
    stream_text(model=model, prompt="just this").consume_stream()
    assert server.requests[-1]["messages"] == [{"role": "user", "content": "just this"}]


def test_streaming_paced_text_arrives_incrementally(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    """Chunks are yielded as the model sends them, not after the whole reply."""
    import time

    server.on("hello", [Text("one two three four five six", tokens_per_second=20)])
    result = stream_text(model=model, messages=USER)
    arrivals = [
        time.monotonic() for c in result.to_ui_message_stream() if c["type"] == "text-delta"
    ]
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] > 0.2


def test_iterating_inside_a_running_event_loop(model: OpenAIChatModel) -> None:
    async def main() -> str:
        result = stream_text(model=model, messages=USER)
        list(result.to_ui_message_stream())
        return result.text

    assert asyncio.run(main()) == "Hello! I am a scripted model."


def test_openai_handle_defaults_from_environment(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    handle = openai("env-model", max_retries=0)
    assert stream_text(model=handle, messages=USER).text == "Hello! I am a scripted model."
    assert server.requests[-1]["model"] == "env-model"


def test_deltas_that_pile_up_reach_a_slow_reader_merged(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    reply = " ".join(f"word{i}" for i in range(300)) + "."
    server.on("hello", [Reasoning("Thinking it over."), Text(reply)])
    result = stream_text(model=model, messages=USER)
    chunks = []
    for chunk in result.to_ui_message_stream():
        chunks.append(chunk)
        time.sleep(0.01)  # a busy worker: the model's chunks queue up meanwhile
    assert_valid_ui_stream(chunks)
    deltas = [c["delta"] for c in chunks if c["type"] == "text-delta"]
    assert 1 < len(deltas) < len(split_tokens(reply)) // 4
    assert "".join(deltas) == reply == result.text
    reasoning = "".join(c["delta"] for c in chunks if c["type"] == "reasoning-delta")
    assert reasoning == "Thinking it over." == result.reasoning_text
    assembler = MessageAssembler()
    for chunk in chunks:
        assembler.feed(chunk)
    assert assembler.message.text == reply
    assert result.response_messages == [
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "Thinking it over."},
                {"type": "text", "text": reply},
            ],
        }
    ]
