"""A real HTTP server speaking the OpenAI Chat Completions API, with scripted replies.

Tests point the real ``openai`` client at it::

    with ModelServer() as server:
        server.on("weather", [ToolCall("get_weather", {"city": "Oslo"})], once=True)
        server.on("weather", [Text("Sunny in Oslo.")])
        model = openai("any-model", base_url=server.base_url)

A reply may depend on the request: ``server.on("book", call_then_report(ToolCall("book",
{...})))`` calls the tool, then, once the request ends with its result (or a denial), answers
``Got book: <what the tool message said>``.

Run it standalone with ``python -m chatworker.testing.model_server --port 8900 [--demo]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .demo_model import demo_reply
from .responder import ClientGone, Responder
from .script import (
    ReplySource,
    Rule,
    Step,
    Text,
)

__all__ = ["ModelServer", "StreamRecord", "main"]

log = logging.getLogger("chatworker.testing.model_server")

DEFAULT_REPLY: list[Step] = [Text("Hello! I am a scripted model.")]


@dataclass
class StreamRecord:
    """One chat completion response: when it ran and how it ended."""

    body: dict[str, Any]
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    outcome: str = "open"
    """``open``, ``completed``, ``client-closed`` (the client hung up), ``disconnected``
    (a scripted Disconnect) or ``error`` (a scripted HTTP error)."""
    closed: threading.Event = field(default_factory=threading.Event)

    def end(self, outcome: str) -> None:
        """Mark the response finished with ``outcome``."""
        if self.ended_at is None:
            self.outcome = outcome
            self.ended_at = time.monotonic()
            self.closed.set()


class ModelServer:
    """An OpenAI-compatible Chat Completions server in a daemon thread, replying from scripts."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        demo: bool = False,
        default_reply: ReplySource | None = None,
        tokens_per_second: float | None = None,
        demo_tokens_per_second: float | None = 30.0,
        model_ids: Sequence[str] = ("scripted-model",),
    ) -> None:
        self.host = host
        self.port = port
        self.demo = demo
        self.tokens_per_second = tokens_per_second
        self.model_ids = list(model_ids)
        if default_reply is None and demo:
            def default_reply(body: dict[str, Any]) -> Sequence[Step]:
                return demo_reply(body, demo_tokens_per_second)

        self.default_reply: ReplySource = default_reply or DEFAULT_REPLY
        self.rules: list[Rule] = []
        self.requests: list[dict[str, Any]] = []
        """Every chat completion request body, in arrival order."""
        self.streams: list[StreamRecord] = []
        """Every chat completion response, in arrival order."""
        self.client_disconnected = threading.Event()
        """Set whenever a client hangs up before its response was complete."""
        self.open_connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> ModelServer:
        """Bind and serve in a daemon thread; returns self."""
        handler = type("Handler", (_Handler,), {"model_server": self})
        self._httpd = _HTTPServer((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; responses in progress end at their next write or pause."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ModelServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` for clients, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    # ---------------------------------------------------------------- scripting

    def on(
        self,
        match: str | re.Pattern[str] | Callable[[dict[str, Any]], bool] | None = None,
        reply: ReplySource = (),
        *,
        once: bool = False,
        times: int | None = None,
    ) -> Rule:
        """Answer requests whose last user message contains ``match`` (or matches the regex or
        predicate over the request body; None matches all) with ``reply``. First match wins."""
        rule = Rule(match, reply, 1 if once else times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def reset(self) -> None:
        """Forget rules, recorded requests and streams."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.streams.clear()
        self.client_disconnected.clear()

    def reply_for(self, body: dict[str, Any]) -> list[Step]:
        """The steps answering ``body``: the first matching rule, else the default reply."""
        with self._lock:
            rule = next((r for r in self.rules if r.matches(body)), None)
            if rule is not None:
                return rule.take(body)
        default = self.default_reply
        return list(default(body) if callable(default) else default)

    # ---------------------------------------------------------------- observing

    @property
    def active_streams(self) -> int:
        """How many chat completion responses are still being sent."""
        return sum(1 for record in self.streams if not record.closed.is_set())

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no response is in progress; True if that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.active_streams:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def _record(self, body: dict[str, Any]) -> StreamRecord:
        record = StreamRecord(body)
        with self._lock:
            self.requests.append(body)
            self.streams.append(record)
        return record


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("model server: connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model_server: ModelServer

    def setup(self) -> None:
        super().setup()
        with self.model_server._lock:
            self.model_server.open_connections += 1

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.model_server._lock:
            self.model_server.open_connections -= 1

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # ---------------------------------------------------------------- routing

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            data = [
                {"id": model_id, "object": "model", "created": 0, "owned_by": "chatworker"}
                for model_id in self.model_server.model_ids
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"Unknown path {self.path}", "invalid_request_error")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error(404, f"Unknown path {self.path}", "invalid_request_error")
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("'messages' must be a list")
        except ValueError as exc:
            self._send_error(400, f"Invalid request body: {exc}", "invalid_request_error")
            return
        server = self.model_server
        record = server._record(body)
        steps = server.reply_for(body)
        try:
            if body.get("stream"):
                outcome = Responder(self, body, steps).stream()
            else:
                outcome = Responder(self, body, steps).complete()
        except ClientGone:
            outcome = "client-closed"
            server.client_disconnected.set()
            self.close_connection = True
        except OSError:
            outcome = "client-closed"
            server.client_disconnected.set()
            self.close_connection = True
        record.end(outcome)

    # ---------------------------------------------------------------- helpers

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        error = {"message": message, "type": kind, "param": None, "code": None}
        self._send_json(status, {"error": error}, headers)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: serve until interrupted."""
    parser = argparse.ArgumentParser(description="An OpenAI-compatible scripted model server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--demo", action="store_true", help="answer any chat (offline demo)")
    parser.add_argument(
        "--tokens-per-second", type=float, default=30.0, help="demo streaming rate (default 30)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = ModelServer(
        args.port, args.host, demo=args.demo, demo_tokens_per_second=args.tokens_per_second
    ).start()
    mode = "demo" if args.demo else "scripted (default reply only)"
    print(f"Model server ({mode}) at {server.base_url}  (OPENAI_BASE_URL={server.base_url})")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
