"""The turn loop on a real celery worker process against a real redis-server."""

from __future__ import annotations

import time

import pytest
import redis

from chatworker import RunEnded, runs
from chatworker.store import keys

from ..support import events, payload, read_turn, text_of, types_of, user_message, wait_for

pytestmark = pytest.mark.integration


def test_multi_turn_accumulates_and_streams_complete_messages(
    engine: redis.Redis, chat_id: str
) -> None:
    """(Also on a RabbitMQ broker and on a Redis Cluster: see the ``engine`` fixture.)"""
    r = engine
    first = user_message("hello there")
    started = runs.trigger("echo", payload(chat_id, first))
    turn0 = read_turn(r, started.run_id)
    assert text_of(turn0).strip() == "echo: hello there (turn 0)"
    kinds = types_of(turn0)
    assert kinds[0] == "__turn_start"
    assert kinds[1] == "start" and kinds[-2] == "finish" and kinds[-1] == "__turn_complete"
    marker = turn0[-1][1]
    assert marker["turn"] == 0 and marker["stopped"] is False and "inputId" not in marker
    assert marker["publicAccessToken"]

    second = user_message("and again")
    input_id = runs.send_message(started.run_id, payload(chat_id, second))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert text_of(turn1).strip() == "echo: and again (turn 1)"
    # What every viewer of the chat needs to show the turn, whoever sent it: the new message.
    assert turn1[0][1] == {"type": "__turn_start", "turn": 1, "inputId": input_id,
                           "trigger": "submit-message", "messages": [second], "history": False}
    assert turn1[-1][1]["inputId"] == input_id
    # A run's first turn carries the whole history it starts from.
    assert turn0[0][1] == {"type": "__turn_start", "turn": 0, "trigger": "submit-message",
                           "messages": [first], "history": True}

    completes = wait_for(
        lambda: (
            [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"][1:]
            and [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"]
        )
    )
    last = completes[1]
    roles = [m["role"] for m in last["ui_messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert next(m["id"] for m in last["new_ui_messages"]) == second["id"]
    # The captured response id is the messageId the browser saw in `start`.
    start = next(c for _, c in turn1 if c["type"] == "start")
    assert last["response_message"]["id"] == start["messageId"]
    assert last["last_event_id"] == turn1[-1][0]
    assert runs.status(started.run_id).status in {"waiting", "running"}


def test_hook_order_and_fields(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("echo", payload(chat_id, user_message("hi"), metadata={"words": 2}))
    read_turn(r, started.run_id)
    seen = wait_for(lambda: len(events(r, chat_id)) >= 3 and events(r, chat_id))
    assert [e["hook"] for e in seen] == ["on_chat_start", "on_turn_start", "on_turn_complete"]
    chat_start, turn_start, complete = seen
    assert set(chat_start) - {"hook"} == {
        "chat_id",
        "messages",
        "client_data",
        "run_id",
        "chat_access_token",
        "continuation",
        "previous_run_id",
        "preloaded",
    }
    assert set(turn_start) - {"hook"} == {
        "chat_id",
        "messages",
        "ui_messages",
        "turn",
        "run_id",
        "chat_access_token",
        "continuation",
        "preloaded",
        "client_data",
    }
    assert set(complete) - {"hook"} == {
        "chat_id",
        "messages",
        "ui_messages",
        "new_messages",
        "new_ui_messages",
        "response_message",
        "raw_response_message",
        "turn",
        "run_id",
        "chat_access_token",
        "last_event_id",
        "stopped",
        "continuation",
        "client_data",
    }
    assert chat_start["continuation"] is False and chat_start["previous_run_id"] is None
    assert chat_start["run_id"] == started.run_id
    assert turn_start["client_data"]["words"] == 2
    assert complete["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assert complete["messages"][-1]["role"] == "assistant"


def test_stop_mid_turn_then_next_turn(engine: redis.Redis, chat_id: str) -> None:
    """(Also on a RabbitMQ broker and on a Redis Cluster: see the ``engine`` fixture.)"""
    r = engine
    started = runs.trigger(
        "echo", payload(chat_id, user_message("slow"), metadata={"words": 200, "delay": 0.05})
    )
    read_until_text = wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 20)
    assert read_until_text
    stop_sent = time.monotonic()
    assert runs.stop(started.run_id) is True
    turn0 = read_turn(r, started.run_id)
    elapsed = time.monotonic() - stop_sent
    kinds = types_of(turn0)
    assert kinds[-2] == "abort" and kinds[-1] == "__turn_complete"
    assert "finish" not in kinds
    assert turn0[-1][1]["stopped"] is True
    assert elapsed < 5  # generous: the 200 ms figure is measured in bench/
    assert len(text_of(turn0).split()) < 200

    runs.send_message(started.run_id, payload(chat_id, user_message("next")))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert turn1[-1][1]["stopped"] is False
    assert text_of(turn1).strip() == "echo: next (turn 1)"
    completes = wait_for(
        lambda: (
            [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"][1:]
            and [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"]
        )
    )
    stopped_turn = completes[0]
    assert stopped_turn["stopped"] is True
    text_part = next(p for p in stopped_turn["response_message"]["parts"] if p["type"] == "text")
    assert text_part["state"] == "done"  # cleaned
    assert stopped_turn["raw_response_message"]["parts"][-1]["state"] == "streaming"
    # The partial reply was accumulated: the next turn sees it.
    assert [m["role"] for m in completes[1]["ui_messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_stop_between_turns_does_not_leak(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("echo", payload(chat_id, user_message("one")))
    turn0 = read_turn(r, started.run_id)
    wait_for(lambda: runs.status(started.run_id).status == "waiting")
    assert runs.stop(started.run_id) is False
    runs.send_message(started.run_id, payload(chat_id, user_message("two")))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert turn1[-1][1]["stopped"] is False
    assert "abort" not in types_of(turn1)


def test_stop_names_its_input_queued_turn_stopped_current_untouched(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger(
        "echo", payload(chat_id, user_message("first"), metadata={"words": 20, "delay": 0.03}))
    wait_for(lambda: runs.status(started.run_id).is_streaming)
    queued = runs.send_message(started.run_id, payload(chat_id, user_message("second")))
    assert runs.status(started.run_id).pending_inputs == 1
    assert runs.stop(started.run_id, input_id=queued) is True  # stops "second" when it starts
    turn0 = read_turn(r, started.run_id, turn=0)
    assert turn0[-1][1]["stopped"] is False  # the turn streaming now was not touched
    assert text_of(turn0).strip().endswith("w19")
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0], turn=1)
    assert turn1[-1][1] == {**turn1[-1][1], "stopped": True, "inputId": queued}
    assert types_of(turn1)[-2] == "abort" and text_of(turn1) == ""
    # A stop naming an input already answered does nothing.
    assert runs.stop(started.run_id, input_id=queued) is False


def test_three_messages_during_one_turn_answered_in_order(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger(
        "echo", payload(chat_id, user_message("long"), metadata={"words": 30, "delay": 0.02})
    )
    wait_for(lambda: runs.status(started.run_id).is_streaming)
    ids = [
        runs.send_message(started.run_id, payload(chat_id, user_message(f"q{i}"))) for i in range(3)
    ]
    cursor = read_turn(r, started.run_id, turn=0)[-1][0]
    answers = []
    for n in range(1, 4):
        entries = read_turn(r, started.run_id, after=cursor, turn=n)
        cursor = entries[-1][0]
        answers.append((entries[-1][1]["inputId"], text_of(entries).strip()))
    assert answers == [(ids[i], f"echo: q{i} (turn {i + 1})") for i in range(3)]


def test_pipe_from_nested_calls_is_one_captured_message(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    started = runs.trigger("piped", payload(chat_id, user_message("go")))
    entries = read_turn(r, started.run_id)
    kinds = types_of(entries)
    assert kinds.count("start") == 1 and kinds.count("finish") == 1
    assert kinds[-2] == "finish"
    complete = wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"])
    parts = complete[0]["response_message"]["parts"]
    assert [p["type"] for p in parts if p["type"] != "step-start"] == [
        "text",
        "data-progress",
        "text",
    ]
    assert parts[[p["type"] for p in parts].index("data-progress")]["data"] == {"done": True}


def test_failing_hook_fails_the_run(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger(
        "echo", payload(chat_id, user_message("x"), metadata={"fail_in": "on_turn_start"})
    )
    entries = read_turn(r, started.run_id)
    end = entries[-1][1]
    assert end["type"] == "__run_end" and end["status"] == "failed"
    assert "RuntimeError" in end["reason"]
    assert runs.status(started.run_id).status == "failed"
    with pytest.raises(RunEnded):
        runs.send_message(started.run_id, payload(chat_id, user_message("y")))
    assert "on_turn_start failed on purpose" in worker.log()  # type: ignore[attr-defined]


def test_failing_run_function_fails_the_run(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("echo", payload(chat_id, user_message("x"), metadata={"fail_in": "run"}))
    end = read_turn(r, started.run_id)[-1][1]
    assert end == {
        "type": "__run_end",
        "status": "failed",
        "reason": "ValueError in the chat task (see the worker log)",
    }


def test_cancel_ends_the_run(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger(
        "echo", payload(chat_id, user_message("x"), metadata={"words": 100, "delay": 0.05})
    )
    wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 10)
    runs.cancel(started.run_id)
    entries = read_turn(r, started.run_id)
    assert entries[-1][1]["type"] == "__run_end"
    assert entries[-1][1]["status"] == "canceled"
    assert "abort" in types_of(entries)
    assert runs.status(started.run_id).status == "canceled"
    with pytest.raises(RunEnded):
        runs.send_message(started.run_id, payload(chat_id, user_message("y")))


def test_cancel_a_waiting_run(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("echo", payload(chat_id, user_message("x")))
    turn0 = read_turn(r, started.run_id)
    wait_for(lambda: runs.status(started.run_id).status == "waiting")
    runs.cancel(started.run_id)
    end = read_turn(r, started.run_id, after=turn0[-1][0])[-1][1]
    assert end["type"] == "__run_end" and end["status"] == "canceled"


def test_max_turns_completes_and_refuses_more(worker: object, r: redis.Redis, chat_id: str) -> None:
    started = runs.trigger("limited", payload(chat_id, user_message("a")))
    runs.send_message(started.run_id, payload(chat_id, user_message("b")))
    # The third message would exceed max_turns=2 counting the queued one: refused, not dropped.
    with pytest.raises(RunEnded):
        runs.send_message(started.run_id, payload(chat_id, user_message("c")))
    cursor = read_turn(r, started.run_id, turn=0)[-1][0]
    turn1 = read_turn(r, started.run_id, after=cursor, turn=1)
    assert text_of(turn1).strip() == "echo: b (turn 1)"
    end = read_turn(r, started.run_id, after=turn1[-1][0])[-1][1]
    assert end == {"type": "__run_end", "status": "completed", "reason": "max_turns"}


#: Inbox entries the worker cannot parse. The gateway and ``runs.send_message`` refuse such
#: payloads, so these stand for an entry corrupted in Redis or queued by another version.
UNREADABLE_ENTRIES = {
    "lone surrogate": '{"chatId": "c", "messages": [], "note": "\\ud800"}',
    "too deep": '{"chatId": "c", "messages": [], "note": ' + "[" * 250 + "]" * 250 + "}",
    "older version": '{"chat": "c", "text": "hi"}',
    "not JSON": "{garbage",
}


@pytest.mark.parametrize(
    ("task", "case"),
    [("echo", case) for case in sorted(UNREADABLE_ENTRIES)] + [("session-echo", "too deep")],
)
def test_an_unreadable_queued_message_fails_only_its_turn(
    worker: object, r: redis.Redis, chat_id: str, task: str, case: str
) -> None:
    started = runs.trigger(task, payload(chat_id, user_message("one")))
    turn0 = read_turn(r, started.run_id)
    seq = r.hincrby(keys.run(started.run_id), "input_seq", 1)
    r.hincrby(keys.run(started.run_id), "accepted", 1)
    r.rpush(keys.inbox(started.run_id), f"i{seq} {UNREADABLE_ENTRIES[case]}")
    good = runs.send_message(started.run_id, payload(chat_id, user_message("two")))

    bad_turn = read_turn(r, started.run_id, after=turn0[-1][0])
    assert types_of(bad_turn) == ["__turn_start", "start", "error", "finish", "__turn_complete"]
    assert bad_turn[0][1] == {"type": "__turn_start", "turn": 1, "inputId": f"i{seq}"}
    assert "could not be read" in bad_turn[2][1]["errorText"]
    marker = bad_turn[-1][1]
    assert marker["inputId"] == f"i{seq}" and marker["turn"] == 1
    assert marker["stopped"] is False and marker["publicAccessToken"]
    # The run carries on: the message behind it is answered, and more after that.
    answered = read_turn(r, started.run_id, after=bad_turn[-1][0])
    assert answered[-1][1]["type"] == "__turn_complete" and answered[-1][1]["inputId"] == good
    assert text_of(answered).strip().endswith("two (turn 2)")
    later = runs.send_message(started.run_id, payload(chat_id, user_message("three")))
    third = read_turn(r, started.run_id, after=answered[-1][0])
    assert third[-1][1]["inputId"] == later and "three (turn 3)" in text_of(third)
    assert runs.status(started.run_id).status not in {"failed", "completed", "canceled"}


def test_turn_start_carries_a_regenerate_history_and_never_client_data(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    """A viewer on another device rebuilds the chat from ``__turn_start``: a regenerate carries
    the whole history it restarts from (and which message it regenerates); the payload's client
    data and extra keys stay out of the stream."""
    first = user_message("hello there")
    started = runs.trigger("echo", payload(chat_id, first, metadata={"secret": "s3"}))
    turn0 = read_turn(r, started.run_id)
    assert "metadata" not in turn0[0][1] and "s3" not in str(turn0[0][1])
    reply = next(c for _, c in turn0 if c["type"] == "start")["messageId"]
    input_id = runs.send_message(started.run_id, payload(
        chat_id, first, trigger="regenerate-message", messageId=reply, apiKey="k9"))
    turn1 = read_turn(r, started.run_id, after=turn0[-1][0])
    assert turn1[0][1] == {"type": "__turn_start", "turn": 1, "inputId": input_id,
                           "trigger": "regenerate-message", "messageId": reply,
                           "messages": [first], "history": True}
    assert text_of(turn1).strip() == "echo: hello there (turn 1)"
