"""Tool approvals from the real AI SDK client, against the demo chat task, end to end.

``Chat`` (the pinned ``ai`` package's ``AbstractChat``) with ``addToolApprovalResponse`` and
``sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses``, twice: over the
stock ``DefaultChatTransport`` against the ``/ui`` routes (``tests/aisdk/ui_approvals.mjs``), and
over ``ChatWorkerTransport`` against the run API (``tests/transport/approvals.mjs``). The demo
stack is real: a celery worker running ``web.demo_tasks``, a gunicorn gateway, Redis, and the
offline demo model (served by the scripted model server), which calls ``book_table`` (it needs
approval) for "book a table". The scripts assert what the user sees; these tests then check what
the run kept and what the model was told.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatworker import tokens
from chatworker.testing import ModelServer, Text

from ..conftest import SECRET
from ..support import ROOT, wait_for
from .browser_support import DemoStack, demo_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AISDK = ROOT / "tests" / "aisdk"
TRANSPORT = ROOT / "tests" / "transport"
TRANSPORT_DIST = ROOT / "web" / "transport" / "dist" / "index.js"
TASK = "demo-chat"


#: The answer after an approved booking at "Slow Lane": long and slow, to reload during it.
SLOW = " ".join(f"b{i}" for i in range(1, 61)) + "."


def _answers_slow_lane(body: dict[str, Any]) -> bool:
    messages = body["messages"]
    return messages[-1].get("role") == "tool" and "Slow Lane" in json.dumps(messages)


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = ModelServer(port=0, demo=True, demo_tokens_per_second=None)
    server.on(_answers_slow_lane, [Text(SLOW, tokens_per_second=20)])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo(
    redis_url: str, model: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    path = tmp_path_factory.mktemp("approvals") / "demo.sqlite3"
    with demo_stack(redis_url, 14, model.base_url, path) as stack:
        yield stack
    assert "Traceback" not in stack.gateway.log(), stack.logs()


def node(package: Path) -> str:
    """``node``, or a clear failure (these tests never skip)."""
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("node is not installed: the AI SDK client tests need Node 20 or later")
    if not (package / "node_modules" / "ai").is_dir():
        pytest.fail(f"{package.relative_to(ROOT)}/node_modules is missing: run `npm ci` there "
                    "(it installs the pinned `ai` package the tests drive)")
    if package == TRANSPORT and not TRANSPORT_DIST.is_file():
        pytest.fail("web/transport/dist is missing: run `npm ci && npm run build` in web")
    return binary


def run_script(demo: DemoStack, package: Path, script: str, scenario: str) -> dict[str, Any]:
    """Run one Node scenario against the demo stack; its RESULT object (fail otherwise)."""
    token = tokens.create_trigger_token(TASK, multiple_use=True)
    env = dict(os.environ)
    env.update(BASE_URL=demo.url, TOKEN=token, TASK_ID=TASK, TOKENS=json.dumps({TASK: token}),
               TOKEN_SECRET=SECRET, TOKEN_ISSUER=tokens.ISSUER)  # fmt: skip
    proc = subprocess.run([node(package), script, scenario], cwd=package, env=env,
                          capture_output=True, text=True, timeout=100)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"{script} {scenario} failed:\n{proc.stdout}{proc.stderr}\n{demo.logs()}"
    )
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def stored_reply(demo: DemoStack, chat_id: str, message_id: str) -> dict[str, Any]:
    """The chat's first reply as the demo task stored it (the message the approval continued),
    once its tool call is settled: the task stores the reply in ``on_turn_complete``, just after
    the client saw the turn end."""

    def settled() -> dict[str, Any] | None:
        stored = demo.stored_chat(chat_id)
        replies = [m for m in (stored or {}).get("messages", []) if m["role"] == "assistant"]
        if not replies or replies[0]["id"] != message_id:
            return None
        states = {p.get("state") for p in replies[0]["parts"] if p["type"] == "tool-book_table"}
        return dict(replies[0]) if states & FINAL else None

    reply: dict[str, Any] | None = wait_for(settled)
    assert reply is not None
    return reply


FINAL = {"output-available", "output-denied", "output-error"}


def tool_part(message: dict[str, Any]) -> dict[str, Any]:
    parts = [p for p in message["parts"] if p["type"] == "tool-book_table"]
    assert len(parts) == 1, message["parts"]
    return dict(parts[0])


def booking_results(model: ModelServer, restaurant: str) -> list[str]:
    """The ``book_table`` results the model was sent for a booking at ``restaurant`` (one per
    request that carried one: the model is called once with it, then the turn is over)."""
    seen = []
    for body in model.requests:
        calls = {
            call["id"]: call["function"]["arguments"]
            for message in body["messages"]
            for call in message.get("tool_calls") or []
            if call["function"]["name"] == "book_table"
        }
        for message in body["messages"]:
            arguments = calls.get(message.get("tool_call_id"))
            if message.get("role") == "tool" and arguments and restaurant in arguments:
                seen.append(str(message.get("content")))
    return seen


# -- the stock AI SDK client against /ui --------------------------------------------------------


def test_ui_approve_runs_the_tool_once_in_the_same_message(
    demo: DemoStack, model: ModelServer
) -> None:
    result = run_script(demo, AISDK, "ui_approvals.mjs", "approve")
    reply = stored_reply(demo, result["chatId"], result["messageId"])
    part = tool_part(reply)
    assert part["state"] == "output-available"
    assert part["output"]["confirmation"] == result["confirmation"]
    assert part["approval"]["approved"] is True


def test_ui_deny_tells_the_model_why(demo: DemoStack, model: ModelServer) -> None:
    result = run_script(demo, AISDK, "ui_approvals.mjs", "deny")
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    assert part["state"] == "output-denied"
    assert part["approval"] == {**part["approval"], "approved": False, "reason": "Not tonight"}
    [told] = booking_results(model, "Chez Anna")
    assert "Not tonight" in told


def test_ui_reload_while_the_approved_answer_streams(demo: DemoStack) -> None:
    result = run_script(demo, AISDK, "ui_approvals.mjs", "reloadmid")
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    assert part["state"] == "output-available"


def test_ui_approval_after_a_reload(demo: DemoStack) -> None:
    result = run_script(demo, AISDK, "ui_approvals.mjs", "reload")
    assert tool_part(stored_reply(demo, result["chatId"], result["messageId"]))["state"] == (
        "output-available"
    )


# -- ChatWorkerTransport against the run API ----------------------------------------------------


def test_transport_approve(demo: DemoStack, model: ModelServer) -> None:
    result = run_script(demo, TRANSPORT, "approvals.mjs", "approve")
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    # The demo stores each reply in on_turn_complete, just after the client saw the turn end.
    stored = wait_for(lambda: (chat := demo.stored_chat(result["chatId"])) is not None and [
        m["role"] for m in chat["messages"]] == ["user", "assistant"] * 2 and chat)
    assert stored["session"]["runId"] == result["runId"]
    assert part["state"] == "output-available" and part["output"]["booked"] is True


def test_transport_deny(demo: DemoStack, model: ModelServer) -> None:
    result = run_script(demo, TRANSPORT, "approvals.mjs", "deny")
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    assert part["state"] == "output-denied"


def test_transport_approval_after_a_reload(demo: DemoStack) -> None:
    result = run_script(demo, TRANSPORT, "approvals.mjs", "reload")
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    assert part["state"] == "output-available"


def test_transport_reload_while_the_approved_answer_streams(demo: DemoStack) -> None:
    result = run_script(demo, TRANSPORT, "approvals.mjs", "reloadmid")
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    assert part["state"] == "output-available"


def test_transport_approval_after_the_run_ended(demo: DemoStack, model: ModelServer) -> None:
    result = run_script(demo, TRANSPORT, "approvals.mjs", "ended")
    stored = demo.stored_chat(result["chatId"])
    assert stored is not None and stored["session"]["runId"] == result["secondRun"]
    part = tool_part(stored_reply(demo, result["chatId"], result["messageId"]))
    assert part["state"] == "output-available"
