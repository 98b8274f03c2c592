"""py-spy recordings of a process under load, summarised as its hottest functions."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path


class Recording:
    """A ``py-spy record`` started after a delay, in the background."""

    def __init__(self, pid: int, delay: float, duration: float, path: Path) -> None:
        self.pid = pid
        self.path = path
        self.error = ""
        self._thread = threading.Thread(target=self._run, args=(delay, duration), daemon=True)
        self._thread.start()

    def _run(self, delay: float, duration: float) -> None:
        time.sleep(delay)
        exe = shutil.which("py-spy")
        if exe is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return
        proc = subprocess.run(
            [exe, "record", "--pid", str(self.pid), "--duration", str(int(duration)),
             "--rate", "200", "--gil", "--format", "raw", "--output", str(self.path)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            self.error = proc.stderr[-500:]

    def result(self, top: int = 25) -> list[tuple[str, float]]:
        """The ``top`` functions by share of samples in which they are on the stack."""
        self._thread.join()
        if self.error or not self.path.exists():
            return [(f"(no profile: {self.error.strip() or 'py-spy failed'})", 0.0)]
        return summarize(self.path.read_text(), top)


def record(pid: int, delay: float, duration: float, path: Path) -> Recording:
    """Record ``pid`` for ``duration`` seconds, starting ``delay`` seconds from now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return Recording(pid, delay, duration, path)


def _function(frame: str) -> str:
    """``name (path/to/module.py:123)`` → ``name (module.py)``."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = file.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({short})"


#: Frames every sample of a process shares (start-up, task tracing): they say nothing.
_BORING = (
    "click/",
    "runpy",
    "celery/bin",
    "bootsteps",
    "celery/app/trace",
    "concurrency/",
    "gunicorn/arbiter",
    "app/base.py",
    "app/wsgiapp",
    "threading.py",
    "gunicorn/__main__",
    "celery/__main__",
    "workers/base.py",
    "gevent/baseserver",
    "workers/ggevent",
    "chatworker/chat_task",
    "execute (chatworker/lifecycle",
    "ChatRun.live",
    "execute_chat",
)


def summarize(raw: str, top: int = 25) -> list[tuple[str, float]]:
    """Inclusive share (%) of samples per function from py-spy's raw (collapsed) output,
    start-up and tracing frames left out."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for function in {_function(frame) for frame in stack.split(";")}:
            inclusive[function] += count
    if not total:
        return []
    ranked = [(n, c) for n, c in inclusive.most_common() if not any(b in n for b in _BORING)]
    return [(name, 100.0 * count / total) for name, count in ranked[:top]]
