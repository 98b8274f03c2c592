"""One trace from the browser's request to the model call: a real gunicorn gateway and a real
celery worker, both traced (``CHATWORKER_TRACING=1``) and writing their spans, one JSON object a
line, to the file ``CHATWORKER_TRACING_FILE`` names; the test reads that file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chatworker import tokens
from chatworker.testing import ModelServer, Text, ToolLoop

from ..conftest import worker_env
from ..support import Worker, events, user_message, wait_for
from .conftest_helpers import Gunicorn, SSEClient, call, db_url, gateway_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: A Redis database of its own: only this module's traced worker takes its runs.
TRACED_DB = 11
TASK = "policy-queue"  # the scripted model with a `lookup` tool, and the recording hooks


@pytest.fixture(scope="module")
def traced(redis_url: str, model_server: ModelServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, redis.Redis]]:
    """A traced gateway and worker; yields the gateway's url, the span file and Redis."""
    spans = tmp_path_factory.mktemp("traces") / "spans.jsonl"
    tracing = {"CHATWORKER_TRACING": "1", "CHATWORKER_TRACING_FILE": str(spans),
               "OTEL_TRACES_EXPORTER": "none"}
    url = db_url(redis_url, TRACED_DB)
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    worker = Worker(worker_env(url, OTEL_SERVICE_NAME="chat-worker", **tracing),
                    name="traced").start()
    gateway = Gunicorn(gateway_env(url, OTEL_SERVICE_NAME="chat-gateway", **tracing),
                       name="traced")
    try:
        gateway.start()
        yield gateway.url, spans, r
    finally:
        gateway.stop()
        worker.stop()


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def span_id(span: dict[str, Any]) -> str:
    return str(span["context"]["span_id"])


def trace_id(span: dict[str, Any]) -> str:
    return str(span["context"]["trace_id"])


Span = dict[str, Any]


def children(spans: list[Span], parent: Span, name: str) -> list[Span]:
    return [s for s in spans if s["name"] == name and s["parent_id"] == span_id(parent)]


def test_the_request_and_the_turn_it_started_are_one_trace(
    traced: tuple[str, Path, redis.Redis], model_server: ModelServer, chat_id: str,
) -> None:
    base, path, r = traced
    model_server.on(lambda body: chat_id in str(body),
                    ToolLoop("lookup", {"topic": "tides"}, calls=1, pause=0))
    status, data, _ = call(base, "POST", f"/api/chat/tasks/{TASK}/runs",
                           {"chatId": chat_id, "trigger": "submit-message",
                            "messages": [user_message(f"plan {chat_id}")]},
                           token=tokens.create_trigger_token(TASK))
    assert status == 201, data
    run_id, token = data["runId"], data["publicAccessToken"]
    wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"],
             timeout=30)
    status, sent, _ = call(base, "POST", f"/api/chat/runs/{run_id}/input/messages",
                           {"chatId": chat_id, "trigger": "submit-message",
                            "messages": [user_message(f"and {chat_id} again")]}, token=token)
    assert status in (200, 202), sent

    def turns() -> list[dict[str, Any]]:
        found = [s for s in read_spans(path) if s["name"] == "chatworker.turn"
                 and s["attributes"].get("chatworker.run_id") == run_id]
        return found if len(found) == 2 else []

    first, second = sorted(wait_for(turns, timeout=30),
                           key=lambda s: s["attributes"]["chatworker.turn"])
    spans = read_spans(path)
    requests = {span_id(s): s for s in spans if s["kind"] == "SpanKind.SERVER"}

    # Each turn's parent is the gateway's span of the request that sent its message.
    trigger_request = requests[first["parent_id"]]
    send_request = requests[second["parent_id"]]
    assert trigger_request["attributes"]["http.route"].endswith("/tasks/<task_id>/runs")
    assert send_request["attributes"]["http.route"].endswith("/runs/<run_id>/input/messages")
    assert trace_id(first) == trace_id(trigger_request)
    assert trace_id(second) == trace_id(send_request) != trace_id(first)
    assert trigger_request["resource"]["attributes"]["service.name"] == "chat-gateway"
    assert first["resource"]["attributes"]["service.name"] == "chat-worker"

    assert first["attributes"] == {
        "chatworker.task": TASK, "chatworker.run_id": run_id, "chatworker.chat_id": chat_id,
        "chatworker.turn": 0, "chatworker.input_id": "i0", "chatworker.trigger": "submit-message",
        "chatworker.stopped": False, "chatworker.outcome": "completed",
    }
    assert second["attributes"]["chatworker.turn"] == 1
    assert second["attributes"]["chatworker.outcome"] == "completed"

    # Under the first turn: its hooks, two model calls (tool call, then the answer), the tool.
    hooks = [s["attributes"]["chatworker.hook"] for s in children(spans, first, "chatworker.hook")]
    assert sorted(hooks) == ["ChatStartEvent", "TurnCompleteEvent", "TurnStartEvent"]
    calls = children(spans, first, "chatworker.model_call")
    assert [c["attributes"]["chatworker.step"] for c in calls] == [0, 1]
    assert {c["attributes"]["gen_ai.request.model"] for c in calls} == {"scripted"}
    [tool] = children(spans, first, "chatworker.tool")
    assert tool["attributes"]["gen_ai.tool.name"] == "lookup"
    assert all(trace_id(s) == trace_id(first) for s in [*calls, tool])
    # The second turn: its hooks and one model call, no chat start.
    hooks = [s["attributes"]["chatworker.hook"] for s in children(spans, second, "chatworker.hook")]
    assert sorted(hooks) == ["TurnCompleteEvent", "TurnStartEvent"]
    assert len(children(spans, second, "chatworker.model_call")) == 1


