"""The real AI SDK client (``ai`` from npm: AbstractChat + DefaultChatTransport) against /ui."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
import redis

from chatworker import tokens
from chatworker.store import keys
from chatworker.testing import ModelServer, ToolCall, call_then_report

from ..support import ROOT, user_message
from .conftest_helpers import Gunicorn, SSEClient, call, live_gateway

__all__ = ["live_gateway"]

pytestmark = pytest.mark.integration

AISDK = ROOT / "tests" / "aisdk"


def test_ai_sdk_chat_two_turns_stop_and_reconnect(live_gateway: Gunicorn) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the AI SDK client test needs Node 20 or later")
    if not (AISDK / "node_modules" / "ai").is_dir():
        pytest.fail(
            "tests/aisdk/node_modules is missing: run `npm ci` in tests/aisdk "
            "(it installs the pinned `ai` package the test drives)"
        )
    env = dict(os.environ)
    env.update(
        BASE_URL=live_gateway.url,
        TOKEN=tokens.create_trigger_token("echo", multiple_use=True),
        TASK_ID="echo",
    )
    proc = subprocess.run(
        [node, "ui_chat.mjs"], cwd=AISDK, env=env, capture_output=True, text=True, timeout=180
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"{output}\n--- gateway log ---\n{live_gateway.log()[-3000:]}"
    )


def test_ui_resume_of_a_turn_whose_start_was_trimmed_is_410(
    live_gateway: Gunicorn, r: redis.Redis
) -> None:
    """A reload while a reply longer than the stream keeps is streaming: the resume cannot
    replay the turn from its start, and says so (410) instead of replaying its middle."""
    chat_id = "ui-trimmed-" + uuid.uuid4().hex[:8]
    auth = {"Authorization": f"Bearer {tokens.create_trigger_token('echo', multiple_use=True)}"}
    body = {"id": chat_id, "messages": [user_message("long")], "trigger": "submit-message",
            "metadata": {"words": 400, "delay": 0.03}}  # fmt: skip
    with SSEClient(live_gateway.url, "/api/chat/ui/echo", method="POST", body=body,
                   headers=auth) as send:  # fmt: skip
        deltas = 0
        for item in send.events():
            deltas += '"text-delta"' in (item.data or "")
            if deltas >= 10:
                break
    run_id = str(r.get(keys.chat_run("echo", chat_id)))
    stream = keys.output(run_id)
    entries = r.xrange(stream)
    assert json.loads(entries[0][1]["c"])["type"] == "__turn_start"
    resume = f"/api/chat/ui/echo/{chat_id}/stream?timeout=5"
    try:
        # Trimmed as XADD MAXLEN trims a long stream: its oldest entries, here the turn's start.
        r.xtrim(stream, minid=entries[3][0], approximate=False)
        status, data, headers = call(live_gateway.url, "GET", resume, headers=auth)
        assert status == 410, (status, str(data)[:300])
        assert data["error"] == "stream_trimmed" and headers["Content-Type"] == "application/json"
    finally:
        call(live_gateway.url, "POST", f"/api/chat/ui/echo/{chat_id}/stop", {}, headers=auth)


def test_ai_sdk_chat_tool_approval_round_trip(live_gateway: Gunicorn,
                                              model_server: ModelServer) -> None:
    """``addToolApprovalResponse`` + ``lastAssistantMessageIsCompleteWithApprovalResponses``:
    approved and denied, each answer continuing the same assistant message."""
    node = shutil.which("node")
    if node is None or not (AISDK / "node_modules" / "ai").is_dir():
        pytest.fail("the AI SDK client test needs Node 20+ and `npm ci` in tests/aisdk")
    chat_id = "aisdk-approval-" + uuid.uuid4().hex[:8]
    for suffix, people in (("yes", 2), ("no", 2)):
        key = f"{chat_id}-{suffix}"
        call = ToolCall("book", {"people": people, "key": key}, id=f"call-{key}")
        model_server.on(f"book {key}", call_then_report(call))
    env = dict(os.environ)
    env.update(
        BASE_URL=live_gateway.url,
        TOKEN=tokens.create_trigger_token("approvals", multiple_use=True),
        TASK_ID="approvals",
        CHAT_ID=chat_id,
    )
    proc = subprocess.run(
        [node, "approvals.mjs"], cwd=AISDK, env=env, capture_output=True, text=True, timeout=180
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"{output}\n--- gateway log ---\n{live_gateway.log()[-3000:]}"
    )
