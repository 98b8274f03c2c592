"""stream_text never raises: HTTP errors, timeouts, dropped connections, and prompt aborts."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import openai as openai_sdk
import pytest

from chatworker.ai import StreamTextResult, openai, stream_text, tool
from chatworker.ai.providers import OpenAIChatModel
from chatworker.signals import AbortController
from chatworker.testing import Disconnect, Error, ModelServer, Silence, Text, ToolCall
from chatworker.testing.checks import assert_valid_ui_stream, collapse_deltas

from .helpers import USER, types, ui

GENERIC = "The model request failed."


# ---------------------------------------------------------------------------- model errors


@pytest.mark.parametrize("status", [429, 500])
def test_http_error_before_first_byte(
    server: ModelServer, model: OpenAIChatModel, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    server.on("hello", [Error(status, "secret-internal-detail")])
    caplog.set_level(logging.ERROR, logger="chatworker.ai")
    result = stream_text(model=model, messages=USER)
    chunks = ui(result, message_id="m")
    assert chunks == [
        {"type": "start", "messageId": "m"},
        {"type": "error", "errorText": GENERIC},
        {"type": "finish", "finishReason": "error"},
    ]
    assert result.finish_reason == "error"
    assert result.text == ""
    assert isinstance(result.error, openai_sdk.APIStatusError)
    assert result.error.status_code == status
    records = [r for r in caplog.records if r.name == "chatworker.ai"]
    assert any("secret-internal-detail" in r.getMessage() and r.exc_info for r in records)


def test_on_error_text_is_used(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Error(503, "overloaded")])
    seen: list[BaseException] = []

    def on_error(exc: BaseException) -> str:
        seen.append(exc)
        return "The model is busy, try again."

    chunks = ui(stream_text(model=model, messages=USER), on_error=on_error)
    assert {"type": "error", "errorText": "The model is busy, try again."} in chunks
    assert isinstance(seen[0], openai_sdk.InternalServerError)


def test_on_error_that_raises_falls_back(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Error(500)])

    def on_error(exc: BaseException) -> str:
        raise ValueError("bad handler")

    chunks = ui(stream_text(model=model, messages=USER), on_error=on_error)
    assert {"type": "error", "errorText": GENERIC} in chunks


def test_rate_limit_is_retried_by_the_client_when_configured(server: ModelServer) -> None:
    server.on("hello", [Error(429, "slow down", should_retry=True)], once=True)
    server.on("hello", [Text("Second time lucky.")])
    retrying = openai("m", base_url=server.base_url, max_retries=1)
    result = stream_text(model=retrying, messages=USER)
    assert result.text == "Second time lucky."
    assert len(server.requests) == 2


def test_timeout_while_model_is_silent(server: ModelServer) -> None:
    server.on("hello", [Text("Partial answer"), Silence(5), Text(" never sent")])
    impatient = openai("m", base_url=server.base_url, max_retries=0, timeout=0.3)
    started = time.monotonic()
    result = stream_text(model=impatient, messages=USER)
    chunks = ui(result)
    assert time.monotonic() - started < 2
    assert types(collapse_deltas(chunks)) == [
        "start",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "error",
        "finish-step",
        "finish",
    ]
    assert chunks[-1] == {"type": "finish", "finishReason": "error"}
    assert isinstance(result.error, openai_sdk.APITimeoutError)
    assert result.text == "Partial answer"


def test_disconnect_mid_stream(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Text("Half a"), Disconnect()])
    result = stream_text(model=model, messages=USER)
    chunks = ui(result, on_error=lambda exc: f"lost: {type(exc).__name__}")
    assert types(chunks)[-4:] == ["text-end", "error", "finish-step", "finish"]
    assert chunks[-3] == {"type": "error", "errorText": "lost: APIConnectionError"}
    assert chunks[-1]["finishReason"] == "error"
    assert result.text == "Half a"
    assert result.response_messages == [
        {"role": "assistant", "content": [{"type": "text", "text": "Half a"}]}
    ]


def test_error_event_mid_stream(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Text("Start"), Error(500, "exploded")])
    result = stream_text(model=model, messages=USER)
    chunks = ui(result)
    assert types(chunks)[-3:] == ["error", "finish-step", "finish"]
    assert chunks[-3]["errorText"] == GENERIC
    # the same exception the openai SDK raises for an error event
    assert type(result.error) is openai_sdk.APIError
    assert result.error.message == "exploded"
    assert result.error.body == {"message": "exploded", "type": "server_error"}
    assert result.text == "Start"


def test_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = openai("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    chunks = ui(stream_text(model=nowhere, messages=USER))
    assert types(chunks) == ["start", "error", "finish"]


def test_unsupported_message_becomes_error_chunk(model: OpenAIChatModel) -> None:
    bad = [
        {
            "role": "user",
            "content": [{"type": "file", "data": "AA==", "mediaType": "application/zip"}],
        }
    ]
    chunks = ui(stream_text(model=model, messages=bad))
    assert types(chunks) == ["start", "error", "finish"]


# ---------------------------------------------------------------------------- abort


def abort_after_first_delta(
    result: StreamTextResult, controller: AbortController, reason: Any, delay: float = 0.1
) -> tuple[list[dict[str, Any]], float, float]:
    """Iterate; once text arrives, abort from another thread after ``delay``."""
    chunks: list[dict[str, Any]] = []
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        controller.abort(reason)

    for chunk in result.to_ui_message_stream():
        chunks.append(chunk)
        if chunk["type"] == "text-delta" and not fired:
            threading.Timer(delay, fire).start()
    ended = time.monotonic()
    assert fired, "abort never fired"
    return chunks, fired[0], ended


def test_abort_during_silence_closes_connection(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("hello", [Text("Partial words"), Silence(10), Text(" never")])
    controller = AbortController()
    result = stream_text(model=model, messages=USER, abort_signal=controller.signal)
    chunks, fired, ended = abort_after_first_delta(result, controller, "stop")
    assert ended - fired < 0.2
    assert chunks[-1] == {"type": "abort", "reason": "stop"}
    assert "finish" not in types(chunks) and "error" not in types(chunks)
    assert_valid_ui_stream(chunks)
    # the server saw the client hang up, promptly
    record = server.streams[-1]
    assert record.closed.wait(1)
    assert record.outcome == "client-closed"
    assert record.ended_at is not None and record.ended_at - fired < 0.2
    assert server.active_streams == 0
    assert result.text == "Partial words"
    assert result.aborted


def test_abort_reason_only_when_string(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Text("Partial"), Silence(10)])
    controller = AbortController()
    result = stream_text(model=model, messages=USER, abort_signal=controller.signal)
    chunks, _, _ = abort_after_first_delta(result, controller, ValueError("x"), delay=0.05)
    assert chunks[-1] == {"type": "abort"}


def test_abort_before_headers(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [Silence(1.0, before_headers=True), Text("late")])
    controller = AbortController()
    result = stream_text(model=model, messages=USER, abort_signal=controller.signal)
    threading.Timer(0.1, controller.abort, args=("stop",)).start()
    started = time.monotonic()
    chunks = ui(result)
    assert time.monotonic() - started < 0.4
    assert chunks == [{"type": "start"}, {"type": "abort", "reason": "stop"}]
    assert server.streams[-1].closed.wait(3)


def test_already_aborted_signal_makes_no_request(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    controller = AbortController()
    controller.abort("stop")
    result = stream_text(model=model, messages=USER, abort_signal=controller.signal)
    assert ui(result) == [{"type": "start"}, {"type": "abort", "reason": "stop"}]
    assert server.requests == []


def test_abort_during_tool_execution(server: ModelServer, model: OpenAIChatModel) -> None:
    server.on("hello", [ToolCall("slow", {}, id="c1")])
    controller = AbortController()

    def execute(args: dict[str, Any]) -> str:
        controller.abort("stop")
        return "finished anyway"

    result = stream_text(
        model=model,
        messages=USER,
        max_steps=3,
        abort_signal=controller.signal,
        tools={"slow": tool(parameters={"type": "object"}, execute=execute)},
    )
    chunks = ui(result)
    assert types(chunks)[-2:] == ["tool-output-available", "abort"]
    assert len(server.requests) == 1


def test_abort_under_gevent_monkey_patching() -> None:
    """The same abort guarantee with gevent's cooperative sockets (as in a gevent worker)."""
    script = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import json, time, gevent
        from chatworker.ai import openai, stream_text
        from chatworker.signals import AbortController
        from chatworker.testing import ModelServer, Silence, Text

        with ModelServer() as server:
            server.on("hello", [Text("Partial"), Silence(10)])
            model = openai("m", base_url=server.base_url, max_retries=0)
            controller = AbortController()
            result = stream_text(model=model, messages=[{"role": "user", "content": "hello"}],
                                 abort_signal=controller.signal)
            fired = []
            def fire():
                fired.append(time.monotonic())
                controller.abort("stop")
            chunks = []
            for chunk in result.to_ui_message_stream():
                chunks.append(chunk)
                if chunk["type"] == "text-delta" and not fired:
                    gevent.spawn_later(0.1, fire)
            ended = time.monotonic()
            server.streams[-1].closed.wait(2)
            print(json.dumps({"last": chunks[-1], "consumer": ended - fired[0],
                              "server": server.streams[-1].ended_at - fired[0],
                              "outcome": server.streams[-1].outcome, "text": result.text}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["last"] == {"type": "abort", "reason": "stop"}
    assert report["consumer"] < 0.2
    assert report["server"] < 0.2
    assert report["outcome"] == "client-closed"
    assert report["text"] == "Partial"
