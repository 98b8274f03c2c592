"""The README is true: its Python examples define working chat tasks (they run on import, like
user code), every setting is documented, and its ``curl`` examples work against
``chatworker dev``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chatworker import ChatTask
from chatworker.engine import registry

from .support import free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_task_examples_define_tasks_with_hooks() -> None:
    blocks = [b for b in python_blocks() if "@chat.task" in b]
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {"db": SimpleNamespace(create_chat=print, save=print),
                                 "run_agent_loop": print}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # our own docs
    for task_id in ("my-chat", "agent-chat", "persisted-chat", "tuned-chat"):
        task = registry.get_task(task_id)
        assert isinstance(task, ChatTask)
    persisted = registry.get_task("persisted-chat")
    assert isinstance(persisted, ChatTask)
    assert all(persisted.hooks[h] for h in ("on_chat_start", "on_turn_start", "on_turn_complete"))
    assert persisted.client_data_schema is not None


def test_readme_documents_every_setting_the_code_reads() -> None:
    text = README.read_text()
    root = README.parent
    used: set[str] = set()
    for path in [*root.glob("chatworker/**/*.py"), root / "web" / "app.py"]:
        used |= set(re.findall(r"\"(CHATWORKER_[A-Z_]+)\"", path.read_text()))
    missing = sorted(name for name in used if f"`{name}`" not in text)
    assert not missing, f"settings read by the code but not in the README table: {missing}"


# -- the HTTP API's curl examples, run as written against `chatworker dev` -------------------------


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def curl_commands() -> list[str]:
    """Every ``curl`` command of the README's shell blocks, continuation lines joined, in order."""
    commands = []
    for block in sh_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("curl "):
                commands.append(line.strip())
    return commands


def trigger_token_command() -> str:
    """The README's ``TRIGGER=$(...)`` (inline code), run as written."""
    match = re.search(r"`(TRIGGER=\$\([^`]*\))`", README.read_text())
    assert match, "the README no longer says how to get a trigger token for curl"
    return match.group(1)


@contextmanager
def chatworker_dev(cwd: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``chatworker dev`` in ``cwd`` on free ports, with a user's environment (no key, no
    secret, no Redis URL: it starts its own Redis and the offline demo model), its state file
    in a folder of this test."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("CHATWORKER_", "OPENAI_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CHATWORKER_DEV_REDIS_PORT"] = str(free_port())
    env["CHATWORKER_STATE_DIR"] = str(cwd / "state")
    port = free_port()
    log_path = cwd / "dev.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "chatworker.cli", "dev", "--port", str(port),
                             "--no-build"], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"chatworker dev is running" not in log_path.read_bytes():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield port, env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def run_curl(command: str, env: dict[str, str]) -> tuple[int, str, int]:
    """Run one README command in bash; returns (HTTP status, body, curl's exit code)."""
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                          timeout=60)
    body, _, status = done.stdout.rstrip("\n").rpartition("\n")
    assert status.isdigit(), (command, done.stdout, done.stderr)
    return int(status), body, done.returncode


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_readme_curl_examples_work_against_chatworker_dev(tmp_path: Path) -> None:
    commands = curl_commands()
    assert len(commands) >= 4, commands
    with chatworker_dev(tmp_path) as (port, env):
        token = subprocess.run(["bash", "-c", f'{trigger_token_command()} && echo "$TRIGGER"'],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert token.returncode == 0 and token.stdout.strip(), token.stderr
        # curl as the reader runs it, plus its status on the last line (a curlrc, so each
        # command runs exactly as written); the stream is read for a few seconds.
        (tmp_path / ".curlrc").write_text('write-out = "\\n%{http_code}\\n"\nmax-time = 5\n')
        shell = {**env, "CURL_HOME": str(tmp_path), "TRIGGER": token.stdout.strip()}
        for command in commands:
            # The README's dev stack serves on port 8000; this one on a free port.
            command = command.replace("localhost:8000", f"localhost:{port}")
            status, body, code = run_curl(command, shell)
            assert 200 <= status < 300, (command, status, body)
            if "/stream" in command:
                assert code in (0, 28), (command, code)  # 28: read until max-time
                assert '"type":"start"' in body.replace(" ", ""), body
                continue
            assert code == 0, (command, code, body)
            reply = json.loads(body)
            if "runId" in reply:  # the trigger: the README says to set RUN and RUN_TOKEN
                shell["RUN"], shell["RUN_TOKEN"] = reply["runId"], reply["publicAccessToken"]
    assert "RUN" in shell, "no curl example started a run"
