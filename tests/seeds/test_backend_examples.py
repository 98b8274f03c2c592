"""The seed's ``chat.task`` examples (Backend page, Quickstart), sync and async, on a real worker
against the scripted model: what the user sees streamed, what the model was shown, what the
app's hooks persisted, and how stop and cancel behave."""

from __future__ import annotations

import uuid

import pytest
import redis

from chatworker import chat, runs, tokens
from chatworker.store.run_store import RunStore
from chatworker.testing import Citation, Error, ModelServer, Reasoning, Silence, Text

from ..support import (
    events,
    payload,
    read_turn,
    read_until,
    text_of,
    types_of,
    user_message,
    wait_for,
)
from .helpers import FORMS, db_ops, db_row, end, requests_of, run_end, said, script, texts

pytestmark = pytest.mark.integration

#: Examples whose only observable is the conversation: streamed text and the model's history.
PLAIN = ["my-chat", "simple-chat", "agent-chat", "my-chat-signals", "my-chat-turn-timeout",
         "my-chat-warm-timeout", "my-chat-on-error", "my-chat-reasoning", "my-chat-per-turn"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("example", PLAIN)
def test_two_turns_stream_and_the_model_sees_the_whole_conversation(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, example: str,
    form: str,
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"{example}-{form}", payload(chat_id, user_message(f"{chat_id} one")))
    try:
        turn0 = read_turn(r, started.run_id)
        assert text_of(turn0) == "answer to one"
        assert turn0[-1][1]["stopped"] is False
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} two")))
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        assert text_of(turn1) == "answer to two"
        first, second = requests_of(model_server, chat_id)
        system = [("system", "You are a helpful assistant.")] if example == "simple-chat" else []
        assert said(first) == [*system, ("user", f"{chat_id} one")]
        assert said(second) == [*system, ("user", f"{chat_id} one"),
                                ("assistant", "answer to one"), ("user", f"{chat_id} two")]
        assert first["model"] == "gpt-4o"
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_preload_initialises_before_the_first_message(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    user_id = "user-" + uuid.uuid4().hex[:8]
    r.set(f"test:db:user:{user_id}", f'{{"id": "{user_id}", "name": "Ada", "plan": "pro"}}')
    started = runs.trigger(f"my-chat-preload-{form}", {
        "chatId": chat_id, "messages": [], "trigger": "preload", "metadata": {"userId": user_id}})
    try:
        # on_preload ran while the user was still typing: the chat and session rows exist.
        row = wait_for(lambda: db_row(r, "chat", chat_id))
        assert row == {"id": chat_id, "user_id": user_id}
        session = wait_for(lambda: db_row(r, "chat_session", chat_id))
        assert session["run_id"] == started.run_id and session["public_access_token"]
        runs.send_message(started.run_id,
                          payload(chat_id, user_message(f"{chat_id} hi"),
                                  metadata={"userId": user_id}))
        assert text_of(read_turn(r, started.run_id)) == "answer to hi"
        # on_preload ran once; on_chat_start saw preloaded=True and returned: one chat created.
        assert db_ops(r, "chat", chat_id) == ["create"]
        assert db_ops(r, "chat_session", chat_id) == ["upsert"]
    finally:
        end(started.run_id)

    # Without preload, on_chat_start does the initialisation instead.
    other = chat_id + "-np"
    script(model_server, other)
    started = runs.trigger(f"my-chat-preload-{form}", payload(
        other, user_message(f"{other} hi"), metadata={"userId": user_id}))
    try:
        assert text_of(read_turn(r, started.run_id)) == "answer to hi"
        assert db_ops(r, "chat", other) == ["create"]
        assert db_row(r, "chat", other) == {"id": other, "user_id": user_id}
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_on_chat_start_creates_the_chat_once_not_on_continuation(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    first_message = user_message(f"{chat_id} one")
    started = runs.trigger(f"my-chat-chat-start-{form}",
                           payload(chat_id, first_message, metadata={"userId": "u1"}))
    turn0 = read_turn(r, started.run_id)
    assert db_row(r, "chat", chat_id) == {"id": chat_id, "user_id": "u1", "title": "New chat"}
    runs.cancel(started.run_id)
    assert run_end(r, started.run_id, turn0[-1][0])["status"] == "canceled"

    # The previous run was canceled: the client continues with the full history.
    assistant = {"id": "a1", "role": "assistant",
                 "parts": [{"type": "text", "text": "answer to one"}]}
    follow = runs.trigger(f"my-chat-chat-start-{form}", payload(
        chat_id, first_message, assistant, user_message(f"{chat_id} two"),
        metadata={"userId": "u1"}, continuation=True, previousRunId=started.run_id))
    try:
        assert text_of(read_turn(r, follow.run_id)) == "answer to two"
        assert db_ops(r, "chat", chat_id) == ["create"]
        assert said(requests_of(model_server, chat_id)[-1])[-2:] == [
            ("assistant", "answer to one"), ("user", f"{chat_id} two")]
    finally:
        end(follow.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_on_turn_start_persists_the_message_before_streaming(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id, [Text("thinking about it "), Silence(60)])
    started = runs.trigger(f"my-chat-turn-start-{form}",
                           payload(chat_id, user_message(f"{chat_id} one", id="u-1")))
    try:
        wait_for(lambda: "thinking" in text_of(runs.read_stream(started.run_id)))
        # Mid-stream, a page refresh already finds the user's message and the session.
        row = db_row(r, "chat", chat_id)
        assert row is not None
        assert [(m["id"], m["role"]) for m in row["messages"]] == [("u-1", "user")]
        session = db_row(r, "chat_session", chat_id)
        assert session is not None and session["run_id"] == started.run_id
        assert session["public_access_token"]
        runs.stop(started.run_id)
        assert read_turn(r, started.run_id)[-1][1]["stopped"] is True
        assert db_ops(r, "chat_session", chat_id) == ["upsert"]
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_on_turn_complete_persists_the_response_and_the_stream_position(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-turn-complete-{form}",
                           payload(chat_id, user_message(f"{chat_id} one")))
    try:
        turn0 = read_turn(r, started.run_id)
        marker = turn0[-1][0]
        session = wait_for(lambda: (s := db_row(r, "chat_session", chat_id))
                           and s.get("last_event_id") and s)
        assert session["last_event_id"] == marker and session["run_id"] == started.run_id
        # Resuming after lastEventId skips what was already seen: nothing is replayed.
        assert runs.read_stream(started.run_id, after=session["last_event_id"]) == []
        messages = db_row(r, "chat", chat_id)["messages"]  # type: ignore[index]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert texts(messages[1]) == "answer to one"

        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} two")))
        turn1 = read_turn(r, started.run_id, after=marker)
        wait_for(lambda: db_row(r, "chat_session", chat_id)["last_event_id"] == turn1[-1][0])
        messages = db_row(r, "chat", chat_id)["messages"]  # type: ignore[index]
        assert [texts(m) for m in messages] == [f"{chat_id} one", "answer to one",
                                                f"{chat_id} two", "answer to two"]
        # One write of each kind per turn: the hook fired exactly once per turn.
        assert db_ops(r, "chat", chat_id) == ["update", "update"]
        assert db_ops(r, "chat_session", chat_id) == ["upsert", "upsert"]
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_stop_keeps_the_partial_reply_and_the_run_answers_the_next_message(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    model_server.on(f"{chat_id} long", [Text("partial answer "), Silence(60)])
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-signals-{form}",
                           payload(chat_id, user_message(f"{chat_id} long")))
    try:
        wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
        runs.stop(started.run_id)
        turn0 = read_turn(r, started.run_id)
        assert types_of(turn0)[-2:] == ["abort", "__turn_complete"]
        assert turn0[-1][1]["stopped"] is True
        assert text_of(turn0) == "partial answer "
        # Stop ended the model call: its HTTP response was closed, not left open for 60 s.
        record = next(s for s in model_server.streams if chat_id in str(s.body))
        assert record.closed.wait(10) and record.outcome == "client-closed"
        # The run stays alive; the partial reply is part of the conversation.
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} next")))
        assert text_of(read_turn(r, started.run_id, after=turn0[-1][0])) == "answer to next"
        assert said(requests_of(model_server, chat_id)[-1]) == [
            ("user", f"{chat_id} long"), ("assistant", "partial answer"),
            ("user", f"{chat_id} next")]
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_cancel_ends_the_run_and_the_model_call(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id, [Text("partial answer "), Silence(60)])
    started = runs.trigger(f"my-chat-signals-{form}",
                           payload(chat_id, user_message(f"{chat_id} long")))
    wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
    runs.cancel(started.run_id)
    entries = read_until(r, started.run_id, lambda c: c["type"] == "__run_end")
    assert entries[-1][1]["status"] == "canceled"
    assert "abort" in types_of(entries)
    record = next(s for s in model_server.streams if chat_id in str(s.body))
    assert record.closed.wait(10) and record.outcome == "client-closed"


@pytest.mark.parametrize("form", FORMS)
def test_on_turn_complete_says_whether_the_user_stopped(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    model_server.on(f"{chat_id} long", [Text("partial answer "), Silence(60)])
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-stopped-{form}",
                           payload(chat_id, user_message(f"{chat_id} long")))
    try:
        wait_for(lambda: "partial answer" in text_of(runs.read_stream(started.run_id)))
        runs.stop(started.run_id)
        turn0 = read_turn(r, started.run_id)
        row = wait_for(lambda: db_row(r, "chat", chat_id))
        assert row["last_stopped_at"] is not None
        assert [texts(m) for m in row["messages"]] == [f"{chat_id} long", "partial answer "]
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} more")))
        read_turn(r, started.run_id, after=turn0[-1][0])
        wait_for(lambda: db_ops(r, "chat", chat_id) == ["update", "update"])
        assert db_row(r, "chat", chat_id)["last_stopped_at"] is None  # type: ignore[index]
    finally:
        end(started.run_id)


