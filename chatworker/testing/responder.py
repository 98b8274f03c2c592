"""Plays one reply script onto one HTTP request of the scripted model server: streamed as
Chat Completions SSE chunks, or as one JSON completion."""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
import uuid
from typing import Any, Protocol

from .script import (
    Citation,
    Disconnect,
    Error,
    Finish,
    Reasoning,
    Seen,
    Silence,
    Step,
    Text,
    ToolCall,
    Usage,
    split_tokens,
)


class Settings(Protocol):
    """What the responder reads of its server."""

    @property
    def tokens_per_second(self) -> float | None: ...
    @property
    def _stopping(self) -> threading.Event: ...


class Channel(Protocol):
    """What the responder needs of the request handler it answers on."""

    close_connection: bool

    @property
    def model_server(self) -> Settings: ...
    @property
    def wfile(self) -> io.BufferedIOBase: ...
    @property
    def connection(self) -> socket.socket: ...

    def send_response(self, code: int, message: str | None = None) -> None: ...
    def send_header(self, keyword: str, value: str) -> None: ...
    def end_headers(self) -> None: ...
    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None: ...
    def _send_error(self, status: int, message: str, kind: str,
                    headers: dict[str, str] | None = None) -> None: ...


class ClientGone(Exception):
    """The client closed its connection."""


class Responder:
    """Plays one reply script onto one request, streaming (SSE) or as one JSON completion."""

    def __init__(self, handler: Channel, body: dict[str, Any], steps: list[Step]) -> None:
        self.handler = handler
        self.server = handler.model_server
        self.body = body
        self.steps = steps
        self.model = str(body.get("model") or "scripted-model")
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.completion_tokens = 0
        self.usage_override: Usage | None = None
        self.finish_override: str | None = None
        self.tool_calls = 0

    # ---------------------------------------------------------------- streaming

    def stream(self) -> str:
        steps = list(self.steps)
        while steps and isinstance(steps[0], Silence) and steps[0].before_headers:
            self._pause(steps[0].seconds)
            steps.pop(0)
        if steps and isinstance(steps[0], Error):
            self._http_error(steps[0])
            return "error"
        if steps and isinstance(steps[0], Disconnect):
            self._drop()
            return "disconnected"
        handler = self.handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        self._event({"role": "assistant", "content": ""})
        for step in steps:
            if isinstance(step, Disconnect):
                self._drop()
                return "disconnected"
            if isinstance(step, Error):
                error = {"message": step.message, "type": step.type or "server_error"}
                self._sse({"error": error})
                self._end_body()
                return "error"
            self._play(step, streaming=True)
        finish = self.finish_override or ("tool_calls" if self.tool_calls else "stop")
        self._sse(self._chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if (self.body.get("stream_options") or {}).get("include_usage"):
            self._sse(self._chunk([], usage=self._usage()))
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_body()
        return "completed"

    def _play(self, step: Step, *, streaming: bool, into: dict[str, Any] | None = None) -> None:
        if isinstance(step, Seen):
            step = Text(step.text(self.body))
        if isinstance(step, Text | Reasoning):
            key = "content" if isinstance(step, Text) else step.field
            rate = step.tokens_per_second or self.server.tokens_per_second
            for token in split_tokens(step.text):
                if rate and streaming:
                    self._pause(1.0 / rate)
                self.completion_tokens += 1
                if streaming:
                    self._event({key: token})
                elif into is not None:
                    into[key] = (into.get(key) or "") + token
        elif isinstance(step, ToolCall):
            self._play_tool_call(step, streaming, into)
        elif isinstance(step, Citation):
            annotation = {
                "type": "url_citation",
                "url_citation": {
                    "url": step.url,
                    "title": step.title or step.url,
                    "start_index": 0,
                    "end_index": 0,
                },
            }
            if streaming:
                self._event({"annotations": [annotation]})
            elif into is not None:
                into.setdefault("annotations", []).append(annotation)
        elif isinstance(step, Silence):
            self._pause(step.seconds)
        elif isinstance(step, Usage):
            self.usage_override = step
        elif isinstance(step, Finish):
            self.finish_override = step.reason

    def _play_tool_call(self, step: ToolCall, streaming: bool, into: dict[str, Any] | None) -> None:
        index = self.tool_calls
        self.tool_calls += 1
        call_id = step.id or f"call_{uuid.uuid4().hex[:24]}"
        arguments = step.arguments_text()
        self.completion_tokens += max(1, len(arguments) // 4)
        if not streaming:
            if into is not None:
                into.setdefault("tool_calls", []).append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": step.name, "arguments": arguments},
                    }
                )
            return
        head = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": step.name, "arguments": ""},
        }
        self._event({"tool_calls": [head]})
        size = max(1, step.fragment_size)
        for start in range(0, len(arguments), size):
            fragment = arguments[start : start + size]
            self._event({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    # ---------------------------------------------------------------- non-streaming

    def complete(self) -> str:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        for step in self.steps:
            if isinstance(step, Error):
                self._http_error(step)
                return "error"
            if isinstance(step, Disconnect):
                self._drop()
                return "disconnected"
            self._play(step, streaming=False, into=message)
        finish = self.finish_override or ("tool_calls" if self.tool_calls else "stop")
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        payload = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self._usage(),
        }
        self.handler._send_json(200, payload)
        return "completed"

    # ---------------------------------------------------------------- low level

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **({"usage": usage} if usage is not None else {}),
        }

    def _event(self, delta: dict[str, Any]) -> None:
        self._sse(self._chunk([{"index": 0, "delta": delta, "finish_reason": None}]))

    def _sse(self, payload: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        if self.server._stopping.is_set():
            raise ClientGone("server stopping")
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_body(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")

    def _usage(self) -> dict[str, Any]:
        override = self.usage_override or Usage()
        prompt = override.prompt_tokens
        if prompt is None:
            prompt = sum(len(str(m.get("content") or "").split()) for m in self.body["messages"])
        completion = override.completion_tokens
        if completion is None:
            completion = self.completion_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if override.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": override.reasoning_tokens}
        return usage

    def _http_error(self, step: Error) -> None:
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            429: "rate_limit_exceeded",
        }
        headers = {}
        if step.should_retry is not None:
            headers["x-should-retry"] = "true" if step.should_retry else "false"
        kind = step.type or kinds.get(step.status, "server_error")
        self.handler._send_error(step.status, step.message, kind, headers)

    def _drop(self) -> None:
        """Close the socket abruptly, mid-response."""
        self.handler.close_connection = True
        try:
            self.handler.wfile.flush()
            self.handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _pause(self, seconds: float) -> None:
        """Sleep, but notice at once if the client hangs up (raises ``ClientGone``)."""
        deadline = time.monotonic() + seconds
        sock = self.handler.connection
        poller = select.poll()  # not select(): it fails on descriptors above 1024
        poller.register(sock, select.POLLIN | select.POLLHUP)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.server._stopping.is_set():
                raise ClientGone("server stopping")
            if poller.poll(int(min(remaining, 0.25) * 1000)):
                try:
                    data = sock.recv(1, socket.MSG_PEEK)
                except OSError as exc:
                    raise ClientGone(str(exc)) from exc
                if not data:
                    raise ClientGone("client closed the connection")
                time.sleep(min(remaining, 0.01))
