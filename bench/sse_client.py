"""A tiny HTTP/1.1 + Server-Sent Events client over plain sockets.

Cheap enough to hold a thousand streams in one gevent process, and exact enough for latency
probes: no library buffering sits between the socket and the moment an event is parsed. It works
on blocking sockets, and under gevent monkey-patching the same code is cooperative.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


class HttpError(RuntimeError):
    """An unexpected status, a malformed response, or a connection that ended too early."""


@dataclass
class Event:
    """One SSE event: its ``data`` (bytes, several ``data:`` lines joined) and ``id``."""

    data: bytes
    id: bytes | None = None
    at: float = 0.0

    def json(self) -> Any:
        """The data parsed as JSON (``None`` for ``[DONE]``)."""
        if self.data == b"[DONE]":
            return None
        return json.loads(self.data)


@dataclass
class _Body:
    """Incremental decoder of a chunked (or close-delimited) response body."""

    chunked: bool
    raw: bytearray = field(default_factory=bytearray)
    ended: bool = False

    def feed(self, data: bytes) -> bytes:
        if not self.chunked:
            return data
        self.raw += data
        out = bytearray()
        pos = 0
        raw = self.raw
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(raw[pos:eol]).split(b";", 1)[0] or b"0", 16)
            if size == 0:
                self.ended = True
                pos = len(raw)
                break
            end = eol + 2 + size
            if len(raw) < end + 2:
                break
            out += raw[eol + 2 : end]
            pos = end + 2
        del raw[:pos]
        return bytes(out)


class Connection:
    """One request on its own TCP connection, its response read incrementally.

    ``request()`` sends (and returns at once); ``head()`` reads the status line and headers;
    ``events()`` yields SSE events as they arrive, ``body()`` reads a whole (JSON) body.
    """

    def __init__(self, host: str, port: int, timeout: float | None = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = host
        self.port = port
        self.status = 0
        self.headers: dict[str, str] = {}
        self._buf = b""
        self._body: _Body | None = None
        self._length: int | None = None
        self._sse = b""
        self._ready: list[Event] = []
        self.closed = False

    # -- sending --------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send one request (a ``body`` that is not bytes is sent as JSON)."""
        data = b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            lines.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(data)}")
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)

    # -- reading --------------------------------------------------------------------------------
    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
        return data

    def head(self) -> int:
        """Read the status line and headers; returns the status."""
        while b"\r\n\r\n" not in self._buf:
            data = self._recv()
            if not data:
                raise HttpError("connection closed before the response head")
            self._buf += data
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if "content-length" in self.headers:
            self._length = int(self.headers["content-length"])
        self._body = _Body(chunked)
        self._buf = b""
        self._pending = self._body.feed(rest)
        return self.status

    def _more(self) -> bytes:
        """The next decoded piece of the body (``b""`` once it is over)."""
        assert self._body is not None
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        while not self._body.ended and not self.closed:
            raw = self._recv()
            if not raw:
                break
            data = self._body.feed(raw)
            if data:
                return data
        return b""

    def body(self) -> bytes:
        """The whole response body (after :meth:`head`)."""
        out = bytearray()
        while True:
            if self._length is not None and len(out) >= self._length:
                return bytes(out[: self._length])
            data = self._more()
            if not data:
                return bytes(out)
            out += data

    def json(self, expect: int | tuple[int, ...] = (200, 201, 202)) -> Any:
        """Read head and body; the body parsed as JSON. Raises on an unexpected status."""
        status = self.head()
        data = self.body()
        wanted = (expect,) if isinstance(expect, int) else expect
        if status not in wanted:
            raise HttpError(f"HTTP {status}: {data[:300]!r}")
        return json.loads(data) if data else None

    def next_events(self) -> list[Event]:
        """Block until at least one SSE event (or the end); ``[]`` means the stream ended.

        Comments are skipped. Each event carries the time (``time.monotonic``) it was parsed.
        """
        while True:
            events = self._parse()
            if events:
                return events
            data = self._more()
            if not data:
                return []
            self._sse += data

    def next_event(self) -> Event | None:
        """The next SSE event, one at a time (``None`` once the stream ended)."""
        if not self._ready:
            self._ready = self.next_events()
            if not self._ready:
                return None
            self._ready.reverse()
        return self._ready.pop()

    def _parse(self) -> list[Event]:
        buf = self._sse
        if b"\n\n" not in buf:
            return []
        blocks = buf.split(b"\n\n")
        self._sse = blocks.pop()
        now = time.monotonic()
        out = []
        for block in blocks:
            if block.startswith(b":"):
                continue
            event_id = None
            data: list[bytes] = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[6:] if line[5:6] == b" " else line[5:])
                elif line.startswith(b"id:"):
                    event_id = line[3:].strip()
            if data:
                out.append(Event(b"\n".join(data), event_id, now))
        return out

    def wait_open(self) -> None:
        """Read until the first SSE comment (``: stream open``) so the stream is subscribed."""
        while b"\n\n" not in self._sse:
            data = self._more()
            if not data:
                raise HttpError("stream closed before it opened")
            self._sse += data
        if self._sse.startswith(b":"):
            self._sse = self._sse.split(b"\n\n", 1)[1]

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def chunk_type(event: Event) -> str:
    """The ``type`` of a UI message chunk event, found without a full JSON parse."""
    data = event.data
    start = data.find(b'"type":"')
    if start < 0:
        return ""
    start += 8
    return data[start : data.find(b'"', start)].decode()
