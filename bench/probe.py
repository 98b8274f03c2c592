"""Latency probes, one request at a time: time to first chunk and stop latency.

Every probe starts its clock just before it connects to send its POST and stops it when the
chunk is parsed off the SSE socket: the cost of connecting is in every figure alike. Blocking
sockets in one thread, nothing else running in the process: the probe adds no scheduling noise.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from chatworker import tokens
from chatworker.store import keys

from .sse_client import Connection, Event, HttpError, chunk_type

PREFIX = "/api/chat"
FAST = "bench:fast"


def message(text: str) -> dict[str, Any]:
    """A user UI message."""
    return {"id": uuid.uuid4().hex[:16], "role": "user", "parts": [{"type": "text", "text": text}]}


@dataclass
class Timing:
    """When the first ``start`` chunk and the first text delta arrived, after ``t0``."""

    start: float
    token: float


def read_to(conn: Connection, t0: float, until: str, limit: float = 30.0) -> tuple[Timing, str]:
    """Read ``conn`` until a chunk of type ``until``; the first chunk times and the last id."""
    first_start = first_token = -1.0
    last_id = ""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        event = conn.next_event()
        if event is None:
            raise HttpError(f"stream ended before {until!r}")
        kind = _kind(event)
        if event.id:
            last_id = event.id.decode()
        if kind == "start" and first_start < 0:
            first_start = event.at - t0
        elif kind == "text-delta" and first_token < 0:
            first_token = event.at - t0
        if kind == until or kind == "__run_end":
            if kind != until:
                raise HttpError(f"run ended before {until!r}: {event.data[:200]!r}")
            return Timing(first_start, first_token), last_id
    raise HttpError(f"no {until!r} within {limit}s")


def _kind(event: Event) -> str:
    return "[DONE]" if event.data == b"[DONE]" else chunk_type(event)


@dataclass
class Chat:
    """A run the probes drive, with its SSE stream kept open between turns."""

    run_id: str
    token: str
    chat_id: str
    stream: Connection | None = None
    last_id: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Prober:
    """Drives probes against one chatworker gateway and one baseline app."""

    host: str
    gateway_port: int
    baseline_port: int
    redis: redis.Redis[str]
    trigger_tokens: dict[str, str] = field(default_factory=dict)

    # -- plumbing ----------------------------------------------------------------------------
    def _conn(self, port: int | None = None) -> Connection:
        return Connection(self.host, port or self.gateway_port)

    def trigger_token(self, task: str) -> str:
        if task not in self.trigger_tokens:
            self.trigger_tokens[task] = tokens.create_trigger_token(task, multiple_use=True)
        return self.trigger_tokens[task]

    def trigger(self, task: str, text: str) -> Chat:
        """``POST /tasks/<task>/runs`` (reads the 201)."""
        chat_id = "bench-" + uuid.uuid4().hex[:12]
        conn = self._conn()
        try:
            conn.request(
                "POST",
                f"{PREFIX}/tasks/{task}/runs",
                body={"chatId": chat_id, "messages": [message(text)]},
                headers={"Authorization": f"Bearer {self.trigger_token(task)}"},
            )
            data = conn.json(201)
        finally:
            conn.close()
        return Chat(data["runId"], data["publicAccessToken"], chat_id)

    def open_stream(self, chat: Chat) -> None:
        """Open the run's SSE stream after its last seen entry."""
        conn = self._conn()
        headers = dict(chat.auth)
        if chat.last_id:
            headers["Last-Event-ID"] = chat.last_id
        conn.request("GET", f"{PREFIX}/runs/{chat.run_id}/stream?timeout=600", headers=headers)
        if conn.head() != 200:
            raise HttpError(f"stream: HTTP {conn.status} {conn.body()[:200]!r}")
        conn.wait_open()
        chat.stream = conn

    def post_message(self, chat: Chat, text: str) -> Connection:
        """Send a message; the 202 is left unread (read it after the chunks)."""
        conn = self._conn()
        conn.request(
            "POST",
            f"{PREFIX}/runs/{chat.run_id}/input/messages",
            body={"chatId": chat.chat_id, "messages": [message(text)]},
            headers=chat.auth,
        )
        return conn

    def stop_turn(self, chat: Chat) -> None:
        """``POST /runs/<id>/input/stop`` (reads the 202)."""
        conn = self._conn()
        try:
            conn.request(
                "POST",
                f"{PREFIX}/runs/{chat.run_id}/input/stop",
                body={"stop": True},
                headers=chat.auth,
            )
            conn.json(202)
        finally:
            conn.close()

    def cancel(self, chat: Chat) -> None:
        """``POST /runs/<id>/cancel`` (reads the 202): the run ends, its slot is freed."""
        conn = self._conn()
        try:
            conn.request("POST", f"{PREFIX}/runs/{chat.run_id}/cancel", headers=chat.auth)
            conn.json(202)
        finally:
            conn.close()

    def status(self, chat: Chat) -> str:
        return str(self.redis.hget(keys.run(chat.run_id), "status") or "")

    def wait_status(self, chat: Chat, wanted: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.status(chat) != wanted:
            if time.monotonic() > deadline:
                raise HttpError(f"run {chat.run_id} never became {wanted!r}")
            time.sleep(0.002)

    def new_chat(self, task: str) -> Chat:
        """A run whose first turn is over, stream open, waiting (warm or suspended)."""
        chat = self.trigger(task, FAST)
        self.open_stream(chat)
        assert chat.stream is not None
        _, chat.last_id = read_to(chat.stream, time.monotonic(), "__turn_complete")
        return chat

    # -- the probes ------------------------------------------------------------------------------
    def baseline(self) -> Timing:
        """(a) ``POST /baseline`` → first chunks of its response."""
        t0 = time.monotonic()
        conn = self._conn(self.baseline_port)
        try:
            conn.request("POST", "/baseline", body={"messages": [message(FAST)]})
            if conn.head() != 200:
                raise HttpError(f"baseline: HTTP {conn.status}")
            timing, _ = read_to(conn, t0, "[DONE]")
        finally:
            conn.close()
        return timing

    def turn_on_open_stream(self, chat: Chat, waiting: str) -> Timing:
        """(b)/(d) the run is ``waiting`` (warm) or ``suspended`` and its stream is open:
        ``POST`` a message → first chunks of the turn."""
        self.wait_status(chat, waiting)
        assert chat.stream is not None
        t0 = time.monotonic()
        post = self.post_message(chat, FAST)
        try:
            timing, chat.last_id = read_to(chat.stream, t0, "__turn_complete")
            post.json(202)
        finally:
            post.close()
        return timing

    def cold(self) -> Timing:
        """(c) ``POST /tasks/<task>/runs``, then its stream → first chunks of the new run."""
        t0 = time.monotonic()
        chat = self.trigger("bench-suspend", FAST)
        try:
            self.open_stream(chat)
            assert chat.stream is not None
            timing, _ = read_to(chat.stream, t0, "__turn_complete")
        finally:
            if chat.stream is not None:
                chat.stream.close()
        return timing

    def stop(self, chat: Chat, silence: float = 0.05) -> float:
        """Stop latency: the model is silent mid-answer; ``POST stop`` → the ``abort`` chunk."""
        self.wait_status(chat, "waiting")
        assert chat.stream is not None
        post = self.post_message(chat, "bench:silent")
        try:
            read_to(chat.stream, time.monotonic(), "text-delta")
            post.json(202)
        finally:
            post.close()
        time.sleep(silence)
        t0 = time.monotonic()
        stop = self._conn()
        try:
            stop.request(
                "POST",
                f"{PREFIX}/runs/{chat.run_id}/input/stop",
                body={"stop": True},
                headers=chat.auth,
            )
            read_to(chat.stream, t0, "abort")
            elapsed = time.monotonic() - t0
            stop.json(202)
        finally:
            stop.close()
        _, chat.last_id = read_to(chat.stream, t0, "__turn_complete")
        return elapsed
