"""Model failures through a real worker and the scripted model server.

A model that answers 429 or 500, goes silent past the client timeout, or drops the connection
mid-stream: the user gets an ``error`` chunk inside a well-formed message, the turn completes
with its marker, and the run lives on (it answers the next message, with the whole history).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatworker import config, runs
from chatworker.engine.registry import load_tasks
from chatworker.testing import Disconnect, Error, ModelServer, Silence, Text
from chatworker.testing.checks import assert_valid_ui_stream

from ..conftest import worker_env
from ..fault_tasks import IMPATIENT_TIMEOUT
from ..support import Worker, events, payload, read_turn, text_of, user_message, wait_for
from .helpers import ALL_TASKS, pointed_at

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GENERIC = "The model request failed."
Entries = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def fault_worker(redis_url: str, model_server: ModelServer) -> Iterator[Worker]:
    """A worker that also loads ``tests.fault_tasks``, alone on its own database."""
    load_tasks("tests.fault_tasks")
    url = redis_url.rsplit("/", 1)[0] + "/10"
    with pointed_at(url):
        worker = Worker(worker_env(url, CHATWORKER_TASKS=ALL_TASKS), name="models").start()
        try:
            yield worker
        finally:
            worker.stop()
    # Model errors are logged with their traceback (a clear server-side line); no run failed.
    assert "failed in turn" not in worker.log(), worker.log()[-3000:]


@pytest.fixture
def store(fault_worker: Worker) -> redis.Redis:
    """A client of the fault worker's database (where this process points meanwhile)."""
    return redis.Redis.from_url(config.redis_url(), decode_responses=True)


def ui_chunks(entries: Entries) -> list[dict[str, Any]]:
    """What ``useChat`` receives: the turn without chatworker's control chunks."""
    return [c for _, c in entries if not c["type"].startswith("__")]


def errors_of(entries: Entries) -> list[str]:
    return [c["errorText"] for _, c in entries if c["type"] == "error"]


