"""An OpenAI Agents SDK agent as a chat turn: the SDK's chat-completions model, pointed at the
scripted OpenAI-compatible server, runs through ``chatworker.integrations.openai_agents.stream``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

agents = pytest.importorskip(
    "agents", reason="the OpenAI Agents SDK (pip install 'chatworker[openai-agents]') is missing"
)

from openai import AsyncOpenAI  # noqa: E402

from chatworker.integrations.openai_agents import stream  # noqa: E402
from chatworker.protocol.assemble import MessageAssembler  # noqa: E402
from chatworker.signals import AbortController  # noqa: E402
from chatworker.testing import (  # noqa: E402
    Error,
    ModelServer,
    Reasoning,
    Seen,
    Silence,
    Text,
    ToolCall,
    call_then_report,
)
from chatworker.testing.checks import assert_valid_ui_stream, collapse_deltas  # noqa: E402
from chatworker.types import ChatRunContext  # noqa: E402

agents.set_tracing_disabled(True)

WEATHER_CALLS: list[str] = []


@agents.function_tool
def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    WEATHER_CALLS.append(city)
    return {"city": city, "sky": "sunny"}


@agents.function_tool(needs_approval=True)
def book_table(place: str) -> str:
    """Book a table (the user must agree)."""
    WEATHER_CALLS.append(f"booked {place}")
    return f"booked at {place}"


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture()
def agent(server: ModelServer) -> Any:
    WEATHER_CALLS.clear()
    client = AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    model = agents.OpenAIChatCompletionsModel(model="scripted-model", openai_client=client)
    # the chat-completions model reports usage when asked to
    settings = agents.ModelSettings(include_usage=True)
    return agents.Agent(name="assistant", instructions="Be brief.", model=model,
                        model_settings=settings, tools=[get_weather, book_table])


def user(text: str, id: str = "u1") -> dict[str, Any]:
    return {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}


def context(ui_messages: list[Any], signal: Any = None) -> ChatRunContext:
    controller = AbortController()
    signal = signal or controller.signal
    return ChatRunContext(
        messages=[], ui_messages=ui_messages, chat_id="c1", run_id="r1", turn=0,
        trigger="submit-message", message_id=None, client_data=None, continuation=False,
        previous_run_id=None, preloaded=False, signal=signal, stop_signal=signal,
        cancel_signal=AbortController().signal,
    )


async def _collect(source: AsyncIterator[dict[str, Any]],
                   on_chunk: Any = None) -> list[dict[str, Any]]:
    chunks = []
    async for chunk in source:
        chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return chunks


LOOP: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop per test, as a run has (the agent's HTTP client keeps its connections)."""
    LOOP.append(asyncio.new_event_loop())
    yield LOOP[-1]
    LOOP.pop().close()


def turn(agent: Any, ui_messages: list[Any], known: tuple[str, ...] = (),
         **options: Any) -> list[dict[str, Any]]:
    source = stream(agent, context(ui_messages), **options)
    chunks = LOOP[-1].run_until_complete(_collect(source))
    assert_valid_ui_stream(chunks, known_tool_calls=known)
    return chunks


def assemble(chunks: list[dict[str, Any]], message_id: str = "a1") -> dict[str, Any]:
    assembler = MessageAssembler(message_id)
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.message.model_dump(by_alias=True, exclude_none=True)


def types(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in chunks]


