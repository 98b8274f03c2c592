"""The real AI SDK client (``ai`` from npm: AbstractChat + DefaultChatTransport) against /ui."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from chatworker import tokens

from .gateway.conftest_helpers import Gunicorn, live_gateway
from .support import ROOT

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
