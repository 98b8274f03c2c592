"""The scripted OpenAI-compatible model server, driven by the real openai client and raw HTTP."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai as openai_sdk
import pytest

from chatworker.ai import ToolCallOptions, openai, stream_text, tool
from chatworker.testing import (
    Citation,
    Disconnect,
    Error,
    ModelServer,
    Reasoning,
    Silence,
    Text,
    ToolCall,
    Usage,
)
from chatworker.testing.checks import assert_valid_ui_stream
from chatworker.testing.demo import DEMO_TOOLS, TimeArgs, WeatherArgs, get_time, get_weather
from chatworker.testing.demo_model import DEMO_PREFIX


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture()
def client(server: ModelServer) -> openai_sdk.OpenAI:
    return openai_sdk.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)


def chat(client: openai_sdk.OpenAI, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": text}], **kwargs
    )


def test_base_url_and_models(server: ModelServer, client: openai_sdk.OpenAI) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
    assert [m.id for m in client.models.list()] == ["scripted-model"]


def test_streaming_chunks(server: ModelServer, client: openai_sdk.OpenAI) -> None:
    server.on(
        "hi",
        [
            Reasoning("hmm"),
            Text("Hello you"),
            ToolCall("f", {"a": 1}, id="c1"),
            Citation("https://x.test", "X"),
            Usage(prompt_tokens=3, completion_tokens=4),
        ],
    )
    chunks = list(chat(client, "hi", stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == "Hello you"
    assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == "hmm"
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert calls[0].id == "c1" and calls[0].function.name == "f"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"a": 1}'
    annotations = [a for d in deltas for a in (d.model_extra or {}).get("annotations", [])]
    assert annotations[0]["url_citation"]["url"] == "https://x.test"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 7


def test_non_streaming_completion(server: ModelServer, client: openai_sdk.OpenAI) -> None:
    server.on(
        "hi", [Reasoning("hmm", field="reasoning"), Text("Hello there"), ToolCall("f", {"a": 1})]
    )
    completion = chat(client, "hi")
    message = completion.choices[0].message
    assert message.content == "Hello there"
    assert (message.model_extra or {})["reasoning"] == "hmm"
    assert message.tool_calls[0].function.arguments == '{"a": 1}'
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage.completion_tokens > 0


def test_rules_first_match_once_regex_predicate_default(
    server: ModelServer, client: openai_sdk.OpenAI
) -> None:
    server.on("apple", [Text("one-shot apple")], once=True)
    server.on(re.compile(r"^app"), [Text("regex apple")])
    server.on(lambda body: body.get("temperature") == 0.5, [Text("by predicate")])
    server.on("apple", [Text("never reached")])

    def answer(text: str, **kwargs: Any) -> str:
        return str(chat(client, text, **kwargs).choices[0].message.content)

    assert answer("apple pie") == "one-shot apple"
    assert answer("apple pie") == "regex apple"
    assert answer("pear", temperature=0.5) == "by predicate"
    assert answer("pear") == "Hello! I am a scripted model."
    assert [r["messages"][0]["content"] for r in server.requests] == [
        "apple pie",
        "apple pie",
        "pear",
        "pear",
    ]


def test_callable_reply_sees_the_request(server: ModelServer, client: openai_sdk.OpenAI) -> None:
    server.on("echo", lambda body: [Text(f"you said {body['messages'][-1]['content']}")])
    assert chat(client, "echo me").choices[0].message.content == "you said echo me"


def test_http_error_status_and_body(server: ModelServer) -> None:
    server.on("hi", [Error(429, "Rate limit reached")])
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 429
    assert json.loads(caught.value.read())["error"]["message"] == "Rate limit reached"
    assert server.streams[-1].closed.wait(5)  # the server thread records it after replying
    assert server.streams[-1].outcome == "error"


def test_bad_request_body(server: ModelServer) -> None:
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400


def test_disconnect_breaks_the_client_stream(
    server: ModelServer, client: openai_sdk.OpenAI
) -> None:
    server.on("hi", [Text("partial"), Disconnect()])
    received: list[str] = []
    with pytest.raises(openai_sdk.APIConnectionError):
        for chunk in chat(client, "hi", stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "partial"
    assert server.streams[-1].outcome == "disconnected"


def test_client_hang_up_during_silence_is_seen(server: ModelServer) -> None:
    server.on("hi", [Text("x"), Silence(10)])
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert b"200" in sock.recv(4096)
    time.sleep(0.1)
    assert server.active_streams == 1
    closed_at = time.monotonic()
    sock.close()
    assert server.client_disconnected.wait(1)
    record = server.streams[-1]
    assert record.outcome == "client-closed"
    assert record.ended_at is not None and record.ended_at - closed_at < 0.2
    assert server.active_streams == 0


def test_text_pacing(server: ModelServer, client: openai_sdk.OpenAI) -> None:
    server.on("hi", [Text("a b c d e f", tokens_per_second=25)])
    started = time.monotonic()
    list(chat(client, "hi", stream=True))
    assert time.monotonic() - started >= 6 / 25 - 0.02


# ---------------------------------------------------------------------------- demo mode


def test_demo_reflects_on_the_message() -> None:
    with ModelServer(demo=True, demo_tokens_per_second=None) as demo:
        model = openai("demo", base_url=demo.base_url, max_retries=0)
        result = stream_text(
            model=model,
            messages=[
                {"role": "user", "content": "Tell me something about octopus intelligence please?"}
            ],
        )
        chunks = list(result.to_ui_message_stream())
    assert_valid_ui_stream(chunks)
    kinds = [c["type"] for c in chunks]
    assert kinds.index("reasoning-start") < kinds.index("text-start")
    assert result.text.startswith(DEMO_PREFIX)
    assert "7 words" in result.text
    assert "“Tell me something about octopus intelligence please?”" in result.text
    assert result.text.rstrip().endswith("?")  # offers a follow-up


def test_demo_streams_at_a_natural_rate() -> None:
    with ModelServer(demo=True) as demo:  # default 30 tokens/s
        client = openai_sdk.OpenAI(base_url=demo.base_url, api_key="k", max_retries=0)
        started = time.monotonic()
        stream = chat(client, "hello there", stream=True)
        tokens = sum(
            1
            for c in stream
            if c.choices
            and (
                c.choices[0].delta.content
                or (c.choices[0].delta.model_extra or {}).get("reasoning_content")
            )
        )
        elapsed = time.monotonic() - started
    assert tokens > 20
    assert tokens / 40 < elapsed < tokens / 20


def test_demo_uses_weather_tool_and_its_result() -> None:
    with ModelServer(demo=True, demo_tokens_per_second=None) as demo:
        model = openai("demo", base_url=demo.base_url, max_retries=0)
        result = stream_text(
            model=model,
            tools=DEMO_TOOLS,
            max_steps=2,
            messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
        )
        chunks = list(result.to_ui_message_stream())
        assert len(demo.requests) == 2
    assert_valid_ui_stream(chunks)
    call = next(c for c in chunks if c["type"] == "tool-input-available")
    assert call["toolName"] == "get_weather" and call["input"] == {"city": "Oslo"}
    output = next(c for c in chunks if c["type"] == "tool-output-available")["output"]
    assert result.text.startswith(DEMO_PREFIX)
    assert f"{output['temperature_c']} °C" in result.text and "Oslo" in result.text


def test_demo_time_tool_and_no_tool_when_not_offered() -> None:
    with ModelServer(demo=True, demo_tokens_per_second=None) as demo:
        model = openai("demo", base_url=demo.base_url, max_retries=0)
        timed = stream_text(
            model=model,
            tools=DEMO_TOOLS,
            max_steps=2,
            messages=[{"role": "user", "content": "What time is it in UTC?"}],
        )
        assert timed.steps[0].tool_calls[0]["toolName"] == "get_time"
        assert "clock tool" in timed.text
        plain = stream_text(
            model=model, messages=[{"role": "user", "content": "What's the weather?"}]
        )
        assert plain.tool_calls == [] and plain.text.startswith(DEMO_PREFIX)


def test_demo_calls_the_report_tool_when_offered_and_summarises_its_result() -> None:
    report = tool(description="Write a report.", parameters={"type": "object"},
                  execute=lambda args: {"topic": args["topic"], "summary": "Three findings."})
    with ModelServer(demo=True, demo_tokens_per_second=None) as demo:
        model = openai("demo", base_url=demo.base_url, max_retries=0)
        result = stream_text(
            model=model, tools={**DEMO_TOOLS, "write_report": report}, max_steps=2,
            messages=[{"role": "user", "content": "Write a report on tide pools, please."}],
        )
        assert result.steps[0].tool_calls[0]["input"] == {"topic": "tide pools"}
        assert "report task" in result.text and "Three findings." in result.text
        plain = stream_text(model=model, tools=DEMO_TOOLS,
                            messages=[{"role": "user", "content": "Write a report on X"}])
        assert plain.tool_calls == []


def test_demo_tools_directly() -> None:
    options = ToolCallOptions("call-1", [])
    first = get_weather.run(WeatherArgs(city="Paris"), options)
    again = get_weather.run(WeatherArgs(city="paris"), options)
    assert (first["temperature_c"], first["conditions"]) == (
        again["temperature_c"],
        again["conditions"],
    )
    assert -2 <= first["temperature_c"] < 28
    now = get_time.run(TimeArgs(timezone="Not/AZone"), options)
    assert now["timezone"] == "UTC" and re.fullmatch(r"\d\d:\d\d", now["time"])


def test_standalone_command() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatworker.testing.model_server", "--port", str(port), "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in line
        client = openai_sdk.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
        reply = chat(client, "hi")
        assert reply.choices[0].message.content.startswith(DEMO_PREFIX)
    finally:
        proc.terminate()
        proc.wait(10)