def test_tool_call_streams_end_to_end(server: ModelServer, agent: Any) -> None:
    server.on("weather", call_then_report(ToolCall("get_weather", {"city": "Oslo"}, id="call_1")))
    chunks = turn(agent, [user("What is the weather in Oslo?")])
    kinds = types(chunks)
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert kinds.count("start-step") == 2 and kinds.count("finish-step") == 2
    # the arguments stream in pieces, then the call and its output follow
    start = kinds.index("tool-input-start")
    assert chunks[start] == {"type": "tool-input-start", "toolCallId": "call_1",
                             "toolName": "get_weather"}
    deltas = [c["inputTextDelta"] for c in chunks if c["type"] == "tool-input-delta"]
    assert len(deltas) > 1 and json.loads("".join(deltas)) == {"city": "Oslo"}
    available = next(c for c in chunks if c["type"] == "tool-input-available")
    assert available["input"] == {"city": "Oslo"}
    output = next(c for c in chunks if c["type"] == "tool-output-available")
    assert output == {"type": "tool-output-available", "toolCallId": "call_1",
                      "output": {"city": "Oslo", "sky": "sunny"}}
    assert WEATHER_CALLS == ["Oslo"]
    message = assemble(chunks)
    assert message["parts"][-1]["type"] == "text"
    assert message["parts"][-1]["text"].startswith("Got get_weather: ")
    assert "sunny" in message["parts"][-1]["text"]
    finish = chunks[-1]
    assert finish["finishReason"] == "stop"
    usage = finish["messageMetadata"]["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert finish["messageMetadata"]["agent"] == "assistant"


def test_second_turn_sees_the_first_with_its_tool_call(server: ModelServer, agent: Any) -> None:
    server.on("weather", call_then_report(ToolCall("get_weather", {"city": "Oslo"}, id="call_1")))
    first = user("What is the weather in Oslo?")
    reply = assemble(turn(agent, [first]))
    server.on("remind", [Seen()])
    chunks = turn(agent, [first, reply, user("Remind me what you found.", id="u2")])
    sent = server.requests[-1]["messages"]
    roles = [m["role"] for m in sent]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    call = sent[2]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert sent[3]["tool_call_id"] == "call_1"
    assert json.loads(sent[3]["content"]) == {"city": "Oslo", "sky": "sunny"}
    assert "sunny" in sent[4]["content"]
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "saw: What is the weather in Oslo? | Remind me what you found."
    assert WEATHER_CALLS == ["Oslo"]  # the earlier call is history, not run again


def test_stop_while_the_model_is_silent_closes_its_request(server: ModelServer,
                                                           agent: Any) -> None:
    server.on("hello", [Text("Partial words"), Silence(10), Text(" never")])
    controller = AbortController()
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        controller.abort("stop")

    def on_chunk(chunk: dict[str, Any]) -> None:
        if chunk["type"] == "text-delta" and chunk["delta"].endswith("words") and not fired:
            threading.Timer(0.05, fire).start()

    run = context([user("hello")], signal=controller.signal)
    chunks = LOOP[-1].run_until_complete(_collect(stream(agent, run), on_chunk))
    assert fired, "the stop never fired"
    assert chunks[-1] == {"type": "abort", "reason": "stop"}
    assert_valid_ui_stream(chunks)
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "Partial words"
    # the model saw its client hang up (long before the scripted silence would end)
    record = server.streams[-1]
    assert record.closed.wait(3)
    assert record.outcome == "client-closed"
    assert record.ended_at is not None
    print(f"request closed {1000 * (record.ended_at - fired[0]):.0f} ms after the stop")


def test_a_model_failure_is_an_error_chunk(server: ModelServer, agent: Any) -> None:
    server.on("hello", [Error(500, "upstream exploded")])
    chunks = turn(agent, [user("hello")],
                  on_error=lambda exc: f"agent failed: {type(exc).__name__}")
    errors = [c for c in chunks if c["type"] == "error"]
    assert len(errors) == 1 and errors[0]["errorText"].startswith("agent failed: ")
    assert chunks[-1] == {"type": "finish", "finishReason": "error"}
    # without on_error, the text says nothing of the cause
    chunks = turn(agent, [user("hello")])
    assert [c["errorText"] for c in chunks if c["type"] == "error"] == ["The agent run failed."]
    # a failure after some text keeps the text and closes its part before the error
    server.on("midway", [Text("Half an answer"), Error(500)])
    chunks = turn(agent, [user("midway")])
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "Half an answer"
    kinds = types(chunks)
    assert kinds[-4:] == ["text-end", "finish-step", "error", "finish"]


def test_a_tool_needing_approval_asks_then_runs_once_approved(server: ModelServer,
                                                               agent: Any) -> None:
    server.on("book", call_then_report(ToolCall("book_table", {"place": "Nora"}, id="call_b")))
    first = user("Please book Nora.")
    chunks = turn(agent, [first])
    assert {"type": "tool-approval-request", "approvalId": "call_b",
            "toolCallId": "call_b"} in chunks
    assert chunks[-1]["finishReason"] == "tool-calls"
    assert WEATHER_CALLS == []
    reply = assemble(chunks)
    part = next(p for p in reply["parts"] if p["type"] == "tool-book_table")
    assert part["state"] == "approval-requested"
    part["state"] = "approval-responded"
    part["approval"] = {"id": "call_b", "approved": True}
    chunks = turn(agent, [first, reply], known=("call_b",))
    assert WEATHER_CALLS == ["booked Nora"]
    kinds = types(collapse_deltas(chunks))
    assert kinds[:2] == ["start", "tool-output-available"]
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == (
        "Got book_table: booked at Nora")


def test_a_denied_tool_is_not_run_and_the_model_is_told(server: ModelServer,
                                                        agent: Any) -> None:
    server.on("book", call_then_report(ToolCall("book_table", {"place": "Nora"}, id="call_b")))
    first = user("Please book Nora.")
    reply = assemble(turn(agent, [first]))
    part = next(p for p in reply["parts"] if p["type"] == "tool-book_table")
    part["state"] = "approval-responded"
    part["approval"] = {"id": "call_b", "approved": False, "reason": "Not tonight."}
    chunks = turn(agent, [first, reply], known=("call_b",))
    assert WEATHER_CALLS == []
    assert {"type": "tool-output-denied", "toolCallId": "call_b"} in chunks
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == (
        "Got book_table: Not tonight.")


def test_importing_chatworker_imports_no_framework() -> None:
    code = ("import sys, chatworker, chatworker.integrations.openai_agents; "
            "print(sorted(m for m in ('agents', 'openai.agents') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"


def test_the_ai_sdk_client_accepts_every_stream(server: ModelServer, agent: Any,
                                                tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (CONFORMANCE / "node_modules" / "ai" / "package.json").exists():
        pytest.fail("Node.js and tests/conformance/node_modules (npm ci there) are required")
    server.on("weather", call_then_report(ToolCall("get_weather", {"city": "Oslo"})))
    server.on("book", call_then_report(ToolCall("book_table", {"place": "Nora"})))
    server.on("fail", [Error(500)])
    server.on("slow", [Text("Partial words"), Silence(10)])
    produced = {name: turn(agent, [user(text)]) for name, text in
                {"tool": "weather?", "approval": "book it", "error": "fail now"}.items()}
    controller = AbortController()

    def on_chunk(chunk: dict[str, Any]) -> None:
        if chunk["type"] == "text-delta":
            controller.abort("stop")

    run = context([user("slow")], signal=controller.signal)
    produced["stopped"] = LOOP[-1].run_until_complete(_collect(stream(agent, run), on_chunk))
    manifest = []
    for name, chunks in produced.items():
        path = tmp_path / f"{name}.sse"
        body = "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks)
        path.write_text(body + "data: [DONE]\n\n", encoding="utf-8")
        manifest.append({"name": name, "file": str(path)})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    proc = subprocess.run([node, str(CONFORMANCE / "assemble.mjs"),
                           str(tmp_path / "manifest.json")],
                          cwd=CONFORMANCE, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"node failed:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    for name, chunks in produced.items():
        sdk = report[name]
        assert sdk["violations"] == [], name
        assert sdk["chunks"] == len(chunks), name
        assert [e for e in sdk["errors"] if e["name"] != "Error"] == [], name
        ours = assemble(chunks, message_id="")
        assert [p["type"] for p in sdk["message"]["parts"]] == [
            p["type"] for p in ours["parts"]], name
    assert report["approval"]["message"]["parts"][-1]["state"] == "approval-requested"
    assert report["error"]["errors"][0]["message"] == "The agent run failed."


def test_reasoning_streams_and_files_reach_the_model(server: ModelServer, agent: Any) -> None:
    server.on("picture", [Reasoning("looking closely"), Text("A cat.")])
    pixel = "data:image/png;base64,iVBORw0KGgo="
    message = {"id": "u1", "role": "user", "parts": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "file", "mediaType": "image/png", "url": pixel, "filename": "cat.png"}]}
    chunks = turn(agent, [message])
    parts = assemble(chunks)["parts"]
    assert [(p["type"], p.get("text")) for p in parts if p["type"] != "step-start"] == [
        ("reasoning", "looking closely"), ("text", "A cat.")]
    content = server.requests[-1]["messages"][-1]["content"]
    assert {"type": "image_url", "image_url": {"url": pixel, "detail": "auto"}} in content
    assert {"type": "text", "text": "What is in this picture?"} in content
    # without reasoning when asked
    chunks = turn(agent, [message], send_reasoning=False)
    assert not [c for c in chunks if c["type"].startswith("reasoning")]


def test_a_handoff_is_a_tool_call_and_the_new_agent_is_named(server: ModelServer,
                                                             agent: Any) -> None:
    expert = agents.Agent(name="expert", instructions="Know things.", model=agent.model,
                          model_settings=agent.model_settings)
    triage = agent.clone(handoffs=[expert])
    server.on("hard", [ToolCall("transfer_to_expert", {}, id="call_h")], once=True)
    server.on("hard", [Text("Expert here.")])
    chunks = turn(triage, [user("A hard question")])
    kinds = types(chunks)
    assert {"type": "message-metadata", "messageMetadata": {"agent": "expert"}} in chunks
    assert kinds.index("tool-input-available") < kinds.index("tool-output-available")
    output = next(c for c in chunks if c["type"] == "tool-output-available")
    assert output["toolCallId"] == "call_h"
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "Expert here."
    assert chunks[-1]["messageMetadata"]["agent"] == "expert"


PDF = "data:application/pdf;base64,JVBE"


def test_history_items_for_each_kind_of_part() -> None:
    from chatworker.integrations.openai_agents import to_input_items

    def tool(call_id: str, state: str, **extra: Any) -> dict[str, Any]:
        return {"type": "tool-lookup", "toolCallId": call_id, "state": state,
                "input": {"q": call_id}, **extra}

    items = to_input_items([
        {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be kind."}]},
        {"id": "u", "role": "user", "parts": [
            {"type": "text", "text": "Read this"},
            {"type": "file", "mediaType": "application/pdf", "url": PDF, "filename": "a.pdf"}]},
        {"id": "a", "role": "assistant", "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "hmm"},
            {"type": "text", "text": "Looking "}, {"type": "text", "text": "it up."},
            tool("c1", "output-available", output={"n": 1}),
            tool("c2", "output-error", errorText="down"),
            tool("c3", "output-denied", approval={"id": "c3", "approved": False}),
            tool("c4", "input-available"),  # stopped before its result: left out
            {"type": "text", "text": "Done."}]},
    ])
    assert items == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": [
            {"type": "input_text", "text": "Read this"},
            {"type": "input_file", "file_data": PDF, "filename": "a.pdf"}]},
        {"role": "assistant", "content": "Looking it up."},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "c1"}'},
        {"type": "function_call_output", "call_id": "c1", "output": '{"n": 1}'},
        {"type": "function_call", "call_id": "c2", "name": "lookup", "arguments": '{"q": "c2"}'},
        {"type": "function_call_output", "call_id": "c2", "output": "down"},
        {"type": "function_call", "call_id": "c3", "name": "lookup", "arguments": '{"q": "c3"}'},
        {"type": "function_call_output", "call_id": "c3", "output": "Tool execution denied."},
        {"role": "assistant", "content": "Done."},
    ]


