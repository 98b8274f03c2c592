"""The processes a benchmark runs, and what ``/proc`` says about them.

Redis, the celery worker and the chatworker gateway are started with the test suite's helpers
(``tests/support.py``, ``tests/gateway/conftest_helpers.py``); the baseline app, the scripted
model server and the load generator are started here the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.gateway.conftest_helpers import Gunicorn
from tests.support import ARTIFACTS, ROOT, RedisServer, Worker

__all__ = [
    "ROOT",
    "App",
    "Cpu",
    "ModelProcess",
    "RedisServer",
    "Worker",
    "bench_env",
    "child_pids",
    "cpu_seconds",
    "rss_bytes",
]

_TICK = os.sysconf("SC_CLK_TCK")


def bench_env(redis_url: str, model_url: str, **extra: str) -> dict[str, str]:
    """The environment every chatworker process of the benchmark shares."""
    env = dict(os.environ)
    env.update(
        {
            "CHATWORKER_REDIS_URL": redis_url,
            # The benchmark's own Redis is its broker too, whatever the shell names.
            "CHATWORKER_BROKER_URL": redis_url,
            "CHATWORKER_SECRET_KEY": os.environ.get("CHATWORKER_SECRET_KEY")
            or "bench-" + uuid.uuid4().hex,
            "CHATWORKER_TASKS": "bench.tasks",
            "OPENAI_BASE_URL": model_url,
            "OPENAI_API_KEY": "bench",
            "PYTHONUNBUFFERED": "1",
            "CHATWORKER_LOG_LEVEL": "WARNING",
        }
    )
    env.pop("CHATWORKER_DEV", None)
    env.update(extra)
    return env


class App(Gunicorn):
    """``gunicorn -k gevent -w 1`` serving ``app`` (the chatworker gateway by default)."""

    def __init__(self, env: dict[str, str], *, name: str, app: str = "web.app:create_app()"):
        super().__init__(env, name=name, workers=1, app=app)

    @property
    def worker_pid(self) -> int:
        """The pid of the one gunicorn worker process (the one serving requests)."""
        assert self.proc is not None
        children = child_pids(self.proc.pid)
        if not children:
            raise RuntimeError("gunicorn has no worker process")
        return children[0]


class ModelProcess:
    """``python -m bench.model``: the scripted model server in its own gevent process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> ModelProcess:
        ARTIFACTS.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.model"], env=self.env, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"model server did not start: {line}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        """The OpenAI ``base_url`` of the server."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group of ``proc`` (started with a new session), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if path.exists():
        return [int(p) for p in path.read_text().split()]
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Cpu:
    """CPU seconds of a set of named processes, sampled over time."""

    pids: dict[str, int]

    def sample(self) -> tuple[float, dict[str, float]]:
        """``(monotonic time, {name: cpu seconds})``."""
        return time.monotonic(), {name: cpu_seconds(pid) for name, pid in self.pids.items()}


def log_tail(stream: IO[str] | None, limit: int = 3000) -> str:
    """What a finished child printed (for error messages)."""
    if stream is None:
        return ""
    try:
        return stream.read()[-limit:]
    except (OSError, ValueError):
        return ""
