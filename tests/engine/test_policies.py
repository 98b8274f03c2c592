"""What a message sent while a reply streams does: queue, interrupt, steer or reject, by the
task's ``while_streaming`` and by the message's own ``whileStreaming`` (see
tests/policy_tasks.py), on a real worker against the scripted model server."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import pytest
import redis

from chatworker import runs
from chatworker.errors import InvalidPayload, RunBusy
from chatworker.store import keys
from chatworker.store.scripts import source
from chatworker.testing import ModelServer, Seen, Silence, Text, ToolLoop

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

pytestmark = pytest.mark.integration


def _for_chat(chat_id: str) -> Any:
    return lambda body: chat_id in str(body)


def _send(run_id: str, chat_id: str, text: str, policy: str | None, id: str | None = None,
          **extra: Any) -> runs.Sent:
    if policy is not None:
        extra["whileStreaming"] = policy
    return runs.send(run_id, payload(chat_id, user_message(text, id=id), **extra))


def _requests(server: ModelServer, chat_id: str) -> list[dict[str, Any]]:
    return [body for body in server.requests if chat_id in str(body)]


def _completed(r: redis.Redis, chat_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The ``on_turn_complete`` events, once ``count`` of them were recorded."""
    return list(wait_for(lambda: (found := [
        e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"]) and len(
        found) >= count and found))


@pytest.mark.parametrize(("task", "policy"), [("policy-steer", None), ("policy-queue", "steer")])
def test_steer_joins_the_tool_loop_at_its_next_step(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, task: str,
    policy: str | None,
) -> None:
    model_server.on(_for_chat(chat_id), ToolLoop("lookup", {"topic": "tides"}, calls=1, pause=2))
    run_id = runs.trigger(task, payload(chat_id, user_message(f"plan {chat_id}"))).run_id
    # The first model call is open (and silent for a while): a message sent now is steered.
    read_until(r, run_id, lambda c: c["type"] == "start-step")
    sent = _send(run_id, chat_id, "also the moon", policy, id="steer-1")
    assert sent.outcome == "steering"
    assert runs.wait_steered(run_id, sent.input_id, 20) == "steered"

    turn = read_turn(r, run_id)
    kinds = types_of(turn)
    steer_at = kinds.index("steering-message")
    assert kinds.index("tool-output-available") < steer_at < len(kinds) - 1
    assert kinds[steer_at + 1] == "start-step"  # at the start of the step that received it
    assert turn[steer_at][1] == {"type": "steering-message", "id": "steer-1",
                                 "parts": [{"type": "text", "text": "also the moon"}]}
    # The second model call saw it as a user message after the step's tool result.
    second = _requests(model_server, chat_id)[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "user"]
    assert second[-1]["content"] == "also the moon"
    assert text_of(turn) == f"saw: plan {chat_id} | also the moon"
    # One turn answered both; the assistant message holds the part.
    assert turn[-1][1]["turn"] == 0 and runs.status(run_id).pending_inputs == 0
    parts = _completed(r, chat_id)[0]["response_message"]["parts"]
    assert {"type": "steering-message", "id": "steer-1",
            "parts": [{"type": "text", "text": "also the moon"}]} in parts

    # Every later turn shows the model the steered message where it was delivered.
    runs.send_message(run_id, payload(chat_id, user_message("and now?")))
    nxt = read_turn(r, run_id, after=turn[-1][0])
    assert text_of(nxt) == f"saw: plan {chat_id} | also the moon | and now?"
    third = _requests(model_server, chat_id)[2]["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "tool", "user", "assistant", "user"]


def test_steer_after_the_answer_continues_for_one_more_step(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"tell {chat_id}", [Text("a slow answer in six words", tokens_per_second=4)])
    model_server.on(_for_chat(chat_id), [Seen()])
    run_id = runs.trigger("policy-steer", payload(chat_id, user_message(f"tell {chat_id}"))).run_id
    read_until(r, run_id, lambda c: c["type"] == "text-delta")
    sent = _send(run_id, chat_id, "shorter please", None, id="steer-2")
    assert runs.wait_steered(run_id, sent.input_id, 20) == "steered"
    turn = read_turn(r, run_id)
    assert types_of(turn).count("start-step") == 2
    assert text_of(turn) == f"a slow answer in six wordssaw: tell {chat_id} | shorter please"
    assert turn[-1][1]["turn"] == 0 and runs.status(run_id).pending_inputs == 0


def test_a_steer_too_late_for_the_turn_is_answered_as_the_next_turn(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    # One step only (max_steps=1): once the model is answering, nothing can join the turn.
    model_server.on(f"tell {chat_id}", [Text("one step and done here", tokens_per_second=4)])
    model_server.on(_for_chat(chat_id), [Seen()])
    started = runs.trigger("policy-steer", payload(chat_id, user_message(f"tell {chat_id}"),
                                                   metadata={"steps": 1}))
    run_id = started.run_id
    read_until(r, run_id, lambda c: c["type"] == "text-delta")
    sent = _send(run_id, chat_id, "late words", None, id="late-1", metadata={"steps": 1})
    assert sent.outcome == "steering"
    assert runs.wait_steered(run_id, sent.input_id, 20) == "turn"
    first = read_turn(r, run_id, turn=0)
    assert "steering-message" not in types_of(first)
    assert text_of(first) == "one step and done here"
    second = read_turn(r, run_id, after=first[-1][0])
    start = second[0][1]
    assert (start["type"], start["turn"], start["inputId"]) == ("__turn_start", 1, sent.input_id)
    assert [m["id"] for m in start["messages"]] == ["late-1"]  # a viewer shows it as a turn
    assert text_of(second) == f"saw: tell {chat_id} | late words"


@pytest.mark.parametrize(("task", "policy"),
                         [("policy-interrupt", None), ("policy-queue", "interrupt")])
def test_interrupt_stops_a_silent_model_and_answers_the_new_message_next(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, task: str,
    policy: str | None,
) -> None:
    model_server.on(f"silent {chat_id}", [Text("partial answer "), Silence(60)])
    model_server.on(_for_chat(chat_id), [Seen()])
    run_id = runs.trigger(task, payload(chat_id, user_message(f"silent {chat_id}"))).run_id
    read_until(r, run_id, lambda c: str(c.get("delta", "")).endswith("answer "))  # 1 or 2 deltas
    queued = _send(run_id, chat_id, "queued first", "queue")
    sent = _send(run_id, chat_id, "instead this", policy)
    assert (queued.outcome, sent.outcome) == ("queued", "interrupted")

    first = read_turn(r, run_id, turn=0)
    assert types_of(first)[-2:] == ["abort", "__turn_complete"]
    assert first[-1][1]["stopped"] is True
    complete = _completed(r, chat_id)[0]
    assert complete["stopped"] is True
    assert [p["text"] for p in complete["response_message"]["parts"] if p["type"] == "text"] == [
        "partial answer "]
    # The interrupting message is answered next, ahead of the one queued before it.
    second = read_turn(r, run_id, after=first[-1][0])
    assert second[0][1]["inputId"] == sent.input_id
    assert text_of(second) == f"saw: silent {chat_id} | instead this"
    third = read_turn(r, run_id, after=second[-1][0])
    assert third[0][1]["inputId"] == queued.input_id


@pytest.mark.parametrize(("task", "policy"), [("policy-queue", None), ("policy-steer", "queue")])
def test_queue_answers_each_message_in_its_own_turn(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, task: str,
    policy: str | None,
) -> None:
    model_server.on(f"tell {chat_id}", [Text("first reply words", tokens_per_second=4)])
    model_server.on(_for_chat(chat_id), [Seen()])
    run_id = runs.trigger(task, payload(chat_id, user_message(f"tell {chat_id}"))).run_id
    read_until(r, run_id, lambda c: c["type"] == "text-delta")
    sent = _send(run_id, chat_id, "next one", policy)
    assert sent.outcome == "queued"
    first = read_turn(r, run_id, turn=0)
    assert first[-1][1]["stopped"] is False and text_of(first) == "first reply words"
    assert "steering-message" not in types_of(first)
    second = read_turn(r, run_id, after=first[-1][0])
    assert second[0][1]["inputId"] == sent.input_id
    assert text_of(second) == f"saw: tell {chat_id} | next one"


@pytest.mark.parametrize(("task", "policy"), [("policy-reject", None), ("policy-queue", "reject")])
def test_reject_refuses_while_a_reply_streams_and_queues_nothing(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str, task: str,
    policy: str | None,
) -> None:
    model_server.on(f"tell {chat_id}", [Text("a reply taking a while", tokens_per_second=4)])
    model_server.on(_for_chat(chat_id), [Seen()])
    run_id = runs.trigger(task, payload(chat_id, user_message(f"tell {chat_id}"))).run_id
    read_until(r, run_id, lambda c: c["type"] == "text-delta")
    seq = r.hget(keys.run(run_id), "input_seq")
    with pytest.raises(RunBusy, match="reject"):
        _send(run_id, chat_id, "too soon", policy)
    assert r.llen(keys.inbox(run_id)) == 0 and r.hget(keys.run(run_id), "input_seq") == seq
    first = read_turn(r, run_id, turn=0)
    assert first[-1][1]["stopped"] is False and text_of(first) == "a reply taking a while"
    # Once nothing streams, the same message starts a turn as usual.
    sent = _send(run_id, chat_id, "now then", policy)
    second = read_turn(r, run_id, after=first[-1][0])
    assert second[0][1]["inputId"] == sent.input_id
    assert text_of(second) == f"saw: tell {chat_id} | now then"


def test_a_task_refuses_overrides_it_does_not_accept(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(_for_chat(chat_id), [Seen()])
    run_id = runs.trigger("policy-strict", payload(chat_id, user_message(f"hi {chat_id}"))).run_id
    read_turn(r, run_id)
    seq = r.hget(keys.run(run_id), "input_seq")
    for policy in ("interrupt", "reject"):
        with pytest.raises(InvalidPayload, match=r"accepts: queue, steer"):
            _send(run_id, chat_id, "mine", policy)
    assert r.hget(keys.run(run_id), "input_seq") == seq and r.llen(keys.inbox(run_id)) == 0
    with pytest.raises(InvalidPayload, match="whileStreaming"):
        _send(run_id, chat_id, "mine", "shout")
    assert _send(run_id, chat_id, "fine", "steer").outcome == "queued"  # nothing streams


def test_a_steer_waiting_when_the_turn_is_stopped_is_answered_next(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"silent {chat_id}", [Text("partial answer "), Silence(60)])
    model_server.on(_for_chat(chat_id), [Seen()])
    started = runs.trigger("policy-steer", payload(chat_id, user_message(f"silent {chat_id}")))
    run_id = started.run_id
    read_until(r, run_id, lambda c: str(c.get("delta", "")).endswith("answer "))  # 1 or 2 deltas
    sent = _send(run_id, chat_id, "one more thing", None)
    assert sent.outcome == "steering"
    runs.stop(run_id)  # the turn ends for a stop before any step boundary
    assert runs.wait_steered(run_id, sent.input_id, 20) == "turn"
    first = read_turn(r, run_id, turn=0)
    assert first[-1][1]["stopped"] is True and "steering-message" not in types_of(first)
    second = read_turn(r, run_id, after=first[-1][0])
    assert second[0][1]["inputId"] == sent.input_id
    assert text_of(second) == f"saw: silent {chat_id} | one more thing"


def test_a_turn_nobody_steers_never_checks_for_steered_messages(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    """The steering check is skipped at every step boundary of a turn no message was announced
    to (it sat between a turn's start and its first chunk); a steered turn still takes its
    message (the tests above). Watched with MONITOR: no ``steer_take`` call names the run."""
    steer_sha = hashlib.sha1(source("steer_take").encode()).hexdigest()
    model_server.on(_for_chat(chat_id), ToolLoop("lookup", {"topic": "tides"}, calls=2))
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(r, seen, stop), daemon=True)
    watcher.start()
    time.sleep(0.3)  # MONITOR is on
    run_id = runs.trigger("policy-steer", payload(chat_id, user_message(f"plan {chat_id}"))).run_id
    entries = read_turn(r, run_id, timeout=30)
    stop.set()
    watcher.join(5)
    assert types_of(entries).count("tool-output-available") == 2  # three step boundaries
    assert any(run_id in c for c in seen)  # the watch saw the run's commands
    assert [c for c in seen if steer_sha in c and run_id in c] == []


def _watch(r: redis.Redis, seen: list[str], stop: threading.Event) -> None:
    with redis.Redis(connection_pool=r.connection_pool).monitor() as m:
        for event in m.listen():
            seen.append(str(event.get("command", "")))
            if stop.is_set():
                return
