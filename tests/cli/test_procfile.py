"""The Procfile's `web` and `worker` lines run the system under `honcho start`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatworker import tokens

from ..conftest import worker_env
from ..gateway.conftest_helpers import SSEClient, call
from ..support import ARTIFACTS, free_port, isolated_db, user_message, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]  # the project folder, where the Procfile is


def test_honcho_start_runs_web_and_worker(redis_url: str) -> None:
    with isolated_db(redis_url, 10) as url:
        port = free_port()
        env = worker_env(url, PORT=str(port), WEB_CONCURRENCY="1", CHATWORKER_WORKER_SLOTS="20")
        ARTIFACTS.mkdir(exist_ok=True)
        with open(ARTIFACTS / "honcho.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "honcho", "start"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if call(base, "GET", "/healthz", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None, (ARTIFACTS / "honcho.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the web process did not come up"
                time.sleep(0.2)
            trigger = tokens.create_trigger_token("echo")
            status, body, _ = call(base, "POST", "/api/chat/tasks/echo/runs", token=trigger,
                                   body={"chatId": "procfile", "messages": [user_message("hi")]})
            assert status == 201, body
            created = body
            chunks = []
            with SSEClient(base, f"/api/chat/runs/{created['runId']}/stream",
                           headers={"Authorization": f"Bearer {created['publicAccessToken']}"},
                           timeout=30) as stream:
                assert stream.status == 200, stream.resp.read()
                for event in stream.events():
                    chunks.append(event.json())
                    if chunks[-1]["type"] == "__turn_complete":
                        break
            text = "".join(c.get("delta", "") for c in chunks if c["type"] == "text-delta")
            assert text.strip() == "echo: hi (turn 0)"
            # Both processes serve metrics: the web's /metrics and the worker's first free
            # port of the Procfile's range, where the turn was counted.
            status, metrics_text, _ = call(base, "GET", "/metrics")
            assert status == 200 and "chatworker_http_requests_total{" in metrics_text
            log_text = (ARTIFACTS / "honcho.log").read_text()
            found = re.search(r"metrics served on port (\d+)", log_text)
            assert found, log_text[-3000:]
            counted = 'chatworker_turns_total{outcome="completed",task="echo"} 1.0'
            wait_for(lambda: counted in call(f"http://127.0.0.1:{found.group(1)}", "GET",
                                             "/metrics")[1])
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
