"""A pydantic-ai Agent as a chat turn's reply, with the real framework and its models, offline:
its FunctionModel, and its OpenAI model pointed at the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip(
    "pydantic_ai", reason="pydantic-ai is not installed (pip install 'chatworker[pydantic-ai]')"
)

from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from chatworker.integrations.pydantic_ai import stream
from chatworker.protocol.assemble import MessageAssembler
from chatworker.signals import AbortController
from chatworker.testing import Error, ModelServer, Reasoning, Silence, Text, ToolCall
from chatworker.testing.checks import assert_valid_ui_stream

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"


def user(text: str, id: str) -> dict[str, Any]:
    return {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}


def turn(ui_messages: list[dict[str, Any]], controller: AbortController | None = None) -> Any:
    """A chat run's context as a run function sees it (the fields the adapter reads)."""
    return SimpleNamespace(chat_id="chat-1", ui_messages=ui_messages,
                           signal=(controller or AbortController()).signal)


def chunks_of(source: Any, known_tool_calls: Any = (), **options: Any) -> list[dict[str, Any]]:
    chunks = list(source.to_ui_message_stream(**options))
    assert_valid_ui_stream(chunks, known_tool_calls)
    return chunks


def assembled(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    assembler = MessageAssembler()
    for chunk in chunks:
        assembler.feed(chunk)
    message: dict[str, Any] = assembler.to_dict()
    return message


def types(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in chunks]


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


def openai_agent(server: ModelServer) -> Agent[None, str]:
    # The provider makes its own HTTP client, so it follows each run onto that run's event loop.
    model = OpenAIChatModel(
        "test-model", provider=OpenAIProvider(base_url=server.base_url, api_key="k"))
    agent: Agent[None, str] = Agent(model)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    return agent


# ---------------------------------------------------------------------------- tools, history


def test_tool_call_streams_end_to_end_with_function_model() -> None:
    async def model_fn(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if len(messages) == 1:  # the user's question: call the tool, its input in fragments
            yield {0: DeltaToolCall(name="get_weather", tool_call_id="call_1")}
            yield {0: DeltaToolCall(json_args='{"city": ')}
            yield {0: DeltaToolCall(json_args='"Paris"}')}
        else:
            yield "It is "
            yield "sunny."

    agent: Agent[None, str] = Agent(FunctionModel(stream_function=model_fn))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    chunks = chunks_of(stream(agent, turn([user("Weather in Paris?", "u1")])), message_id="m1")
    assert chunks[0] == {"type": "start", "messageId": "m1"}
    assert chunks[-1]["type"] == "finish"
    kinds = types(chunks)
    assert kinds.count("tool-input-delta") == 2
    assert kinds.index("tool-input-start") < kinds.index("tool-input-available") < kinds.index(
        "tool-output-available") < kinds.index("text-start")
    available = next(c for c in chunks if c["type"] == "tool-input-available")
    assert available["input"] == {"city": "Paris"} and available["toolName"] == "get_weather"
    output = next(c for c in chunks if c["type"] == "tool-output-available")
    assert output == {"type": "tool-output-available", "toolCallId": "call_1",
                      "output": "sunny in Paris"}
    message = assembled(chunks)
    assert message["id"] == "m1"
    assert [p["type"] for p in message["parts"]] == [
        "step-start", "tool-get_weather", "step-start", "text"]
    assert message["parts"][-1]["text"] == "It is sunny."
    assert message["metadata"]["usage"]["totalTokens"] > 0  # usage in the message metadata


def test_second_turn_sends_the_first_turn_with_its_tool_call_to_the_model(
    server: ModelServer,
) -> None:
    agent = openai_agent(server)
    server.on("Paris", [ToolCall("get_weather", {"city": "Paris"}, id="call_w")], once=True)
    server.on("Paris", [Text("It is sunny in Paris.")])
    server.on("tomorrow", [Text("Still sunny.")])

    first_user = user("Weather in Paris?", "u1")
    first = chunks_of(stream(agent, turn([first_user])), message_id="a1")
    reply = assembled(first)
    assert [p["type"] for p in reply["parts"]] == [
        "step-start", "tool-get_weather", "step-start", "text"]
    assert reply["parts"][1]["state"] == "output-available"

    second = chunks_of(stream(agent, turn([first_user, reply, user("And tomorrow?", "u2")])),
                       message_id="a2")
    assert assembled(second)["parts"][-1]["text"] == "Still sunny."
    seen = server.requests[-1]["messages"]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool", "assistant", "user"]
    assert seen[0]["content"] == "Weather in Paris?"
    call = seen[1]["tool_calls"][0]
    assert call["id"] == "call_w" and call["function"]["name"] == "get_weather"
    assert seen[2]["tool_call_id"] == "call_w" and "sunny in Paris" in seen[2]["content"]
    assert seen[3]["content"] == "It is sunny in Paris."
    assert seen[4]["content"] == "And tomorrow?"


# ---------------------------------------------------------------------------- stop, errors


def test_stop_while_the_model_is_silent_closes_its_request_and_keeps_the_partial_reply(
    server: ModelServer,
) -> None:
    agent = openai_agent(server)
    server.on("story", [Text("Once upon"), Silence(10), Text(" never sent")])
    controller = AbortController()
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        controller.abort("stop")

    chunks: list[dict[str, Any]] = []
    for chunk in stream(agent, turn([user("Tell a story", "u1")], controller)) \
            .to_ui_message_stream(message_id="m1"):
        chunks.append(chunk)
        if chunk["type"] == "text-delta" and not fired:
            threading.Timer(0.1, fire).start()
    ended = time.monotonic()
    assert fired, "the stop never fired"
    assert_valid_ui_stream(chunks)
    assert ended - fired[0] < 0.2
    assert chunks[-1]["type"] == "abort"
    assert "finish" not in types(chunks) and "error" not in types(chunks)
    assert assembled(chunks)["parts"][-1]["text"] == "Once upon"  # the partial reply is kept
    record = server.streams[-1]
    assert record.closed.wait(1)
    assert record.outcome == "client-closed"
    assert record.ended_at is not None and record.ended_at - fired[0] < 0.2
    assert server.active_streams == 0


def test_a_model_failure_is_an_error_chunk_with_the_on_error_text(server: ModelServer) -> None:
    agent = openai_agent(server)
    server.on("hello", [Error(400, "secret-internal-detail")])  # 400: not retried
    seen: list[BaseException] = []

    def on_error(exc: BaseException) -> str:
        seen.append(exc)
        return "The model is down, try again."

    chunks = chunks_of(stream(agent, turn([user("hello", "u1")])), message_id="m1",
                       on_error=on_error)
    assert {"type": "error", "errorText": "The model is down, try again."} in chunks
    assert chunks[-1] == {"type": "finish", "finishReason": "error"}
    assert len(seen) == 1
    # without on_error the text is the safe default, never the provider's detail
    plain = chunks_of(stream(agent, turn([user("hello", "u1")])))
    error = next(c for c in plain if c["type"] == "error")
    assert "secret-internal-detail" not in error["errorText"]


# ---------------------------------------------------------------------------- approvals


def approval_agent() -> Agent[None, Any]:
    async def model_fn(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            yield f"done: {last.content}"
        else:
            yield {0: DeltaToolCall(name="delete_file", json_args='{"path": "a.txt"}',
                                    tool_call_id="call_d")}

    agent: Agent[None, Any] = Agent(FunctionModel(stream_function=model_fn),
                                    output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def delete_file(path: str) -> str:
        return f"deleted {path}"

    return agent


@pytest.mark.parametrize("approved", [True, False])
def test_a_tool_needing_approval_asks_and_runs_only_once_approved(approved: bool) -> None:
    agent = approval_agent()
    question = user("delete a.txt", "u1")
    first = chunks_of(stream(agent, turn([question])), message_id="a1")
    assert {"type": "tool-approval-request", "approvalId": "call_d",
            "toolCallId": "call_d"} in first
    assert "tool-output-available" not in types(first)
    asked = assembled(first)
    part = asked["parts"][1]
    assert part["state"] == "approval-requested" and part["approval"] == {"id": "call_d"}

    # the client answers (addToolApprovalResponse) and resubmits the assistant message
    part["state"] = "approval-responded"
    part["approval"] = {"id": "call_d", "approved": approved,
                        **({} if approved else {"reason": "keep it"})}
    second = chunks_of(stream(agent, turn([question, asked])), message_id="a1",
                       known_tool_calls=["call_d"])
    if approved:
        assert {"type": "tool-output-available", "toolCallId": "call_d",
                "output": "deleted a.txt"} in second
        assert assembled(second)["parts"][-1]["text"] == "done: deleted a.txt"
    else:
        assert {"type": "tool-output-denied", "toolCallId": "call_d"} in second
        assert "tool-output-available" not in types(second)


# ---------------------------------------------------------------------------- the real client


def test_the_ai_sdk_client_accepts_every_stream(server: ModelServer, tmp_path: Path) -> None:
    """The AI SDK's own parser and reader (Node, tests/conformance) take each stream and assemble
    the message chatworker assembles."""
    node = shutil.which("node")
    if node is None or not (CONFORMANCE / "node_modules" / "ai" / "package.json").exists():
        pytest.fail("the conformance check needs Node.js and `npm ci` in tests/conformance")
    agent = openai_agent(server)
    server.on("Paris", [ToolCall("get_weather", {"city": "Paris"}, id="call_w")], once=True)
    server.on("Paris", [Text("It is sunny in Paris.")])
    server.on("hello", [Error(400, "bad")])
    produced = {
        "tools": chunks_of(stream(agent, turn([user("Weather in Paris?", "u1")])),
                           message_id="msg-tools"),
        "error": chunks_of(stream(agent, turn([user("hello", "u1")])), message_id="msg-error"),
        "approval": chunks_of(stream(approval_agent(), turn([user("delete a.txt", "u1")])),
                              message_id="msg-approval"),
    }
    manifest = []
    for name, chunks in produced.items():
        path = tmp_path / f"{name}.sse"
        body = "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks)
        path.write_text(body + "data: [DONE]\n\n", encoding="utf-8")
        manifest.append({"name": name, "file": str(path)})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    script, manifest_path = CONFORMANCE / "assemble.mjs", tmp_path / "manifest.json"
    proc = subprocess.run([node, str(script), str(manifest_path)], cwd=CONFORMANCE,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for name, chunks in produced.items():
        sdk = report[name]
        assert sdk["violations"] == [], (name, sdk["violations"])
        assert sdk["chunks"] == len(chunks), name
        assert [e for e in sdk["errors"] if e["name"] != "Error"] == [], (name, sdk["errors"])
        ours = json.loads(json.dumps(assembled(chunks), sort_keys=True))
        assert json.loads(json.dumps(sdk["message"], sort_keys=True)) == ours, name
    assert report["approval"]["message"]["parts"][1]["state"] == "approval-requested"


# ---------------------------------------------------------------------------- the demo task


def test_the_demo_agent_answers_offline_with_the_demo_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from web.demo_pydantic_ai import demo_agent

    with ModelServer(demo=True, demo_tokens_per_second=0) as demo_server:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("CHATWORKER_DEMO_MODEL_URL", demo_server.base_url)
        question = user("What's the weather in Berlin?", "u1")
        chunks = chunks_of(stream(demo_agent(), turn([question])), message_id="m1")
    message = assembled(chunks)
    weather = [p for p in message["parts"] if p["type"] == "tool-get_weather"]
    assert weather and weather[0]["state"] == "output-available"
    assert weather[0]["output"]["city"] == "Berlin"
    assert message["parts"][-1]["type"] == "text" and message["parts"][-1]["text"]


def test_reasoning_streams_and_send_reasoning_false_drops_it(server: ModelServer) -> None:
    agent = openai_agent(server)
    server.on("think", [Reasoning("Weighing it up."), Text("Forty-two.")])
    chunks = chunks_of(stream(agent, turn([user("think hard", "u1")])), message_id="m1")
    parts = assembled(chunks)["parts"]
    assert [p["type"] for p in parts] == ["step-start", "reasoning", "text"]
    assert parts[1]["text"] == "Weighing it up." and parts[2]["text"] == "Forty-two."
    quiet = chunks_of(stream(agent, turn([user("think hard", "u1")])), send_reasoning=False)
    assert not [c for c in quiet if c["type"].startswith("reasoning-")]
