"""A worker killed while an approved tool runs: the turn is answered again elsewhere, and a tool
whose output was already recorded is not executed again (tasks in tests/approval_tasks.py)."""

from __future__ import annotations

import json
import signal

import pytest
import redis

from chatworker import runs
from chatworker.testing import ModelServer, ToolCall, call_then_report

from ..approval_support import answer, assistant_of
from ..conftest import worker_env
from ..support import (
    Worker,
    isolated_db,
    payload,
    read_turn,
    running_worker,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_sigkill_while_an_approved_tool_runs_reuses_the_recorded_output(
    redis_url: str, model_server: ModelServer, chat_id: str
) -> None:
    fast, slow = f"{chat_id}-fast", f"{chat_id}-slow"
    model_server.on(f"book {chat_id}", call_then_report(
        ToolCall("book", {"people": 2, "key": fast}, id=f"fast-{chat_id}"),
        ToolCall("book", {"people": 3, "key": slow, "hold": True}, id=f"slow-{chat_id}")))
    with isolated_db(redis_url, 11) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        doomed = Worker(worker_env(url), name="doomed-approvals").start()
        try:
            user = user_message(f"book {chat_id}")
            started = runs.trigger("approvals", payload(chat_id, user))
            turn0 = read_turn(r, started.run_id)
            chunks = [c for _, c in turn0 if not c["type"].startswith("__")]
            message = assistant_of(chunks, message_id=chunks[0]["messageId"])
            assert types_of(turn0).count("tool-approval-request") == 2
            runs.send_message(started.run_id, payload(chat_id, user, answer(message, True)))
            # The first approved call finished (and was recorded); the second one is running.
            wait_for(lambda: r.get(f"test:holding:{slow}"), timeout=30)
            assert r.get(f"test:executions:{fast}") == "1"
            with running_worker(worker_env(url), name="rescuer-approvals"):
                doomed.stop(signal.SIGKILL)
                entries = read_turn(r, started.run_id, after=turn0[-1][0], timeout=60)
                kinds = types_of(entries)
                lost = kinds.index("abort")
                assert entries[lost][1]["reason"] == "worker lost"
                again = [c for _, c in entries[lost:]]
                outputs = [c for c in again if c["type"] == "tool-output-available"]
                assert [c["toolCallId"] for c in outputs] == [f"fast-{chat_id}",
                                                              f"slow-{chat_id}"]
                assert text_of(entries[lost:]) == "Got book: " + "; book: ".join(
                    json.dumps({"table": 7, "people": n}) for n in (2, 3))
                # Recorded before the crash: not executed again. Unfinished: executed again.
                assert r.get(f"test:executions:{fast}") == "1"
                assert r.get(f"test:executions:{slow}") == "2"
        finally:
            doomed.stop(signal.SIGKILL)
