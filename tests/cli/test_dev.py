"""`chatworker dev` as a user runs it: one real stack (embedded Redis, demo model, worker,
gateway) started once for this module; its worker killed; the other commands used from another
folder; then Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from chatworker import tokens
from chatworker.cli import main
from chatworker.store.credentials import dev_secret

from ..gateway.conftest_helpers import SSEClient, call
from ..support import free_port, user_message
from .processes import alive, command_line, descendants

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]  # the clone: `chatworker dev` runs from here

#: What a fresh shell has not set: the stack and the commands must find each other without it.
UNSET = ("CHATWORKER_REDIS_URL", "CHATWORKER_SECRET_KEY", "CHATWORKER_DEV", "CHATWORKER_TASKS",
         "CHATWORKER_DEMO_DB", "CHATWORKER_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL",
         "CHATWORKER_DASHBOARD_TOKEN")


def shell_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(CHATWORKER_STATE_DIR=str(state_dir), **extra)
    return env


def chatworker(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "chatworker.cli", *args], cwd=cwd, env=env,
                          text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    return proc.returncode, proc.stdout


def poll(predicate: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@dataclass
class DevStack:
    proc: subprocess.Popen[bytes]
    log_path: Path
    state_dir: Path
    base: str  # the gateway, e.g. http://127.0.0.1:8123
    redis_port: int  # its embedded Redis

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def trigger_token(self) -> str:
        """A trigger token for the demo task, signed with the secret the stack generated."""
        secret, _ = dev_secret(redis.Redis(port=self.redis_port, decode_responses=True), "-")
        before = os.environ.get("CHATWORKER_SECRET_KEY")
        os.environ["CHATWORKER_SECRET_KEY"] = secret
        try:
            return tokens.create_trigger_token("demo-chat")
        finally:
            if before is None:
                os.environ.pop("CHATWORKER_SECRET_KEY")
            else:
                os.environ["CHATWORKER_SECRET_KEY"] = before

    def workers(self) -> list[int]:
        return [pid for pid, cmd in descendants(self.proc.pid).items()
                if "celery" in cmd and " worker" in cmd]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    tmp = tmp_path_factory.mktemp("dev")
    port = free_port()
    state_dir = tmp / "state"
    redis_port = free_port()
    env = shell_env(state_dir, CHATWORKER_DEV_REDIS_PORT=str(redis_port))
    log_path = tmp / "dev.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatworker.cli", "dev", "--port", str(port),
             "--data", str(tmp / "data"), "--no-build", "--concurrency", "20"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    dev = DevStack(proc, log_path, state_dir, f"http://127.0.0.1:{port}", redis_port)
    started = descendants(proc.pid)
    try:
        poll(lambda: proc.poll() is not None or "chatworker dev is running" in dev.log(),
             "chatworker dev did not come up")
        assert proc.poll() is None, dev.log()[-3000:]
        started.update(descendants(proc.pid))
        yield dev
    finally:
        if proc.poll() is None:
            started.update(descendants(proc.pid))
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pid, cmd in started.items():  # whatever it left behind (the same command line:
            if alive(pid) and command_line(pid) == cmd:  # not a process that reused its pid)
                os.kill(pid, signal.SIGKILL)


def test_help_is_plain_text_and_documents_every_option(
        capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for args in [[], ["dev"], ["chat"], ["token"], ["runs"]]:
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        outputs.append(capsys.readouterr().out)
    for out in outputs:
        assert "`" not in out, out
    chat_help = outputs[2]
    task_option = chat_help[chat_help.index("--task TASK"):].split("\n  -", 1)[0]
    assert len(task_option.split()) > 2, chat_help  # `--task TASK` and what it is


def test_without_a_stack_the_commands_say_where_they_looked(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = shell_env(state_dir)
    for args in [("token", "demo-chat"), ("chat", "hi")]:
        code, out = chatworker(*args, cwd=tmp_path, env=env)
        assert code != 0, out
        assert str(state_dir / "dev.json") in out and "no such file" in out, out
    # A stack that died without removing its file (kill -9) is not taken for a running one.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state_dir.mkdir()
    (state_dir / "dev.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:1/api/chat", "redis_url": "redis://127.0.0.1:1/0",
         "secret": "s", "pid": gone.pid}))
    code, out = chatworker("token", "demo-chat", cwd=tmp_path, env=env)
    assert code != 0 and f"pid {gone.pid}, which is no longer running" in out, out


def test_the_startup_log_has_the_summary_without_noise(stack: DevStack) -> None:
    startup = stack.log().split("chatworker dev is running:")[0]
    assert "RuntimeWarning" not in startup, startup
    assert "[tasks]" not in startup and ".> transport:" not in startup, startup  # Celery's banner


def test_the_runs_dashboard_has_a_generated_password_that_is_printed(stack: DevStack) -> None:
    match = re.search(r"runs dashboard: (\S+) \(any user, password (\S+)\)", stack.log())
    assert match, stack.log()[-3000:]
    url, password = match.groups()
    assert url == f"{stack.base}/dashboard"
    assert call(stack.base, "GET", "/dashboard/api/summary")[0] == 401
    status, body, _ = call(stack.base, "GET", "/dashboard/api/summary", token=password)
    assert status == 200 and "demo-chat" in body["tasks"], body


def test_the_commands_find_the_running_stack_from_any_folder(stack: DevStack,
                                                            tmp_path: Path) -> None:
    env = shell_env(stack.state_dir)  # no CHATWORKER_REDIS_URL, no secret, another folder

    code, out = chatworker("chat", "hello from another folder", cwd=tmp_path, env=env)
    assert code == 0 and "[error" not in out and out.strip(), out

    code, out = chatworker("token", "demo-chat", cwd=tmp_path, env=env)
    assert code == 0, out
    status, body, _ = call(stack.base, "POST", "/api/chat/tasks/demo-chat/runs", token=out.strip(),
                           body={"chatId": "from-a-token", "messages": [user_message("hi")]})
    assert status == 201, body

    code, out = chatworker("runs", cwd=tmp_path, env=env)
    assert code == 0, out
    assert any("demo-chat" in line and "from-a-token" in line for line in out.splitlines()), out

    state_file = stack.state_dir / "dev.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600  # it holds the signing secret

    # The environment wins over the file: a Redis named there is the one asked.
    code, out = chatworker("runs", cwd=tmp_path, env={
        **env, "CHATWORKER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert code != 0 and "unreachable" in out, out


def test_a_killed_worker_is_restarted_and_the_reply_still_comes(stack: DevStack) -> None:
    [worker] = stack.workers()
    status, created, _ = call(stack.base, "POST", "/api/chat/tasks/demo-chat/runs",
                              token=stack.trigger_token(),
                              body={"chatId": "killed-worker",
                                    "messages": [user_message("say something long")]})
    assert status == 201, created
    chunks: list[dict[str, Any]] = []
    with SSEClient(stack.base, f"/api/chat/runs/{created['runId']}/stream", timeout=90,
                   headers={"Authorization": f"Bearer {created['publicAccessToken']}"}) as sse:
        assert sse.status == 200
        for event in sse.events():
            chunks.append(event.json())
            if chunks[-1]["type"] == "text-delta" and alive(worker):
                os.kill(worker, signal.SIGKILL)  # mid-reply
            if chunks[-1]["type"] == "__turn_complete":
                break
    kinds = [c["type"] for c in chunks]
    assert "__turn_complete" in kinds, (kinds, stack.log()[-3000:])
    assert "abort" in kinds, kinds  # the interrupted reply was closed ...
    assert "text-delta" in kinds[kinds.index("abort"):], kinds  # ... and answered again
    assert f"the worker (pid {worker}) exited (killed by SIGKILL); starting a new worker" in (
        stack.log())
    [new_worker] = poll(stack.workers, "no worker runs after the restart")
    assert new_worker != worker


def test_ctrl_c_stops_everything_within_seconds_quietly(stack: DevStack) -> None:
    status, created, _ = call(stack.base, "POST", "/api/chat/tasks/demo-chat/runs",
                              token=stack.trigger_token(),
                              body={"chatId": "ctrl-c", "messages": [user_message("go on")]})
    assert status == 201, created
    with SSEClient(stack.base, f"/api/chat/runs/{created['runId']}/stream", timeout=60,
                   headers={"Authorization": f"Bearer {created['publicAccessToken']}"}) as sse:
        next(e for e in sse.events() if e.json()["type"] == "text-delta")  # a reply streams
        children = descendants(stack.proc.pid)
        assert len(children) >= 4, children  # Redis, the model, the worker, gunicorn (+ its worker)
        stack.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10  # the promise: everything ends within 10 s
        while stack.proc.poll() is None or any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, (
                {pid: cmd for pid, cmd in children.items() if alive(pid)}, stack.log()[-3000:])
            time.sleep(0.1)
    assert stack.proc.returncode == 0
    log = stack.log()
    assert "Traceback" not in log, log[-5000:]
    assert not (stack.state_dir / "dev.json").exists()  # nothing left claims a running stack
