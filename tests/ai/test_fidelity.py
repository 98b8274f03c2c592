"""stream_text as the AI SDK's examples use it: UI messages in, on_finish on every ending, and
to_ui_message_stream's options (original_messages, generate_message_id, on_finish)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chatworker.ai import FinishEvent, stream_text
from chatworker.ai.providers import OpenAIChatModel
from chatworker.ai.ui_stream import UIMessageStreamFinishEvent
from chatworker.protocol.messages import UIMessage
from chatworker.signals import AbortController
from chatworker.testing import ModelServer, Silence, Text

from .helpers import USER, types, ui


def _ui(role: str, text: str, id: str) -> dict[str, Any]:
    return {"id": id, "role": role, "parts": [{"type": "text", "text": text}]}


# -- UI messages in (a manual task's payload.messages) ------------------------------------------


def test_ui_messages_reach_the_model_as_the_conversation(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    history = [
        _ui("user", "my name is Ada", "u1"),
        UIMessage.model_validate(_ui("assistant", "Hello Ada.", "a1")),
        _ui("user", "what is my name?", "u2"),
    ]
    stream_text(model=model, messages=history).consume_stream()
    assert server.requests[-1]["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "what is my name?"},
    ]


def test_a_message_the_model_cannot_read_is_an_error_naming_it(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    only_data = {"id": "u9", "role": "user", "parts": [{"type": "data-x", "data": {}}]}
    with pytest.raises(ValueError, match=r"messages\[1\] \(user message 'u9'\)"):
        stream_text(model=model, messages=[_ui("user", "hi", "u1"), only_data])
    with pytest.raises(ValueError, match=r"messages\[0\] \(user message\) has no content"):
        stream_text(model=model, messages=[{"role": "user"}])
    assert server.requests == []  # nothing was sent


# -- on_finish on every ending ------------------------------------------------------------------


def test_on_finish_is_called_once_with_is_aborted_when_the_signal_aborts(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("hello", [Text("partial "), Silence(30)])
    controller = AbortController()
    finished: list[FinishEvent] = []
    result = stream_text(model=model, messages=USER, abort_signal=controller.signal,
                         on_finish=finished.append)
    for chunk in result.to_ui_message_stream():
        if chunk["type"] == "text-delta":
            controller.abort("stopped")
    assert len(finished) == 1
    event = finished[0]
    assert event.is_aborted is True
    assert event.text == "partial "
    assert event.finish_reason == "other"
    assert len(event.steps) == 1


def test_on_finish_is_called_once_when_the_reader_stops_early(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("hello", [Text("partial "), Silence(30)])
    finished: list[FinishEvent] = []
    result = stream_text(model=model, messages=USER, on_finish=finished.append)
    stream = result.to_ui_message_stream()
    for chunk in stream:
        if chunk["type"] == "text-delta":
            break
    assert finished == []
    stream.close()  # what chat.pipe does when the turn is stopped
    assert len(finished) == 1 and finished[0].is_aborted is True
    assert finished[0].text == "partial "
    assert result.text == "partial "  # the result is over too; nothing runs on


def test_on_finish_of_a_finished_run_is_not_aborted_and_may_be_async(
    model: OpenAIChatModel,
) -> None:
    finished: list[FinishEvent] = []

    async def on_finish(event: FinishEvent) -> None:
        finished.append(event)

    result = stream_text(model=model, messages=USER, on_finish=on_finish)
    result.consume_stream()
    assert len(finished) == 1
    assert finished[0].is_aborted is False and finished[0].finish_reason == "stop"
    assert finished[0].usage == result.usage and finished[0].steps == result.steps


# -- to_ui_message_stream's options ----------------------------------------------------------


def test_original_messages_continue_a_trailing_assistant_message(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("hello", [Text("More text.")])
    originals = [_ui("user", "hello", "u1"), _ui("assistant", "Earlier text.", "a1")]
    ended: list[UIMessageStreamFinishEvent] = []
    chunks = ui(stream_text(model=model, messages=USER), original_messages=originals,
                generate_message_id=lambda: "never-used", on_finish=ended.append)
    assert chunks[0] == {"type": "start", "messageId": "a1"}
    assert len(ended) == 1
    event = ended[0]
    assert event.is_continuation is True and event.is_aborted is False
    assert event.finish_reason == "stop"
    assert event.response_message.id == "a1"
    texts = [p.text for p in event.response_message.parts if p.type == "text"]
    assert texts == ["Earlier text.", "More text."]
    assert [m.id for m in event.messages] == ["u1", "a1"]


def test_generate_message_id_names_a_new_response(model: OpenAIChatModel) -> None:
    ended: list[UIMessageStreamFinishEvent] = []
    chunks = ui(stream_text(model=model, messages=USER),
                original_messages=[_ui("user", "hello", "u1")],
                generate_message_id=lambda: "resp-7", on_finish=ended.append)
    assert chunks[0] == {"type": "start", "messageId": "resp-7"}
    event = ended[0]
    assert event.is_continuation is False
    assert [m.id for m in event.messages] == ["u1", "resp-7"]
    assert event.response_message.role == "assistant"
    assert [p.text for p in event.response_message.parts if p.type == "text"] == [
        "Hello! I am a scripted model."]
    # without original messages, generate_message_id still names the response
    bare = ui(stream_text(model=model, messages=USER), generate_message_id=lambda: "resp-8")
    assert bare[0] == {"type": "start", "messageId": "resp-8"}


def test_ui_on_finish_tells_an_aborted_stream(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("hello", [Text("partial "), Silence(30)])
    controller = AbortController()
    ended: list[UIMessageStreamFinishEvent] = []
    result = stream_text(model=model, messages=USER, abort_signal=controller.signal)
    seen = []
    for chunk in result.to_ui_message_stream(on_finish=ended.append, send_start=False):
        seen.append(chunk)
        if chunk["type"] == "text-delta":
            threading.Timer(0.05, controller.abort, args=("stopped",)).start()
    assert types(seen)[0] == "start-step" and types(seen)[-1] == "abort"
    assert len(ended) == 1 and ended[0].is_aborted is True
    assert [p.text for p in ended[0].response_message.parts if p.type == "text"] == ["partial "]


def test_on_finish_may_read_the_result_however_the_run_ends(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("hello", [Text("partial "), Silence(30)])
    texts: list[str] = []
    result = stream_text(model=model, messages=USER, on_finish=lambda e: texts.append(result.text))
    stream = result.to_ui_message_stream()
    done = threading.Event()

    def read() -> None:
        for chunk in stream:
            if chunk["type"] == "text-delta":
                break
        stream.close()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(20), "reading the result inside on_finish hung"
    assert texts == ["partial "]
    finished = stream_text(model=model, messages=[{"role": "user", "content": "other"}],
                           on_finish=lambda e: texts.append(finished.text))
    finished.consume_stream()
    assert texts == ["partial ", "Hello! I am a scripted model."]
