"""stream_text's UI message streams, checked by the real AI SDK client code (ai@7, Node).

The SDK's ``parseJsonEventStream`` + ``uiMessageChunkSchema`` must accept every chunk, and its
``readUIMessageStream`` must assemble the same message as chatworker's ``MessageAssembler``.
Needs ``npm ci`` in tests/conformance (Node 20+).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chatworker.ai import Steering, StreamTextResult, openai, stream_text, tool
from chatworker.ai.providers import OpenAIChatModel
from chatworker.protocol import convert_to_model_messages, dump
from chatworker.protocol.assemble import MessageAssembler
from chatworker.signals import AbortController
from chatworker.testing import (
    Citation,
    Disconnect,
    Error,
    ModelServer,
    Reasoning,
    Seen,
    Silence,
    Text,
    ToolCall,
)

HERE = Path(__file__).resolve().parent.parent / "conformance"
SCRIPT = HERE / "assemble.mjs"


class City(BaseModel):
    city: str


def _weather(args: City) -> dict[str, Any]:
    return {"city": args.city, "temperature": 21, "conditions": "sunny"}


def _broken(args: City) -> None:
    raise RuntimeError("backend down")


WEATHER = tool(description="Weather for a city.", parameters=City, execute=_weather)
BROKEN = tool(description="Always fails.", parameters=City, execute=_broken)
CLIENT_SIDE = tool(description="Answered in the browser.", parameters=City)
GUARDED = tool(description="Weather, once the user agrees.", parameters=City, execute=_weather,
               needs_approval=True)


def _abort_when_text_arrives(
    result: StreamTextResult, controller: AbortController, **options: Any
) -> list[dict[str, Any]]:
    chunks = []
    for chunk in result.to_ui_message_stream(**options):
        chunks.append(chunk)
        if chunk["type"] == "text-delta" and len(chunks) < 50:
            threading.Timer(0.05, controller.abort, args=("stop",)).start()
    return chunks


def _scenarios(
    server: ModelServer, model: OpenAIChatModel
) -> dict[str, Callable[[str], list[dict[str, Any]]]]:
    def run(trigger: str, reply: list[Any], **kwargs: Any) -> Callable[[str], list[dict[str, Any]]]:
        def produce(message_id: str) -> list[dict[str, Any]]:
            server.reset()
            server.on(trigger, reply, once=True)
            server.on(trigger, [Text("All done, here is the answer.")])
            options = kwargs.pop("ui", {})
            result = stream_text(
                model=model, messages=[{"role": "user", "content": trigger}], **kwargs
            )
            return list(result.to_ui_message_stream(message_id=message_id, **options))

        return produce

    def aborted(message_id: str) -> list[dict[str, Any]]:
        server.reset()
        server.on("stop", [Reasoning("thinking"), Text("Partial answer that"), Silence(10)])
        controller = AbortController()
        result = stream_text(
            model=model,
            messages=[{"role": "user", "content": "stop"}],
            abort_signal=controller.signal,
        )
        return _abort_when_text_arrives(result, controller, message_id=message_id)

    def steered(message_id: str) -> list[dict[str, Any]]:
        # A message steered in while the tool runs joins the next step (the model sees it).
        server.reset()
        server.on("weather", [ToolCall("get_weather", {"city": "Oslo"})], once=True)
        server.on(None, [Seen()])
        steering = Steering()

        def weather_and_steer(args: City) -> dict[str, Any]:
            steering.steer({"id": "steer-1", "parts": [{"type": "text", "text": "And Rome?"}]})
            return _weather(args)

        result = stream_text(
            model=model, messages=[{"role": "user", "content": "weather"}], max_steps=3,
            tools={"get_weather": tool(parameters=City, execute=weather_and_steer)},
            steering=steering,
        )
        return list(result.to_ui_message_stream(message_id=message_id))

    return {
        "steered": steered,
        "text": run("text", [Text("Hello there, how can I help?")]),
        "reasoning": run(
            "reason", [Reasoning("Let me think step by step."), Text("The answer is 42.")]
        ),
        "server_tool": run(
            "tool",
            [Text("Checking."), ToolCall("get_weather", {"city": "Oslo"})],
            tools={"get_weather": WEATHER},
            max_steps=2,
        ),
        "client_tool": run(
            "client",
            [ToolCall("ask_user", {"city": "Rome"})],
            tools={"ask_user": CLIENT_SIDE},
            max_steps=3,
        ),
        "approval_request": run(
            "approve",
            [ToolCall("get_weather", {"city": "Oslo"}), ToolCall("guarded", {"city": "Rome"})],
            tools={"get_weather": WEATHER, "guarded": GUARDED},
            max_steps=2,
        ),
        "tool_errors": run(
            "fail",
            [ToolCall("broken", {"city": "Oslo"}), ToolCall("get_weather", '{"city": "Os')],
            tools={"broken": BROKEN, "get_weather": WEATHER},
            max_steps=2,
        ),
        "sources": run(
            "cite",
            [
                Text("According to the docs."),
                Citation("https://example.com/a", "Doc A"),
                Citation("https://example.com/b"),
            ],
            ui={"send_sources": True},
        ),
        "metadata": run(
            "meta", [Text("With metadata.")], ui={"message_metadata": lambda c: {"part": c["type"]}}
        ),
        "error_mid_stream": run("drop", [Text("Half an ans"), Disconnect()]),
        "error_before_first_byte": run("limit", [Error(429, "rate limited")]),
        "aborted": aborted,
    }


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the conformance test (node not found on PATH)")
    if not (HERE / "node_modules" / "ai" / "package.json").exists():
        pytest.fail(
            "tests/conformance/node_modules is missing: run `npm ci` in tests/conformance "
            "(ai@7 on Node 20 also needs `--engine-strict=false`)"
        )
    return node


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def test_sdk_parses_and_assembles_like_chatworker(tmp_path: Path) -> None:
    node = _node()
    produced: dict[str, list[dict[str, Any]]] = {}
    with ModelServer() as server:
        model = openai("conformance-model", base_url=server.base_url, max_retries=0)
        for name, produce in _scenarios(server, model).items():
            produced[name] = produce(f"msg-{name}")

    manifest = []
    for name, chunks in produced.items():
        path = tmp_path / f"{name}.sse"
        body = "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks)
        path.write_text(body + "data: [DONE]\n\n", encoding="utf-8")
        manifest.append({"name": name, "file": str(path)})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    proc = subprocess.run(
        [node, str(SCRIPT), str(tmp_path / "manifest.json")],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"node failed:\n{proc.stderr}"
    report = json.loads(proc.stdout)

    problems: list[str] = []
    for name, chunks in produced.items():
        sdk = report[name]
        if sdk["violations"]:
            problems.append(f"{name}: the SDK rejected chunks: {sdk['violations']}")
        if sdk["chunks"] != len(chunks):
            problems.append(f"{name}: the SDK parsed {sdk['chunks']} of {len(chunks)} chunks")
        assembler = MessageAssembler()
        for chunk in chunks:
            assembler.feed(chunk)
        ours = assembler.to_dict()
        if _normalise(sdk["message"]) != _normalise(ours):
            problems.append(
                f"{name}: messages differ\n  sdk:  {json.dumps(sdk['message'])}"
                f"\n  ours: {json.dumps(ours)}"
            )
        if ours["id"] != f"msg-{name}":
            problems.append(f"{name}: message id {ours['id']!r}")
        sequence_errors = [e for e in sdk["errors"] if e["name"] != "Error"]
        if sequence_errors:
            problems.append(f"{name}: SDK stream errors {sequence_errors}")
        error_texts = [c["errorText"] for c in chunks if c["type"] == "error"]
        if [e["message"] for e in sdk["errors"] if e["name"] == "Error"] != error_texts:
            problems.append(f"{name}: SDK onError saw {sdk['errors']}, sent {error_texts}")
    assert not problems, "\n".join(problems)

    # the scenarios really cover what they claim
    def kinds(name: str) -> set[str]:
        return {c["type"] for c in produced[name]}

    assert "reasoning-delta" in kinds("reasoning")
    assert {"tool-input-available", "tool-output-available"} <= kinds("server_tool")
    assert produced["client_tool"][-3]["type"] == "tool-input-available"
    assert {"tool-output-error", "tool-input-error"} <= kinds("tool_errors")
    assert {"tool-approval-request", "tool-output-available"} <= kinds("approval_request")
    states = [p.get("state") for p in report["approval_request"]["message"]["parts"]]
    assert states == [None, "output-available", "approval-requested"]
    assert "source-url" in kinds("sources")
    assert "error" in kinds("error_mid_stream") and "error" in kinds("error_before_first_byte")
    assert produced["aborted"][-1] == {"type": "abort", "reason": "stop"}
    parts = report["server_tool"]["message"]["parts"]
    assert [p["type"] for p in parts] == [
        "step-start",
        "text",
        "tool-get_weather",
        "step-start",
        "text",
    ]
    assert parts[2]["state"] == "output-available"
    assert report["metadata"]["message"]["metadata"] == {"part": "finish"}
    # The steered message: a part of the assistant message the SDK keeps and validates, and
    # converts, as chatworker does, into a user message after the step's tool results.
    steered = report["steered"]
    assert [p["type"] for p in steered["message"]["parts"]] == [
        "step-start", "tool-get_weather", "steering-message", "step-start", "text"]
    assert steered["history"]["valid"] is True, steered["history"]
    ours = [dump(m) for m in convert_to_model_messages([
        {"id": "user-1", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
        steered["message"]])]
    assert _normalise(steered["history"]["model"]) == _normalise(ours)
    assert [m["role"] for m in ours] == ["user", "assistant", "tool", "user", "assistant"]
    assert ours[3]["content"] == [{"type": "text", "text": "And Rome?"}]


def test_conformance_package_is_pinned() -> None:
    package = json.loads((HERE / "package.json").read_text())
    assert package["dependencies"]["ai"] == "7.0.173"
    lock = json.loads((HERE / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/ai"]["version"] == "7.0.173"