def finishes(r: redis.Redis, chat_id: str) -> list[dict[str, object]]:
    return [e for e in events(r, chat_id) if e["hook"] == "on_finish"]


@pytest.mark.parametrize("form", FORMS)
def test_stream_text_on_finish_sees_the_stop(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    model_server.on(f"{chat_id} long", [Text("partial answer "), Silence(60)])
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-on-finish-{form}",
                           payload(chat_id, user_message(f"{chat_id} one")))
    try:
        turn0 = read_turn(r, started.run_id)
        done = wait_for(lambda: finishes(r, chat_id))
        assert done == [{"hook": "on_finish", "was_stopped": False, "is_aborted": False,
                         "is_stopped": False, "text": "answer to one"}]

        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} long")))
        wait_for(lambda: "partial" in text_of(runs.read_stream(started.run_id, turn0[-1][0])))
        runs.stop(started.run_id)
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        assert turn1[-1][1]["stopped"] is True
        done = wait_for(lambda: len(f := finishes(r, chat_id)) >= 2 and f)
        assert done[1]["was_stopped"] is True and done[1]["is_stopped"] is True
        assert done[1]["text"] == "partial answer "
        # on_finish ran once per turn, also for the stopped one.
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} three")))
        read_turn(r, started.run_id, after=turn1[-1][0])
        done = wait_for(lambda: len(f := finishes(r, chat_id)) >= 3 and f)
        assert [f["was_stopped"] for f in done] == [False, True, False]
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_full_persistence_example(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-persisted-{form}", payload(
        chat_id, user_message(f"{chat_id} one"), metadata={"userId": "u7"}))
    try:
        turn0 = read_turn(r, started.run_id)
        runs.send_message(started.run_id, payload(
            chat_id, user_message(f"{chat_id} two"), metadata={"userId": "u7"}))
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        wait_for(lambda: len(db_ops(r, "chat_session", chat_id)) == 4)
        row = db_row(r, "chat", chat_id)
        assert row is not None and row["user_id"] == "u7" and row["title"] == "New chat"
        assert [texts(m) for m in row["messages"]] == [f"{chat_id} one", "answer to one",
                                                      f"{chat_id} two", "answer to two"]
        session = db_row(r, "chat_session", chat_id)
        assert session == {"id": chat_id, "run_id": started.run_id,
                           "public_access_token": session["public_access_token"],  # type: ignore
                           "last_event_id": turn1[-1][0]}
        # on_chat_start once; on_turn_start and on_turn_complete once per turn each.
        assert db_ops(r, "chat", chat_id) == ["create", "update", "update", "update", "update"]
        assert db_ops(r, "chat_session", chat_id) == ["upsert"] * 4
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("example", "field", "seconds"), [
    ("my-chat-turn-timeout", "turn_timeout", 7200.0), ("my-chat-warm-timeout", "warm", 60.0)])
