"""chat.task with stream_text against the scripted OpenAI-compatible server, on a real worker."""

from __future__ import annotations

import time

import pytest
import redis

from chatworker import runs
from chatworker.testing import Error, ModelServer, Reasoning, Silence, Text

from ..support import events, payload, read_turn, text_of, types_of, user_message, wait_for

pytestmark = pytest.mark.integration


def test_stop_while_the_model_is_silent(worker: object, model_server: ModelServer,
                                        r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"silent {chat_id}", [Text("partial answer "), Silence(60)])
    started = runs.trigger("llm", payload(chat_id, user_message(f"silent {chat_id}")))
    wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
    model_server.client_disconnected.clear()
    sent = time.monotonic()
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    took = time.monotonic() - sent
    assert types_of(entries)[-2:] == ["abort", "__turn_complete"]
    assert entries[-1][1]["stopped"] is True
    # The HTTP response to the model was closed rather than left hanging for 60 s.
    assert model_server.client_disconnected.wait(5)
    assert took < 5  # generous bound; the latency itself is measured in bench/
    complete = wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"])
    parts = complete[0]["response_message"]["parts"]
    assert [p["text"] for p in parts if p["type"] == "text"] == ["partial answer "]
    # The run is alive and answers the next message.
    model_server.on(f"after {chat_id}", [Text("back again")])
    runs.send_message(started.run_id, payload(chat_id, user_message(f"after {chat_id}")))
    assert text_of(read_turn(r, started.run_id, after=entries[-1][0])) == "back again"


def test_model_reply_with_reasoning_is_captured(worker: object, model_server: ModelServer,
                                               r: redis.Redis, chat_id: str) -> None:
    model_server.on(f"think {chat_id}", [Reasoning("let me think"), Text("the answer")])
    started = runs.trigger("llm", payload(chat_id, user_message(f"think {chat_id}")))
    entries = read_turn(r, started.run_id)
    assert "reasoning-delta" in types_of(entries)
    complete = wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"])
    parts = [p for p in complete[0]["response_message"]["parts"] if p["type"] != "step-start"]
    assert [(p["type"], p["text"]) for p in parts] == [
        ("reasoning", "let me think"), ("text", "the answer")]
    # The model saw the system prompt and the user's message.
    body = next(b for b in model_server.requests if f"think {chat_id}" in str(b))
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}


def test_model_error_gives_error_chunk_and_the_turn_completes(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"fail {chat_id}", [Error(status=500, message="upstream exploded")])
    started = runs.trigger("llm", payload(chat_id, user_message(f"fail {chat_id}")))
    entries = read_turn(r, started.run_id)
    errors = [c for _, c in entries if c["type"] == "error"]
    assert len(errors) == 1 and "exploded" not in errors[0]["errorText"]
    assert entries[-1][1]["type"] == "__turn_complete"
    assert runs.status(started.run_id).status in {"waiting", "running"}
