"""The `chatworker` command as a user runs it: chat, continue a chat, stop a reply, list runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatworker import runs, tokens

from ..gateway.conftest_helpers import Gunicorn
from ..support import payload, user_message, wait_for

pytestmark = pytest.mark.integration


def chatworker(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "chatworker.cli", *args], cwd=cwd,
                            env=dict(os.environ), text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]


def test_one_shot_message_then_continue_the_chat(live_gateway: Gunicorn, tmp_path: Path) -> None:
    api = live_gateway.url + "/api/chat"
    token = tokens.create_trigger_token("echo", multiple_use=True)
    first = chatworker("chat", "--url", api, "--task", "echo", "--token", token,
                       "--chat-id", "cli-test-1", "hello", "there", cwd=tmp_path)
    out, _ = first.communicate(timeout=30)
    assert first.returncode == 0, out
    assert "echo: hello there (turn 0)" in out
    # --chat-id continues the same chat (and the same live run): this is turn 1.
    second = chatworker("chat", "--url", api, "--task", "echo", "--token", token,
                        "--chat-id", "cli-test-1", "again", cwd=tmp_path)
    out, _ = second.communicate(timeout=30)
    assert "echo: again (turn 1)" in out, out


def test_ctrl_c_stops_the_reply_not_the_client(live_gateway: Gunicorn, tmp_path: Path) -> None:
    api = live_gateway.url + "/api/chat"
    token = tokens.create_trigger_token("echo", multiple_use=True)
    proc = chatworker("chat", "--url", api, "--task", "echo", "--token", token,
                      "--metadata", '{"words": 400, "delay": 0.02}', cwd=tmp_path)
    assert proc.stdin is not None
    output: list[str] = []
    assert proc.stdout is not None
    fd = proc.stdout.fileno()  # read as it comes: a streaming reply has no newline yet
    reader = threading.Thread(daemon=True, target=lambda: output.extend(
        iter(lambda: os.read(fd, 4096).decode(errors="replace"), "")))
    reader.start()

    def seen() -> str:
        return "".join(output)

    proc.stdin.write("first message\n")
    proc.stdin.flush()
    wait_for(lambda: " w20 " in seen())  # the reply is streaming (400 words at 50 a second)
    proc.send_signal(signal.SIGINT)  # stops the reply; the client stays
    wait_for(lambda: seen().count("(stopped)") == 1)
    proc.stdin.write("second message\n")
    proc.stdin.flush()
    wait_for(lambda: "echo: second message (turn 1)" in seen() and " w20 " in seen().split(
        "second message (turn 1)")[-1])
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: seen().count("(stopped)") == 2)
    proc.stdin.close()  # end of input (Ctrl-D) quits
    proc.wait(timeout=30)
    reader.join(10)
    out = seen()
    assert out.count("(stopped)") == 2, out
    assert "echo: first message (turn 0)" in out
    assert "echo: second message (turn 1)" in out  # same run, next turn
    assert "w399" not in out  # neither reply ran to its end
    assert proc.returncode == 0 and "Traceback" not in out


def test_runs_lists_runs_with_status(live_gateway: Gunicorn, tmp_path: Path) -> None:
    started = runs.trigger("echo", payload("cli-runs", user_message("x")))
    wait_for(lambda: runs.status(started.run_id).status == "waiting")
    proc = chatworker("runs", cwd=tmp_path)
    out, _ = proc.communicate(timeout=20)
    line = next(line for line in out.splitlines() if started.run_id in line)
    assert "echo" in line and "waiting" in line and "cli-runs" in line


def test_token_prints_a_trigger_token_for_the_task(redis_url: str, tmp_path: Path) -> None:
    proc = chatworker("token", "echo", "--multiple-use", cwd=tmp_path)
    out, _ = proc.communicate(timeout=20)
    claims = tokens.require_scope(out.strip(), "trigger:tasks:echo")
    assert not claims.one_time


def test_token_can_name_its_subject(redis_url: str, tmp_path: Path) -> None:
    proc = chatworker("token", "echo", "--subject", "alice", cwd=tmp_path)
    out, _ = proc.communicate(timeout=20)
    claims = tokens.require_scope(out.strip(), "trigger:tasks:echo")
    assert claims.subject == "alice" and claims.principal == tokens.subject_principal("alice")
    assert claims.one_time
