"""A worker dies after a message was steered into its turn: the message is never lost."""

from __future__ import annotations

import signal

import pytest
import redis

from chatworker import runs
from chatworker.store import keys
from chatworker.testing import ModelServer, ToolLoop

from ..conftest import worker_env
from ..support import (
    Worker,
    isolated_db,
    payload,
    read_turn,
    read_until,
    text_of,
    types_of,
    user_message,
)

pytestmark = pytest.mark.integration


def test_a_steered_message_survives_its_worker_dying(
    redis_url: str, model_server: ModelServer, chat_id: str
) -> None:
    model_server.on(lambda body: chat_id in str(body),
                    ToolLoop("lookup", {"topic": "tides"}, calls=2, pause=3))
    with isolated_db(redis_url, 11) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        workers = [Worker(worker_env(url), name=name).start() for name in ("one", "two")]
        try:
            run_id = runs.trigger("policy-steer",
                                  payload(chat_id, user_message(f"plan {chat_id}"))).run_id
            read_until(r, run_id, lambda c: c["type"] == "start-step")
            sent = runs.send(run_id, payload(chat_id, user_message("also the moon")))
            assert runs.wait_steered(run_id, sent.input_id, 20) == "steered"
            # Its turn is now in the second model call (silent for a while): kill its worker.
            owner = str(r.hget(keys.run(run_id), "owner"))
            doomed = next(w for w in workers if w.proc and f":{w.proc.pid}:" in owner)
            doomed.stop(signal.SIGKILL)

            # The turn is answered again elsewhere, and the steered message, put back with it,
            # is answered as a turn of its own: neither is lost.
            first = read_turn(r, run_id, turn=0, timeout=40)
            assert "abort" in types_of(first)
            assert first[-1][1]["stopped"] is False
            second = read_turn(r, run_id, after=first[-1][0], timeout=40)
            start = second[0][1]
            assert (start["type"], start["turn"], start["inputId"]) == (
                "__turn_start", 1, sent.input_id)
            assert [m["role"] for m in start["messages"]] == ["user"]  # what followers show
            assert "also the moon" in text_of(second)
            assert runs.status(run_id).pending_inputs == 0
        finally:
            for worker in workers:
                worker.stop(signal.SIGKILL)
