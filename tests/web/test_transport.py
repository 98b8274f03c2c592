"""``ChatWorkerTransport`` (web/transport) under the real AI SDK client, against a live gateway.

Each test runs one scenario of ``tests/transport/scenarios.mjs`` with Node: ``AbstractChat`` from
the pinned ``ai`` package over the built transport, talking to a gunicorn gateway and the shared
celery worker. The script asserts what the browser sees; these tests then check what the run did.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid
from typing import Any

import pytest
import redis

from chatworker import tokens
from chatworker.store import keys
from chatworker.testing import ModelServer, Text, ToolLoop

from ..conftest import SECRET, worker_env
from ..gateway.conftest_helpers import Gunicorn, call, db_url, gateway_env, live_gateway
from ..support import ROOT, Worker, events, user_message, wait_for

__all__ = ["live_gateway"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TRANSPORT_TESTS = ROOT / "tests" / "transport"
TRANSPORT_DIST = ROOT / "web" / "transport" / "dist" / "index.js"


def node_binary() -> str:
    """``node``, or a clear failure (these tests never skip)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the transport tests need Node 20 or later")
    if not (TRANSPORT_TESTS / "node_modules" / "ai").is_dir():
        pytest.fail(
            "tests/transport/node_modules is missing: run npm ci in tests/transport "
            "(it installs the pinned `ai` package the tests drive)"
        )
    if not TRANSPORT_DIST.is_file():
        pytest.fail(
            "web/transport/dist is missing: run `npm ci && npm run build` in web "
            "(it builds the transport package under test)"
        )
    return node


