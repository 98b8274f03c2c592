"""The seed's examples ported line by line, on a real worker against the scripted model."""

from __future__ import annotations

import pytest
import redis

from chatworker import runs
from chatworker.testing import ModelServer, Silence, Text

from ..support import events, payload, read_turn, text_of, types_of, user_message, wait_for

pytestmark = pytest.mark.integration


def _said(role: str, text: str) -> dict[str, object]:
    return {"id": f"{role}-{len(text)}", "role": role, "parts": [{"type": "text", "text": text}]}


def test_manual_task_hands_payload_messages_to_stream_text(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    question = f"what is my name? {chat_id}"
    model_server.on(question, [Text("You are Ada.")])
    history = [_said("user", "my name is Ada"), _said("assistant", "Hello Ada."),
               user_message(question)]
    started = runs.trigger("manual-llm", payload(chat_id, *history))
    entries = read_turn(r, started.run_id)
    assert text_of(entries) == "You are Ada."
    body = next(b for b in model_server.requests if question in str(b))
    assert body["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": question},
    ]


def test_stream_text_on_finish_runs_once_on_a_stop_and_sees_it(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"long {chat_id}", [Text("partial answer "), Silence(60)])
    started = runs.trigger("finish-probe", payload(chat_id, user_message(f"long {chat_id}")))
    wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    assert types_of(entries)[-2:] == ["abort", "__turn_complete"]

    def finished() -> list[dict[str, object]]:
        return [e for e in events(r, chat_id) if e["hook"] == "stream_text.on_finish"]

    record = wait_for(finished)
    assert record == [{"hook": "stream_text.on_finish", "turn": 0, "is_aborted": True,
                       "stopped": True, "text": "partial answer ", "finish_reason": "other"}]
    # A turn that is not stopped: on_finish says so, once.
    model_server.on(f"short {chat_id}", [Text("all of it")])
    runs.send_message(started.run_id, payload(chat_id, user_message(f"short {chat_id}")))
    assert text_of(read_turn(r, started.run_id, after=entries[-1][0])) == "all of it"
    records = wait_for(lambda: len(finished()) == 2 and finished())
    assert records[1] == {"hook": "stream_text.on_finish", "turn": 1, "is_aborted": False,
                          "stopped": False, "text": "all of it", "finish_reason": "stop"}


def test_manual_mode_on_finish_sees_the_stop_too(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    # A manual run's ctx.signal is its cancel signal: a stop ends the pipe at the next chunk.
    full = "partial answer " + " ".join(f"w{i}" for i in range(400))
    model_server.on(f"long {chat_id}", [Text(full, tokens_per_second=40)])
    started = runs.trigger("manual-finish-probe",
                           payload(chat_id, user_message(f"long {chat_id}")))
    wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
    runs.stop(started.run_id)
    entries = read_turn(r, started.run_id)
    assert "abort" in types_of(entries)
    record = wait_for(lambda: [e for e in events(r, chat_id)
                               if e["hook"] == "stream_text.on_finish"])
    assert [(e["is_aborted"], e["stopped"]) for e in record] == [(True, True)]
    assert record[0]["text"].startswith("partial answer") and "w399" not in record[0]["text"]