def test_runtime_configuration_holds_for_the_rest_of_the_run(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, example: str,
    field: str, seconds: float, form: str,
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"{example}-{form}", payload(chat_id, user_message(f"{chat_id} one")))
    try:
        read_turn(r, started.run_id)
        # What the run saved with its turn marker: what any worker resuming it will apply.
        saved = RunStore(r).checkpoint(started.run_id)
        assert saved is not None and saved[field] == seconds
        assert runs.status(started.run_id).status in {"waiting", "running"}
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_warm_timeout_zero_suspends_and_the_next_message_resumes(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    script(model_server, chat_id)
    started = runs.trigger(f"my-chat-warm-zero-{form}",
                           payload(chat_id, user_message(f"{chat_id} one")))
    try:
        turn0 = read_turn(r, started.run_id)
        wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=10)
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} two")))
        assert text_of(read_turn(r, started.run_id, after=turn0[-1][0])) == "answer to two"
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_on_error_sanitises_what_the_frontend_sees(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    model_server.on(f"{chat_id} busy", [Text("so "), Error(message="rate limit reached")])
    model_server.on(f"{chat_id} boom", [Text("so "), Error(message="secret internal detail")])
    started = runs.trigger(f"my-chat-on-error-{form}",
                           payload(chat_id, user_message(f"{chat_id} busy")))
    try:
        turn0 = read_turn(r, started.run_id)
        assert [c["errorText"] for _, c in turn0 if c["type"] == "error"] == [
            "Rate limited — please wait a moment and try again."]
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} boom")))
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        assert [c["errorText"] for _, c in turn1 if c["type"] == "error"] == [
            "Something went wrong. Please try again."]
        assert turn1[-1][1]["type"] == "__turn_complete"
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_reasoning_and_sources_reach_the_frontend(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    model_server.on(chat_id, [Reasoning("let me look"), Citation("https://example.com/a", "A"),
                              Text("found it")])
    started = runs.trigger(f"my-chat-reasoning-{form}",
                           payload(chat_id, user_message(f"{chat_id} find")))
    try:
        entries = read_turn(r, started.run_id)
        kinds = types_of(entries)
        assert "reasoning-delta" in kinds and "source-url" in kinds
        assert text_of(entries) == "found it"
    finally:
        end(started.run_id)


@pytest.mark.parametrize("form", FORMS)
def test_per_turn_stream_options_apply_to_that_turn_only(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, form: str
) -> None:
    model_server.on(chat_id, [Reasoning("hmm"), Text("ok")])
    started = runs.trigger(f"my-chat-per-turn-{form}", payload(
        chat_id, user_message(f"{chat_id} one"), metadata={"model": "claude-sonnet"}))
    try:
        turn0 = read_turn(r, started.run_id)
        assert "reasoning-delta" in types_of(turn0)
        runs.send_message(started.run_id, payload(chat_id, user_message(f"{chat_id} two")))
        turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
        assert "reasoning-delta" not in types_of(turn1) and text_of(turn1) == "ok"
        assert [b["model"] for b in requests_of(model_server, chat_id)] == [
            "claude-sonnet", "gpt-4o"]
    finally:
        end(started.run_id)


def test_quickstart_access_token_triggers_only_its_task(redis_server: object) -> None:
    token = chat.create_access_token("my-chat-sync")
    claims = tokens.require_scope(token, "trigger:tasks:my-chat-sync")
    assert claims
    with pytest.raises(tokens.TokenError):
        tokens.require_scope(token, "trigger:tasks:simple-chat-sync")