def scenario_env(
    gateway: Gunicorn, setup: dict[str, Any] | None = None,
    trigger_tokens: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a Node scenario against ``gateway`` (``trigger_tokens``: the trigger
    token per task, default multiple-use ones without a subject)."""
    env = dict(os.environ)
    if setup is not None:
        env["SETUP"] = json.dumps(setup)
    env.update(
        BASE_URL=gateway.url,
        TOKENS=json.dumps(
            trigger_tokens
            or {
                task: tokens.create_trigger_token(task, multiple_use=True)
                for task in ("echo", "brief", "policy-steer")
            }
        ),
        TOKEN_SECRET=SECRET,
        TOKEN_ISSUER=tokens.ISSUER,
    )
    return env


def run_scenario(
    gateway: Gunicorn, name: str, setup: dict[str, Any] | None = None,
    trigger_tokens: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one Node scenario (``setup``: what the test prepared for it, as ``SETUP``); return its
    RESULT object (fail with its output otherwise)."""
    proc = subprocess.run(
        [node_binary(), "scenarios.mjs", name],
        cwd=TRANSPORT_TESTS,
        env=scenario_env(gateway, setup, trigger_tokens),
        capture_output=True,
        text=True,
        timeout=75,
    )
    output = proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"scenario {name} failed:\n{output}\n--- gateway log ---\n{gateway.log()[-3000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def hook_events(r: redis.Redis, chat_id: str, hook: str) -> list[dict[str, Any]]:
    return [e for e in events(r, chat_id) if e["hook"] == hook]


def test_multi_turn_and_regenerate(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "multiturn")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [e["turn"] for e in completes] == [0, 1, 2]
    assert {e["run_id"] for e in completes} == {result["runId"]}
    # The regenerate replaced the history: one user/assistant pair per question, not three.
    assert [m["role"] for m in completes[-1]["ui_messages"]] == [
        "user", "assistant", "user", "assistant",
    ]  # fmt: skip


def test_stop_mid_reply(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "stop")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [(e["turn"], e["stopped"]) for e in completes] == [(0, True), (1, False)]
    assert result["stopMs"] < 3000, result


def test_reload_resumes_the_reply_in_flight(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "resume")
    assert result["idleMs"] < 3000
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [(e["turn"], e["stopped"]) for e in completes] == [(0, False), (1, False)]


def test_stop_after_reload(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "resumestop")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [(e["turn"], e["stopped"]) for e in completes] == [(0, True)]


def test_continuation_after_the_run_ended(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "continuation")
    starts = hook_events(r, result["chatId"], "on_chat_start")
    assert [(e["run_id"], e["continuation"]) for e in starts] == [
        (result["firstRun"], False),
        (result["secondRun"], True),
    ]
    assert starts[1]["previous_run_id"] == result["firstRun"]
    # The continuation run got the full history: both user messages and the first answer.
    assert len(starts[1]["messages"]) == 3


def test_expired_run_token_is_renewed(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "renewal")
    starts = hook_events(r, result["chatId"], "on_chat_start")
    assert len(starts) == 1, "no second run was started"
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert {e["run_id"] for e in completes} == {result["runId"]}


def test_three_quick_messages(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "quick")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [e["turn"] for e in completes] == [0, 1, 2]
    user_texts = [
        part["text"]
        for message in completes[-1]["ui_messages"]
        if message["role"] == "user"
        for part in message["parts"]
        if part["type"] == "text"
    ]
    assert user_texts == ["m1", "m2", "m3"]


def test_preload(live_gateway: Gunicorn, r: redis.Redis) -> None:
    result = run_scenario(live_gateway, "preload")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert len(completes) == 1 and completes[0]["run_id"] == result["runId"]


def test_dropped_connections_and_idle_streams_resume(
    live_gateway: Gunicorn, r: redis.Redis
) -> None:
    result = run_scenario(live_gateway, "network")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [(e["turn"], e["stopped"]) for e in completes] == [(0, False), (1, False)]


def test_a_trimmed_stream_is_reported_not_skipped(live_gateway: Gunicorn, r: redis.Redis) -> None:
    """The run's stream is trimmed past the session's position while a long reply streams (as
    ``XADD MAXLEN ~`` trims a long stream: its oldest entries, here up to the reply's fourth)."""
    chat_id = "tr-trimmed-" + uuid.uuid4().hex[:8]
    trigger = tokens.create_trigger_token("echo", multiple_use=True)
    body = {"chatId": chat_id, "messages": [user_message("one", id="u-one")]}
    status, data, _ = call(live_gateway.url, "POST", "/api/chat/tasks/echo/runs", body,
                           token=trigger)  # fmt: skip
    assert status == 201, data
    run_id, token = data["runId"], data["publicAccessToken"]
    wait_for(lambda: hook_events(r, chat_id, "on_turn_complete"))
    marker = str(r.hget(keys.run(run_id), "last_event_id"))
    body = {"chatId": chat_id, "messages": [user_message("long", id="u-long")],
            "metadata": {"words": 400, "delay": 0.03}}  # fmt: skip
    path = f"/api/chat/runs/{run_id}/input/messages"
    status, data, _ = call(live_gateway.url, "POST", path, body, token=token)
    assert status == 202, data
    stream = keys.output(run_id)
    entries = wait_for(lambda: (e := r.xrange(stream, min=f"({marker}")) and len(e) > 10 and e)
    assert json.loads(entries[0][1]["c"])["type"] == "__turn_start"
    r.xtrim(stream, minid=entries[3][0], approximate=False)
    setup = {"chatId": chat_id, "runId": run_id, "publicAccessToken": token, "lastEventId": marker}
    run_scenario(live_gateway, "trimmed", setup)
    completes = hook_events(r, chat_id, "on_turn_complete")
    assert [(e["turn"], e["stopped"]) for e in completes] == [(0, False), (1, True), (2, False)]
    # What a reload shows from the chat's history: the long reply as far as it went, whole.
    reply = completes[1]["ui_messages"][-1]
    assert reply["role"] == "assistant"
    assert reply["parts"][-1]["text"].startswith("echo: long (turn 1) w0 w1 w2")


def test_a_reply_restarted_after_its_worker_died_shows_once(redis_url: str) -> None:
    """The worker streaming the reply is killed (SIGKILL) and another takes the run over: the
    open chat and one reloaded during the restart each show the recovered reply once."""
    url = db_url(redis_url, 2)
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    doomed = Worker(worker_env(url), name="tr-doomed").start()
    rescuer = Worker(worker_env(url), name="tr-rescuer")
    gateway = Gunicorn(gateway_env(url, CHATWORKER_SSE_HEARTBEAT="1"), name="tr-recover")
    node: subprocess.Popen[str] | None = None
    try:
        gateway.start()
        node = subprocess.Popen(
            [node_binary(), "scenarios.mjs", "recovered"], cwd=TRANSPORT_TESTS,
            env=scenario_env(gateway), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert node.stdout is not None and node.stdin is not None
        output: list[str] = []
        for line in node.stdout:
            output.append(line)
            if line.startswith("STREAMING "):
                break
        else:
            pytest.fail("".join(output))
        run_id = json.loads(line.removeprefix("STREAMING "))["runId"]
        doomed.stop(signal.SIGKILL)
        rescuer.start()

        def restarted() -> bool:
            chunks = [json.loads(f["c"]) for _, f in r.xrange(keys.output(run_id), "-", "+")]
            return sum(c["type"] == "__turn_start" for c in chunks) == 2

        wait_for(restarted, timeout=30)
        node.stdin.write("GO\n")
        node.stdin.flush()
        output.append(node.stdout.read())
        assert node.wait(60) == 0, f"{''.join(output)}\n--- gateway ---\n{gateway.log()[-3000:]}"
        result = json.loads(output[-1].split("RESULT ", 1)[1])
        # The stream itself: the lost attempt, its abort, the turn again under the same id.
        chunks = [json.loads(f["c"]) for _, f in r.xrange(keys.output(run_id), "-", "+")]
        assert {"type": "abort", "reason": "worker lost"} in chunks
        starts = [c["messageId"] for c in chunks if c["type"] == "start"]
        assert starts == [result["messageId"]] * 2
        assert result["steps"] == 1  # the lost attempt's step-start was reused, not doubled
        completes = hook_events(r, result["chatId"], "on_turn_complete")
        assert len(completes) == 1
        stored = completes[0]["ui_messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[1]["id"] == result["messageId"]
    finally:
        if node is not None and node.poll() is None:
            node.kill()
        gateway.stop()
        doomed.stop(signal.SIGKILL)
        rescuer.stop()
def test_steer_from_a_second_tab_and_reject_while_streaming(
    live_gateway: Gunicorn, r: redis.Redis, model_server: ModelServer
) -> None:
    chat_id = "tr-steer-" + uuid.uuid4().hex[:8]
    model_server.on(f"tell {chat_id}", [Text("a reply taking its time", tokens_per_second=4)])
    model_server.on(lambda body: chat_id in str(body),
                    ToolLoop("lookup", {"topic": "tides"}, calls=1, pause=2))
    result = run_scenario(live_gateway, "steer", {"chatId": chat_id})
    completes = hook_events(r, chat_id, "on_turn_complete")
    assert [(e["turn"], e["stopped"]) for e in completes] == [(0, False), (1, False)]
    assert {e["run_id"] for e in completes} == {result["runId"]}
    assert len(hook_events(r, chat_id, "on_chat_start")) == 1


def test_follow_mode_keeps_two_devices_in_sync(live_gateway: Gunicorn, r: redis.Redis) -> None:
    """Two devices on one chat: each shows the other's turns as they stream (a regenerate and a
    continuation run included), and each shows only what its own sends did not."""
    result = run_scenario(live_gateway, "follow")
    completes = hook_events(r, result["chatId"], "on_turn_complete")
    assert [(e["run_id"], e["turn"]) for e in completes] == [
        (result["runId"], 0), (result["runId"], 1), (result["runId"], 2),
        (result["nextRunId"], 0), (result["nextRunId"], 1),
    ]  # fmt: skip
    # Each device was shown by its follow exactly the turns the other one sent.
    assert result["shownByFollow"] == {"a": 2, "b": 3}