def completes(r: redis.Redis, chat_id: str) -> list[dict[str, Any]]:
    return [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"]


def response_text(event: dict[str, Any]) -> str:
    message = event["response_message"] or {"parts": []}
    return "".join(p.get("text", "") for p in message["parts"] if p["type"] == "text")


def test_every_model_failure_completes_the_turn_and_the_run_lives_on(
    fault_worker: Worker, model_server: ModelServer, store: redis.Redis, chat_id: str
) -> None:
    tag = chat_id
    # (what the model does, the text the user keeps, whether the turn ends in an error)
    script: list[tuple[list[Any], str, bool]] = [
        ([Error(429, "rate limited: secret-detail")], "", True),
        ([Text("partial one "), Error(500, "exploded: secret-detail")], "partial one ", True),
        ([Text("slow start "), Silence(IMPATIENT_TIMEOUT * 5), Text("never")], "slow start ", True),
        ([Silence(IMPATIENT_TIMEOUT * 3, before_headers=True), Text("too late")], "", True),
        ([Text("half a "), Disconnect()], "half a ", True),
        ([Error(500, "secret-detail")], "", True),
        ([Text("all good now")], "all good now", False),
    ]
    for n, (steps, _, _) in enumerate(script):
        model_server.on(f"t{n} {tag}", steps, once=True)

    started = runs.trigger(
        "llm-impatient", payload(chat_id, user_message(f"t0 {tag}"))
    )
    after = "0-0"
    for n, (_, kept, failed) in enumerate(script):
        if n:
            if n in (2, 5):  # let the run suspend after an error turn: it must resume
                wait_for(lambda: runs.status(started.run_id).status == "suspended", timeout=10)
            runs.send_message(started.run_id, payload(chat_id, user_message(f"t{n} {tag}")))
        began = time.monotonic()
        entries = read_turn(store, started.run_id, after=after, timeout=20)
        took = time.monotonic() - began
        after = entries[-1][0]
        marker = entries[-1][1]
        assert marker["type"] == "__turn_complete", entries[-5:]
        assert marker["turn"] == n and marker["stopped"] is False
        chunks = ui_chunks(entries)
        assert_valid_ui_stream(chunks)  # what the strict AI SDK client accepts
        assert chunks[0]["type"] == "start"
        assert text_of(entries) == kept
        if failed:
            assert errors_of(entries) == [GENERIC], n  # no upstream detail leaks to the user
            assert chunks[-1] == {"type": "finish", "finishReason": "error"}
        else:
            assert errors_of(entries) == []
            assert chunks[-1]["type"] == "finish" and chunks[-1]["finishReason"] == "stop"
        if n in (2, 3):  # a silent model is given up on after the client timeout
            assert took < IMPATIENT_TIMEOUT + 3, took

    # on_turn_complete fired once per turn, with the partial reply of each failed turn.
    done = wait_for(lambda: len(completes(store, chat_id)) == len(script) and
                    completes(store, chat_id))
    assert [response_text(e) for e in done] == [kept for _, kept, _ in script]
    # The last request carried the whole conversation: nothing of the run was lost.
    body = next(b for b in reversed(model_server.requests) if f"t6 {tag}" in str(b))
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    assert len(users) == len(script)
    assert all(f"t{n} {tag}" in str(users[n]) for n in range(len(script)))
    assistants = [str(m.get("content")) for m in body["messages"] if m["role"] == "assistant"]
    assert any("partial one" in a for a in assistants)
    assert any("half a" in a for a in assistants)
    assert runs.status(started.run_id).status in {"running", "waiting", "suspended"}
    assert fault_worker.proc is not None and fault_worker.proc.poll() is None


def test_transient_model_errors_are_retried_by_the_client(
    fault_worker: Worker, model_server: ModelServer, store: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"busy {chat_id}", [Error(429, "slow down")], once=True)
    model_server.on(f"busy {chat_id}", [Error(500, "hiccup")], once=True)
    model_server.on(f"busy {chat_id}", [Text("third time lucky")])
    started = runs.trigger("llm-retrying", payload(chat_id, user_message(f"busy {chat_id}")))
    entries = read_turn(store, started.run_id, timeout=30)
    assert errors_of(entries) == []
    assert text_of(entries) == "third time lucky"
    assert_valid_ui_stream(ui_chunks(entries))
    asked = [b for b in model_server.requests if f"busy {chat_id}" in str(b)]
    assert len(asked) == 3


def test_on_error_text_reaches_the_user(
    fault_worker: Worker, model_server: ModelServer, store: redis.Redis, chat_id: str
) -> None:
    model_server.on(f"a {chat_id}", [Error(429, "slow down")], once=True)
    model_server.on(f"b {chat_id}", [Text("cut "), Disconnect()], once=True)
    model_server.on(f"c {chat_id}", [Silence(IMPATIENT_TIMEOUT * 4)], once=True)
    started = runs.trigger("llm-friendly-errors", payload(chat_id, user_message(f"a {chat_id}")))
    turn0 = read_turn(store, started.run_id)
    assert errors_of(turn0) == ["model trouble: RateLimitError"]
    runs.send_message(started.run_id, payload(chat_id, user_message(f"b {chat_id}")))
    turn1 = read_turn(store, started.run_id, after=turn0[-1][0])
    assert errors_of(turn1) == ["model trouble: APIConnectionError"]
    assert text_of(turn1) == "cut "
    runs.send_message(started.run_id, payload(chat_id, user_message(f"c {chat_id}")))
    turn2 = read_turn(store, started.run_id, after=turn1[-1][0])
    assert errors_of(turn2) == ["model trouble: APITimeoutError"]
    for turn in (turn0, turn1, turn2):
        assert turn[-1][1]["type"] == "__turn_complete"
        assert_valid_ui_stream(ui_chunks(turn))
