"""A private RabbitMQ broker for the tests: Debian's ``rabbitmq-server`` on free ports.

Everything it writes (database, logs, Erlang cookie) lives in a temporary folder, it has its
own Erlang port mapper (epmd) on a free port, no plugins, and one virtual host per Redis
database a test isolates itself in (``db0`` ... ``db15``) plus ``engine``, so two workers on
two databases never take each other's messages. It runs as whoever runs the tests: the
packaged wrapper (which switches to the ``rabbitmq`` user) is bypassed.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import amqp

from .support import ARTIFACTS, free_port

#: The virtual hosts every broker has: one per Redis database, and one for the engine worker.
VHOSTS = [f"db{n}" for n in range(16)] + ["engine"]
USER, PASSWORD = "chatworker", "chatworker-test"


def rabbitmq_server_binary() -> str:
    """The server script itself (``/usr/sbin/rabbitmq-server`` would switch user as root)."""
    found = sorted(glob.glob("/usr/lib/rabbitmq/bin/rabbitmq-server"))
    found += sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"))
    if not found:
        raise RuntimeError("no rabbitmq-server: install Debian's rabbitmq-server package")
    return found[0]


def _password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` of ``password``."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class RabbitMQServer:
    """A throwaway RabbitMQ node: :meth:`start` waits until it takes connections."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cw-rabbitmq-"))
        self.node = f"cw{self.port}@localhost"
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"rabbitmq-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, vhost: str = "engine") -> str:
        """The broker URL of one of its virtual hosts."""
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{vhost}"

    def url_for_db(self, db: int) -> str:
        """The virtual host kept for the tests isolated in Redis database ``db``."""
        return self.url(f"db{db}")

    def _configure(self) -> dict[str, str]:
        definitions = {
            "users": [{"name": USER, "password_hash": _password_hash(PASSWORD),
                       "hashing_algorithm": "rabbit_password_hashing_sha256",
                       "tags": ["administrator"], "limits": {}}],
            "vhosts": [{"name": name} for name in VHOSTS],
            "permissions": [{"user": USER, "vhost": name, "configure": ".*", "write": ".*",
                             "read": ".*"} for name in VHOSTS],
        }
        (self.dir / "definitions.json").write_text(json.dumps(definitions))
        (self.dir / "rabbitmq.conf").write_text("\n".join([
            f"listeners.tcp.default = 127.0.0.1:{self.port}",
            f"load_definitions = {self.dir / 'definitions.json'}",
            "disk_free_limit.absolute = 1MB",
            "log.console = false",
            f"log.file = {self.dir / 'log' / 'rabbit.log'}",
            "",
        ]))
        (self.dir / "enabled_plugins").write_text("[].\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.dir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self.dir / "plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.dir / "feature_flags"),
        })
        return env

    def start(self, timeout: float = 90) -> RabbitMQServer:
        env = self._configure()
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child process keeps it open
        self.proc = subprocess.Popen(
            [rabbitmq_server_binary()], env=env, cwd=self.dir, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited ({self.proc.returncode}):\n"
                                   f"{self.log()[-3000:]}")
            try:
                conn = amqp.Connection(f"127.0.0.1:{self.port}", userid=USER, password=PASSWORD,
                                       virtual_host="engine", connect_timeout=2)
                conn.connect()
                conn.close()
                return self
            except Exception as exc:  # refused while booting, or the definitions not loaded
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"rabbitmq-server not ready in {timeout:.0f}s ({exc}):\n"
                                       f"{self.log()[-3000:]}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the node (SIGTERM is its clean shutdown), then the port mapper it started."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            self.proc = None
            epmd = shutil.which("epmd")
            if epmd:  # it outlives the node it served; only this port's one is asked to stop
                subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"],
                               capture_output=True, timeout=10, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        rabbit_log = self.dir / "log" / "rabbit.log"
        if rabbit_log.exists():
            text += rabbit_log.read_text(errors="replace")
        return text
