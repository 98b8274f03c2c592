"""The ``whileStreaming`` policies through a real gunicorn gateway: the JSON route and ``/ui``
say what a message sent mid-reply did; ``reject`` is a 409 ``busy`` with nothing queued."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from typing import Any

import pytest
import redis

from chatworker import runs, tokens
from chatworker.store import keys
from chatworker.testing import ModelServer, Seen, Text, ToolLoop

from ..support import ROOT, payload, read_until, user_message
from .conftest_helpers import Gunicorn, SSEClient, call, live_gateway

__all__ = ["live_gateway"]

pytestmark = pytest.mark.integration

AISDK = ROOT / "tests" / "aisdk"


def _chat() -> str:
    return "policy-" + uuid.uuid4().hex[:10]


def _for_chat(chat_id: str) -> Any:
    return lambda body: chat_id in str(body)


def _auth(task_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_trigger_token(task_id, multiple_use=True)}"}


def _ui_body(chat_id: str, text: str, id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": chat_id, "messages": [user_message(text, id=id)], "trigger": "submit-message",
            **extra}


def test_json_route_says_what_the_policy_did_and_reject_is_409_busy(
    live_gateway: Gunicorn, model_server: ModelServer, r: redis.Redis
) -> None:
    chat_id = _chat()
    model_server.on(_for_chat(chat_id), ToolLoop("lookup", {"topic": "tides"}, calls=1, pause=2))
    started = runs.trigger("policy-queue", payload(chat_id, user_message(f"plan {chat_id}")))
    run_id, token = started.run_id, started.public_access_token
    path = f"/api/chat/runs/{run_id}/input/messages"
    read_until(r, run_id, lambda c: c["type"] == "start-step")
    seq = r.hget(keys.run(run_id), "input_seq")
    status, body, headers = call(live_gateway.url, "POST", path, token=token,
                                 body=payload(chat_id, user_message("no"), whileStreaming="reject"))
    assert status == 409 and headers["Content-Type"] == "application/json", body
    assert body["error"] == "busy" and "reject" in body["message"]
    assert r.hget(keys.run(run_id), "input_seq") == seq and r.llen(keys.inbox(run_id)) == 0
    # A steered message's POST returns once it joined the turn, and says so.
    status, body, _ = call(live_gateway.url, "POST", path, token=token,
                           body=payload(chat_id, user_message("the moon"), whileStreaming="steer"))
    assert status == 202 and body["outcome"] == "steered", body
    status, body, _ = call(live_gateway.url, "POST", path, token=token,
                           body=payload(chat_id, user_message("x"), whileStreaming="shout"))
    assert status == 422 and body["error"] == "invalid_payload", body


def test_ui_steer_streams_the_rest_of_the_turn_from_the_steered_message(
    live_gateway: Gunicorn, model_server: ModelServer
) -> None:
    chat_id = _chat()
    model_server.on(_for_chat(chat_id), ToolLoop("lookup", {"topic": "tides"}, calls=1, pause=2))
    auth = _auth("policy-steer")
    api = "/api/chat/ui/policy-steer"
    with SSEClient(live_gateway.url, api, method="POST", headers=auth,
                   body=_ui_body(chat_id, f"plan {chat_id}")) as first:
        events = first.events()
        for item in events:
            if '"start-step"' in (item.data or ""):
                break  # the first model call is open: a message sent now is steered
        with SSEClient(live_gateway.url, api, method="POST", headers=auth,
                       body=_ui_body(chat_id, "also the moon", id="steer-ui")) as second:
            assert second.status == 200
            assert second.headers["X-Chatworker-Outcome"] == "steered"
            steered = [e.data for e in second.read_all()]
        rest = [e.data for e in events]
    assert steered[-1] == "[DONE]" and rest[-1] == "[DONE]"
    chunks = [json.loads(d or 'null') for d in steered[:-1]]
    assert chunks[0] == {"type": "steering-message", "id": "steer-ui",
                         "parts": [{"type": "text", "text": "also the moon"}]}
    assert chunks[1]["type"] == "start-step"
    said = "".join(c.get("delta", "") for c in chunks if c["type"] == "text-delta")
    assert said == f"saw: plan {chat_id} | also the moon"
    # The first request's stream is the whole turn, the steering-message chunk included.
    assert chunks[0] in [json.loads(d or 'null') for d in rest[:-1]]


def test_ui_reject_is_409_busy_and_nothing_is_queued(
    live_gateway: Gunicorn, model_server: ModelServer, r: redis.Redis
) -> None:
    chat_id = _chat()
    model_server.on(f"tell {chat_id}", [Text("a reply taking a while", tokens_per_second=4)])
    model_server.on(_for_chat(chat_id), [Seen()])
    auth = _auth("policy-reject")
    api = "/api/chat/ui/policy-reject"
    with SSEClient(live_gateway.url, api, method="POST", headers=auth,
                   body=_ui_body(chat_id, f"tell {chat_id}")) as first:
        events = first.events()
        for item in events:
            if '"text-delta"' in (item.data or ""):
                break
        run_id = str(r.get(keys.chat_run("policy-reject", chat_id)))
        seq = r.hget(keys.run(run_id), "input_seq")
        status, body, headers = call(live_gateway.url, "POST", api, headers=auth,
                                     body=_ui_body(chat_id, "too soon"))
        assert status == 409 and headers["Content-Type"] == "application/json", body
        assert body["error"] == "busy"
        assert r.hget(keys.run(run_id), "input_seq") == seq and r.llen(keys.inbox(run_id)) == 0
        assert [e.data for e in events][-1] == "[DONE]"



def test_ai_sdk_clients_steer_into_a_tool_loop_through_ui(
    live_gateway: Gunicorn, model_server: ModelServer
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the AI SDK client test needs Node 20 or later")
    if not (AISDK / "node_modules" / "ai").is_dir():
        pytest.fail("tests/aisdk/node_modules is missing: run `npm ci` in tests/aisdk")
    chat_id = _chat()
    model_server.on(_for_chat(chat_id), ToolLoop("lookup", {"topic": "tides"}, calls=1, pause=2))
    env = dict(os.environ)
    env.update(BASE_URL=live_gateway.url, TASK_ID="policy-steer", CHAT_ID=chat_id,
               TOKEN=tokens.create_trigger_token("policy-steer", multiple_use=True))
    proc = subprocess.run([node, "ui_steer.mjs"], cwd=AISDK, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"{proc.stdout}{proc.stderr}\n--- gateway log ---\n{live_gateway.log()[-3000:]}")
