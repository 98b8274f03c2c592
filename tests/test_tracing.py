"""Tracing in one process, with the OpenTelemetry SDK's in-memory exporter: what the spans of a
turn look like (hooks, model calls and tool calls under the turn, the turn under the span of the
request whose context came with the message), that the context never reaches the task as a
payload key, and that tracing off imports no OpenTelemetry at all.

The end-to-end trace across a real gateway and worker is in tests/gateway/test_tracing.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chatworker import runs, tracing
from chatworker.ai import openai, stream_text, tool
from chatworker.engine.driver import Input
from chatworker.engine.payload import ChatWirePayload
from chatworker.engine.turn_trace import traced_turn
from chatworker.engine.turns import call_hook
from chatworker.store import keys
from chatworker.store.records import split_item
from chatworker.testing import ModelServer, Text, ToolCall

from .support import ROOT, isolated_db

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """This process's tracer provider (set once), exporting to memory."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return _EXPORTER


@pytest.fixture()
def spans(exporter: InMemorySpanExporter,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setenv("CHATWORKER_TRACING", "1")
    tracing.reset_for_tests()
    exporter.clear()
    yield exporter
    monkeypatch.delenv("CHATWORKER_TRACING")
    tracing.reset_for_tests()


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


WIRE = {"chatId": "c1", "trigger": "submit-message", "messages": [
    {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "weather in Oslo?"}]}]}


def test_a_turn_continues_the_request_trace_with_hook_model_and_tool_spans(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.span("POST /api/chat/tasks/t/runs"):  # what the gateway's request span does
        wire = tracing.stamp(json.dumps(WIRE, separators=(",", ":")))
    body, carrier = tracing.unstamp(wire)  # what the worker does with the queued message
    assert json.loads(body) == WIRE and carrier and "traceparent" in carrier

    weather = tool(description="The weather.", execute=lambda args: {"sky": "clear"},
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    with ModelServer() as server:
        server.on("Oslo", [ToolCall("weather", {"city": "Oslo"})], once=True)
        server.on("Oslo", [Text("Clear.")])
        model = openai("m-1", base_url=server.base_url, api_key="k", max_retries=0)
        with tracing.span("chatworker.turn", {"chatworker.turn": 0}, parent=carrier):
            call_hook(lambda event: None, SimpleNamespace())
            stream_text(model=model, messages=[{"role": "user", "content": "weather in Oslo?"}],
                        tools={"weather": weather}, max_steps=3).consume_stream()

    [request] = named(spans, "POST /api/chat/tasks/t/runs")
    [turn] = named(spans, "chatworker.turn")
    assert turn.context.trace_id == request.context.trace_id
    assert parent_of(turn) == request.context.span_id
    [hook] = named(spans, "chatworker.hook")
    assert parent_of(hook) == turn.context.span_id
    assert hook.attributes == {"chatworker.hook": "SimpleNamespace", "code.function": "<lambda>"}
    calls = named(spans, "chatworker.model_call")
    assert [parent_of(c) for c in calls] == [turn.context.span_id] * 2
    assert [c.attributes for c in calls] == [
        {"gen_ai.request.model": "m-1", "chatworker.step": 0},
        {"gen_ai.request.model": "m-1", "chatworker.step": 1}]
    [tool_span] = named(spans, "chatworker.tool")
    assert parent_of(tool_span) == turn.context.span_id
    assert tool_span.attributes["gen_ai.tool.name"] == "weather"
    # The tool ran between the two model calls.
    assert calls[0].end_time <= tool_span.start_time <= tool_span.end_time <= calls[1].start_time


def _run(turn: int = 0, stopped: bool = False) -> Any:
    return SimpleNamespace(task=SimpleNamespace(id="t"), run_id="run_1", chat_id="c1",
                           turn_number=turn, last_turn={"stopped": stopped})


def _input() -> Input:
    return Input("i0", ChatWirePayload.model_validate(WIRE))


def test_the_turn_span_says_how_the_turn_ended(spans: InMemorySpanExporter) -> None:
    with traced_turn(_run(stopped=True), _input()):
        pass
    with pytest.raises(RuntimeError), traced_turn(_run(turn=1), _input()):
        raise RuntimeError("the run function failed")
    stopped, failed = named(spans, "chatworker.turn")
    assert stopped.attributes == {
        "chatworker.task": "t", "chatworker.run_id": "run_1", "chatworker.chat_id": "c1",
        "chatworker.turn": 0, "chatworker.input_id": "i0", "chatworker.trigger": "submit-message",
        "chatworker.stopped": True, "chatworker.outcome": "stopped"}
    assert failed.attributes is not None
    assert failed.attributes["chatworker.outcome"] == "failed"
    assert failed.status.status_code == StatusCode.ERROR


def test_the_trace_context_never_reaches_the_task() -> None:
    """A worker reads a stamped message (whether it traces or not) without the context key."""
    plain = json.dumps(WIRE, separators=(",", ":"))
    stamped = plain[:-1] + ',"__trace":{"traceparent":"00-' + "1" * 32 + "-" + "2" * 16 + '-01"}}'
    body, carrier = tracing.unstamp(stamped)
    assert body == plain and carrier == {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
    assert ChatWirePayload.model_validate_json(body).extra == {}
    assert tracing.unstamp(plain) == (plain, None)


def test_tracing_off_costs_nothing() -> None:
    """Off (the default): chatworker imports no OpenTelemetry module of its own (redis-py loads
    some parts itself when they are installed: those are the baseline), sets no tracer provider,
    even in a gateway app and around a turn's helpers, and queues a message exactly as it was."""
    script = """
import json, sys
import celery, flask, openai, redis
def otel(): return {m for m in sys.modules if m.startswith("opentelemetry")}
baseline = otel()
from chatworker import tracing, runs
from chatworker.engine import chat_run
from web.app import create_app
create_app()
with tracing.span("x", {"a": 1}) as span:
    span.set_attribute("b", 2)
    assert tracing.stamp('{"chatId":"c"}') == '{"chatId":"c"}'
tracing.start_span("y").end()
provider = getattr(sys.modules.get("opentelemetry.trace"), "_TRACER_PROVIDER", None)
print(json.dumps({"loaded": sorted(otel() - baseline), "provider": repr(provider)}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATWORKER_TRACING", "OTEL"))}
    env.setdefault("CHATWORKER_SECRET_KEY", "s" * 64)
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"loaded": [], "provider": "None"}


def test_only_the_queued_message_carries_the_context_not_the_run_record(
    spans: InMemorySpanExporter, redis_url: str,
) -> None:
    """The run record's ``initial`` payload (what every level's task reads as the run's first
    payload) stays as sent; the first queued message carries the trigger request's context."""
    # A database no worker reads: the message stays in the inbox for the test to look at.
    with isolated_db(redis_url, 9) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        with tracing.span("POST /api/chat/tasks/echo/runs") as request:
            run_id = runs.trigger("echo", {**WIRE, "chatId": "traced-record"}).run_id
        assert isinstance(request, tracing._Span)
        initial = json.loads(r.hget(keys.run(run_id), "initial") or "{}")
        assert initial["chatId"] == "traced-record" and "__trace" not in initial
        [item] = r.lrange(keys.inbox(run_id), 0, -1)
        input_id, body = split_item(item)
        queued, carrier = tracing.unstamp(body)
        assert input_id == "i0" and json.loads(queued) == initial
        assert carrier is not None
        assert carrier["traceparent"].split("-")[1:3] == [
            f"{request.span.get_span_context().trace_id:032x}",
            f"{request.span.get_span_context().span_id:016x}"]
        runs.cancel(run_id)