DEMO_TURN = """
import asyncio, json
from web.demo_openai_agents import demo_agent
from chatworker.integrations.openai_agents import stream
from chatworker.signals import AbortController
from types import SimpleNamespace
question = {"id": "u1", "role": "user",
            "parts": [{"type": "text", "text": "What's the weather in Berlin?"}]}
run = SimpleNamespace(ui_messages=[question], signal=AbortController().signal)
async def main():
    return [chunk async for chunk in stream(demo_agent(), run)]
print(json.dumps(asyncio.run(main())))
"""


def test_the_demo_agent_answers_offline_with_the_demo_model() -> None:
    # In a process of its own: the demo app's modules configure the process they load in.
    with ModelServer(demo=True, demo_tokens_per_second=0) as demo_server:
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        env["CHATWORKER_DEMO_MODEL_URL"] = demo_server.base_url
        out = subprocess.run([sys.executable, "-c", DEMO_TURN], env=env, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    chunks = json.loads(out.stdout.strip().splitlines()[-1])
    assert_valid_ui_stream(chunks)
    message = assemble(chunks)
    weather = [p for p in message["parts"] if p["type"] == "tool-get_weather"]
    assert weather and weather[0]["state"] == "output-available"
    assert weather[0]["output"]["city"] == "Berlin"
    assert message["parts"][-1]["type"] == "text" and message["parts"][-1]["text"]