def test_the_browsers_trace_continues_through_the_ui_route_into_the_turn(
    traced: tuple[str, Path, redis.Redis], model_server: ModelServer, chat_id: str,
) -> None:
    """A browser (or a proxy) that sends ``traceparent`` on the ``/ui`` request useChat makes:
    the gateway's request span continues that trace, and the turn is under the request."""
    base, path, _ = traced
    model_server.on(lambda body: chat_id in str(body), [Text("traced reply")])
    browser_trace, browser_span = "ab" * 16, "cd" * 8
    headers = {"Authorization": f"Bearer {tokens.create_trigger_token(TASK)}",
               "traceparent": f"00-{browser_trace}-{browser_span}-01"}
    body = {"id": chat_id, "messages": [user_message(f"hello {chat_id}")],
            "trigger": "submit-message"}
    with SSEClient(base, f"/api/chat/ui/{TASK}?timeout=60", method="POST", body=body,
                   headers=headers, timeout=60) as ui:
        deltas = []
        for item in ui.events():
            if item.data == "[DONE]":
                break
            chunk = json.loads(item.data or "{}")
            if chunk.get("type") == "text-delta":
                deltas.append(chunk["delta"])
    assert "".join(deltas).strip() == "traced reply"

    def turn() -> list[dict[str, Any]]:
        return [s for s in read_spans(path) if s["name"] == "chatworker.turn"
                and s["attributes"].get("chatworker.chat_id") == chat_id]

    [turn_span] = wait_for(turn, timeout=30)
    spans = read_spans(path)
    [request] = [s for s in spans if span_id(s) == turn_span["parent_id"]]
    assert request["kind"] == "SpanKind.SERVER"
    assert request["attributes"]["http.route"].endswith("/ui/<task_id>")
    assert request["parent_id"] == "0x" + browser_span
    assert trace_id(turn_span) == trace_id(request) == "0x" + browser_trace
    [model_call] = children(spans, turn_span, "chatworker.model_call")
    assert model_call["attributes"]["gen_ai.request.model"] == "scripted"
