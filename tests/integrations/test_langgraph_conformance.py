"""The LangGraph adapter's streams, checked by the real AI SDK client code (ai@7, Node): its
chunk schema accepts every chunk and ``readUIMessageStream`` assembles the message chatworker's
``MessageAssembler`` does. Needs ``npm ci`` in tests/conformance (as tests/ai/test_conformance)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph", reason="LangGraph is not installed (extra 'langgraph')")
pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")

from langgraph.prebuilt import ToolNode

from chatworker.integrations.langgraph import require_approval, stream
from chatworker.protocol.assemble import MessageAssembler
from chatworker.signals import AbortController
from chatworker.testing import Error, ModelServer, Silence, Text, ToolCall, call_then_report

from ..ai.test_conformance import HERE, SCRIPT, _node, _normalise
from .test_langgraph import Turn, agent, broken, collect, get_weather, user
from .test_langgraph_approvals import book_table


def _scenarios(server: ModelServer) -> dict[str, list[dict[str, Any]]]:
    server.on("weather", [ToolCall("get_weather", {"city": "Oslo"})], once=True)
    server.on("weather", [Text("It is sunny in Oslo.")], once=True)
    server.on("broken", [ToolCall("broken", {"city": "Oslo"})], once=True)
    server.on("broken", [Text("The station is down.")], once=True)
    server.on("bad json", [ToolCall("get_weather", "city=Oslo")], once=True)
    server.on("bad json", [Text("Sorry.")], once=True)
    server.on("fail", [Error(500, "boom")])
    server.on("stop", [Text("Partial answer that"), Silence(10)])
    server.on("book", call_then_report(ToolCall("book_table", {"place": "Nora"})))
    out = {
        "text": collect(stream(agent(server), Turn([user("hello")]))),
        "tool": collect(stream(agent(server), Turn([user("weather")]))),
        "tool_error": collect(stream(
            agent(server, ToolNode([broken], handle_tool_errors=True)), Turn([user("broken")]))),
        "bad_tool_input": collect(stream(agent(server, [get_weather]), Turn([user("bad json")]))),
        "model_error": collect(stream(agent(server), Turn([user("fail")]))),
        "approval": collect(stream(agent(server, [require_approval(book_table)]),
                                   Turn([user("book")]))),
    }
    controller = AbortController()

    def on_chunk(chunk: dict[str, Any]) -> None:
        if chunk["type"] == "text-delta":
            threading.Timer(0.05, controller.abort, args=("stop",)).start()

    out["aborted"] = collect(stream(agent(server), Turn([user("stop")], controller.signal)),
                             on_chunk)
    return out


def test_sdk_parses_and_assembles_the_langgraph_streams(tmp_path: Path) -> None:
    node = _node()
    with ModelServer() as server:
        produced = _scenarios(server)
    manifest = []
    for name, chunks in produced.items():
        assert chunks[0] == {"type": "start"}
        chunks[0] = {"type": "start", "messageId": f"msg-{name}"}  # as the turn's output adds
        path = tmp_path / f"{name}.sse"
        body = "".join(f"data: {json.dumps(c, separators=(',', ':'))}\n\n" for c in chunks)
        path.write_text(body + "data: [DONE]\n\n", encoding="utf-8")
        manifest.append({"name": name, "file": str(path)})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    proc = subprocess.run([node, str(SCRIPT), str(tmp_path / "manifest.json")], cwd=HERE,
                          capture_output=True, text=True, timeout=120)
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
        if _normalise(sdk["message"]) != _normalise(assembler.to_dict()):
            problems.append(f"{name}: messages differ\n  sdk:  {json.dumps(sdk['message'])}"
                            f"\n  ours: {json.dumps(assembler.to_dict())}")
        if [e for e in sdk["errors"] if e["name"] != "Error"]:
            problems.append(f"{name}: SDK stream errors {sdk['errors']}")
    assert not problems, "\n".join(problems)
    kinds = {name: {c["type"] for c in chunks} for name, chunks in produced.items()}
    assert {"tool-input-delta", "tool-output-available"} <= kinds["tool"]
    assert "tool-output-error" in kinds["tool_error"]
    assert "tool-input-error" in kinds["bad_tool_input"]
    assert "error" in kinds["model_error"]
    assert produced["aborted"][-1]["type"] == "abort"
    assert "tool-approval-request" in kinds["approval"]
    assert report["approval"]["message"]["parts"][-1]["state"] == "approval-requested"
