"""The seed's manual-mode, session and raw-primitive examples, sync and async, on a real worker
against the scripted model."""

from __future__ import annotations

import pytest
import redis

from chatworker import runs
from chatworker.testing import ModelServer, Silence, Text

from ..support import payload, read_turn, read_until, text_of, types_of, user_message, wait_for
from .helpers import FORMS, db_ops, db_row, end, requests_of, said, script, texts

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("form", FORMS)
def test_manual_mode_hands_payload_messages_to_the_model(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"manual-chat-{form}", payload(chat_id, user_message(f"{chat_id} hi")))
    entries = read_until(r, started.run_id, lambda c: c["type"] == "__run_end")
    assert text_of(entries) == "answer to hi"
    assert entries[-1][1] == {"type": "__run_end", "status": "completed", "reason": "returned"}
    # The model was shown the conversation from payload.messages.
    assert said(requests_of(model_server, chat_id)[0]) == [("user", f"{chat_id} hi")]


SESSIONS = ["my-chat-session", "my-chat-session-manual", "my-chat-raw"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("example", SESSIONS)
def test_session_turns_accumulate_persist_and_stop(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, example: str,
    form: str,
) -> None:
    model_server.on(f"{chat_id} long", [Text("partial answer "), Silence(60)])
    script(model_server, chat_id)
    started = runs.trigger(f"{example}-{form}", payload(
        chat_id, user_message(f"{chat_id} one"), metadata={"userId": "u1"}))
    try:
        turn0 = read_turn(r, started.run_id)
        assert text_of(turn0) == "answer to one" and turn0[-1][1]["stopped"] is False
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} two")))
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        assert text_of(turn1) == "answer to two"
        # Turn 1's model call saw turn 0 (accumulated by the session / accumulator).
        assert said(requests_of(model_server, chat_id)[1]) == [
            ("user", f"{chat_id} one"), ("assistant", "answer to one"),
            ("user", f"{chat_id} two")]

        # Stop mid-reply: the partial is kept, the turn is marked stopped, the run lives on.
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} long")))
        wait_for(lambda: "partial" in text_of(runs.read_stream(started.run_id, turn1[-1][0])))
        runs.stop(started.run_id)
        turn2 = read_turn(r, started.run_id, after=turn1[-1][0])
        assert types_of(turn2)[-2:] == ["abort", "__turn_complete"]
        assert turn2[-1][1]["stopped"] is True
        record = next(s for s in model_server.streams if f"{chat_id} long" in str(s.body))
        assert record.closed.wait(10) and record.outcome == "client-closed"
        wait_for(lambda: len(db_row(r, "chat", chat_id)["messages"]) == 6)  # type: ignore[index]
        messages = db_row(r, "chat", chat_id)["messages"]  # type: ignore[index]
        assert [texts(m) for m in messages] == [
            f"{chat_id} one", "answer to one", f"{chat_id} two", "answer to two",
            f"{chat_id} long", "partial answer "]
        if example == "my-chat-session":
            assert db_ops(r, "chat", chat_id) == ["create", "update", "update", "update"]
        else:
            assert db_ops(r, "chat", chat_id) == ["update", "update", "update"]

        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} four")))
        turn3 = read_turn(r, started.run_id, after=turn2[-1][0])
        assert text_of(turn3) == "answer to four"
        assert said(requests_of(model_server, chat_id)[-1])[-3:] == [
            ("user", f"{chat_id} long"), ("assistant", "partial answer"),
            ("user", f"{chat_id} four")]

        # Cancel ends the run.
        runs.cancel(started.run_id)
        end_chunk = read_until(r, started.run_id, lambda c: c["type"] == "__run_end",
                               turn3[-1][0])[-1][1]
        assert end_chunk["status"] == "canceled"
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_raw_loop_waits_for_the_first_message_after_preload(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-raw-{form}",
                           {"chatId": chat_id, "messages": [], "trigger": "preload"})
    try:
        wait_for(lambda: runs.status(started.run_id).status in {"waiting", "running"})
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} first")))
        turn0 = read_turn(r, started.run_id)
        assert text_of(turn0) == "answer to first" and turn0[-1][1]["turn"] == 0
        assert said(requests_of(model_server, chat_id)[0]) == [("user", f"{chat_id} first")]
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_message_accumulator_example(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-accumulator-{form}",
                           payload(chat_id, user_message(f"{chat_id} hi")))
    entries = read_until(r, started.run_id, lambda c: c["type"] == "__run_end")
    assert text_of(entries) == "answer to hi"
    row = wait_for(lambda: db_row(r, "chat", chat_id))
    assert [texts(m) for m in row["ui_messages"]] == [f"{chat_id} hi", "answer to hi"]
    assert [m["role"] for m in row["model_messages"]] == ["user", "assistant"]
