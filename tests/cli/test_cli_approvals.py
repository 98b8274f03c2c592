"""`chatworker chat` and tools that need approval: it asks at the prompt, and the answer
continues the same reply (the tool runs once, or the model is told it was denied, and why)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from chatworker import tokens
from chatworker.testing import ModelServer, ToolCall, call_then_report

from ..gateway.conftest_helpers import Gunicorn

pytestmark = pytest.mark.integration


def chat_with(gateway: Gunicorn, model_server: ModelServer, tmp_path: Path, answers: str,
              *args: str) -> tuple[str, str]:
    """Ask the ``approvals`` task to book (the model calls ``book``), answering the approval
    prompt with ``answers``; returns the chat's key and what the terminal showed."""
    key = "cli-" + uuid.uuid4().hex[:8]
    call = ToolCall("book", {"people": 2, "key": key}, id=f"call-{key}")
    model_server.on(f"book {key}", call_then_report(call))
    token = tokens.create_trigger_token("approvals", multiple_use=True)
    env = {**os.environ, "CHATWORKER_STATE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "chatworker.cli", "chat", "--url", gateway.url + "/api/chat",
         "--task", "approvals", "--token", token, "--chat-id", key, *args],
        input=f"book {key}\n{answers}" if not args else answers, text=True,
        capture_output=True, timeout=60, cwd=tmp_path, env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out
    return key, out


def saved_reply(tmp_path: Path, key: str) -> dict[str, object]:
    history = json.loads((tmp_path / "chats.json").read_text())[key]["history"]
    assert [m["role"] for m in history] == ["user", "assistant"], history
    return dict(history[-1])


def test_approve_at_the_prompt(live_gateway: Gunicorn, model_server: ModelServer,
                               r: redis.Redis, tmp_path: Path) -> None:
    key, out = chat_with(live_gateway, model_server, tmp_path, "y\n")
    assert "[waits for your approval]" in out
    assert 'approve book {"people": 2, "key": "' + key + '"}? [y/N]' in out
    assert 'Got book: {"table": 7, "people": 2}' in out, out
    assert r.get(f"test:executions:{key}") == "1"
    parts = saved_reply(tmp_path, key)["parts"]
    [tool] = [p for p in parts if p["type"] == "tool-book"]  # type: ignore[union-attr]
    assert tool["state"] == "output-available" and tool["approval"]["approved"] is True
    assert parts[-1]["text"].startswith("Got book")  # type: ignore[index]


def test_deny_with_a_reason(live_gateway: Gunicorn, model_server: ModelServer,
                            r: redis.Redis, tmp_path: Path) -> None:
    key, out = chat_with(live_gateway, model_server, tmp_path, "too expensive\n")
    assert "[→ denied]" in out and "Got book: too expensive" in out, out
    assert r.get(f"test:executions:{key}") is None
    parts = saved_reply(tmp_path, key)["parts"]
    [tool] = [p for p in parts if p["type"] == "tool-book"]  # type: ignore[union-attr]
    assert tool["state"] == "output-denied"


def test_one_shot_says_how_to_answer_later(live_gateway: Gunicorn, model_server: ModelServer,
                                           r: redis.Redis, tmp_path: Path) -> None:
    key = "cli-" + uuid.uuid4().hex[:8]
    call = ToolCall("book", {"people": 2, "key": key}, id=f"call-{key}")
    model_server.on(f"book {key}", call_then_report(call))
    token = tokens.create_trigger_token("approvals", multiple_use=True)
    env = {**os.environ, "CHATWORKER_STATE_DIR": str(tmp_path)}
    base = [sys.executable, "-m", "chatworker.cli", "chat", "--url",
            live_gateway.url + "/api/chat", "--task", "approvals", "--token", token,
            "--chat-id", key]  # fmt: skip
    first = subprocess.run([*base, "book", key], text=True, capture_output=True, timeout=60,
                           cwd=tmp_path, env=env)  # fmt: skip
    assert f"answer it with `chatworker chat --chat-id {key}`" in first.stdout, first.stdout
    # Continuing the chat asks at once, before any new message.
    later = subprocess.run(base, input="y\n", text=True, capture_output=True, timeout=60,
                           cwd=tmp_path, env=env)  # fmt: skip
    assert 'Got book: {"table": 7, "people": 2}' in later.stdout, later.stdout + later.stderr
    assert r.get(f"test:executions:{key}") == "1"
