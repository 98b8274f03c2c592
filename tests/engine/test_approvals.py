"""Tool approvals in chat runs on a real worker: the turn that asks ends, the run suspends, and
the answer (sent hours later, twice, or to a continuation run) continues the same assistant
message, executing an approved tool exactly once (tasks in tests/approval_tasks.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import redis

from chatworker import runs
from chatworker.store.run_store import RunStore
from chatworker.testing import ModelServer, ToolCall, call_then_report
from chatworker.testing.checks import assert_valid_ui_stream

from ..approval_support import answer, assistant_of
from ..support import ROOT, events, payload, read_turn, text_of, types_of, user_message, wait_for

pytestmark = pytest.mark.integration

OUTPUT = {"table": 7, "people": 2}


def chunks(entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """A turn's UI message chunks (control entries left out)."""
    return [c for _, c in entries if not c["type"].startswith("__")]


def completes(r: redis.Redis, chat_id: str) -> list[dict[str, Any]]:
    return [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"]


def executions(r: redis.Redis, key: str) -> int:
    return int(r.get(f"test:executions:{key}") or 0)


def ask(model_server: ModelServer, r: redis.Redis, chat_id: str, task: str = "approvals",
        ) -> tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Turn 0: the model calls ``book``, which asks for approval. Returns the run id, the user
    message, the assistant message the client holds, and the turn's entries."""
    call = ToolCall("book", {"people": 2, "key": chat_id}, id=f"call-{chat_id}")
    model_server.on(f"book {chat_id}", call_then_report(call))
    user = user_message(f"book {chat_id}")
    started = runs.trigger(task, payload(chat_id, user))
    entries = read_turn(r, started.run_id)
    turn = chunks(entries)
    assert_valid_ui_stream(turn)
    message = assistant_of(turn, message_id=turn[0]["messageId"])
    return started.run_id, user, message, entries


def report(chat_id: str, output: Any = OUTPUT) -> str:
    content = output if isinstance(output, str) else json.dumps(output)
    return f"Got book: {content}"


def model_saw(model_server: ModelServer, chat_id: str) -> dict[str, Any]:
    """The last tool message the model was sent for this chat's call."""
    for body in reversed(model_server.requests):
        last = body["messages"][-1]
        if last["role"] == "tool" and last["tool_call_id"] == f"call-{chat_id}":
            return dict(last)
    raise AssertionError("the model never got a tool result for this chat")


def test_approval_after_the_run_suspended_continues_the_same_message(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    run_id, user, message, entries = ask(model_server, r, chat_id)
    kinds = types_of(entries)
    assert kinds[-4:] == ["tool-approval-request", "finish-step", "finish", "__turn_complete"]
    request = entries[-4][1]
    assert request["toolCallId"] == f"call-{chat_id}"
    first = wait_for(lambda: completes(r, chat_id))[0]["response_message"]
    assert first["parts"][-1]["state"] == "approval-requested"
    assert first["parts"][-1]["approval"] == {"id": request["approvalId"]}
    assert executions(r, chat_id) == 0
    # The run holds no worker while it waits.
    wait_for(lambda: runs.status(run_id).status == "suspended")

    approved = answer(message, approved=True)
    runs.send_message(run_id, payload(chat_id, user, approved))
    turn = chunks(read_turn(r, run_id, after=entries[-1][0]))
    assert_valid_ui_stream(turn, [f"call-{chat_id}"])
    assert turn[0] == {"type": "start", "messageId": message["id"]}
    assert turn[1] == {"type": "tool-output-available", "toolCallId": f"call-{chat_id}",
                       "output": OUTPUT}
    assert text_of([("", c) for c in turn]) == report(chat_id)
    assert executions(r, chat_id) == 1
    assert model_saw(model_server, chat_id)["content"] == json.dumps(OUTPUT)

    done = wait_for(lambda: completes(r, chat_id)[1:])[0]
    response = done["response_message"]
    assert response["id"] == message["id"]
    assert [p["type"] for p in response["parts"]] == ["step-start", "tool-book", "step-start",
                                                      "text"]
    tool_part = response["parts"][1]
    assert tool_part["state"] == "output-available" and tool_part["output"] == OUTPUT
    assert tool_part["approval"] == {"id": request["approvalId"], "approved": True}
    assert [m["id"] for m in done["ui_messages"]] == [user["id"], message["id"]]


def test_denied_call_is_not_executed_and_the_model_hears_why(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    run_id, user, message, entries = ask(model_server, r, chat_id)
    denied = answer(message, approved=False, reason="too expensive")
    runs.send_message(run_id, payload(chat_id, user, denied))
    turn = chunks(read_turn(r, run_id, after=entries[-1][0]))
    assert turn[1] == {"type": "tool-output-denied", "toolCallId": f"call-{chat_id}"}
    assert text_of([("", c) for c in turn]) == report(chat_id, "too expensive")
    assert model_saw(model_server, chat_id)["content"] == "too expensive"
    assert executions(r, chat_id) == 0
    done = wait_for(lambda: completes(r, chat_id)[1:])[0]
    part = done["response_message"]["parts"][1]
    assert part["state"] == "output-denied"
    assert part["approval"]["approved"] is False and part["approval"]["reason"] == "too expensive"


def test_an_approval_sent_twice_executes_the_tool_once(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    run_id, user, message, entries = ask(model_server, r, chat_id)
    approved = answer(message, approved=True)
    runs.send_message(run_id, payload(chat_id, user, approved))
    first = read_turn(r, run_id, after=entries[-1][0])
    runs.send_message(run_id, payload(chat_id, user, approved))  # a client resends it
    second = chunks(read_turn(r, run_id, after=first[-1][0]))
    assert executions(r, chat_id) == 1
    # The recorded output answers the resent approval.
    assert second[1] == {"type": "tool-output-available", "toolCallId": f"call-{chat_id}",
                         "output": OUTPUT}
    assert text_of([("", c) for c in second]) == report(chat_id)
    done = wait_for(lambda: completes(r, chat_id)[2:])[0]
    assert [m["id"] for m in done["ui_messages"]] == [user["id"], message["id"]]


def test_approval_after_the_run_ended_reaches_a_continuation_run(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    run_id, user, message, _ = ask(model_server, r, chat_id, task="approvals-brief")
    wait_for(lambda: runs.status(run_id).status == "completed")
    approved = answer(message, approved=True)
    with pytest.raises(runs.RunEnded):
        runs.send_message(run_id, payload(chat_id, user, approved))
    started = runs.trigger("approvals-brief", payload(
        chat_id, user, approved, continuation=True, previousRunId=run_id))
    turn = chunks(read_turn(r, started.run_id))
    assert turn[0] == {"type": "start", "messageId": message["id"]}
    assert turn[1]["type"] == "tool-output-available" and turn[1]["output"] == OUTPUT
    assert text_of([("", c) for c in turn]) == report(chat_id)
    assert executions(r, chat_id) == 1
    done = wait_for(lambda: completes(r, chat_id)[1:])[0]
    assert done["continuation"] is True
    assert done["response_message"]["parts"][1]["state"] == "output-available"


def test_a_turn_ending_in_an_approval_request_can_give_the_run_a_day(
    worker: object, model_server: ModelServer, r: redis.Redis, chat_id: str
) -> None:
    run_id, user, message, entries = ask(model_server, r, chat_id, task="approvals-long")
    wait_for(lambda: runs.status(run_id).status == "suspended")
    assert RunStore(r).checkpoint(run_id)["turn_timeout"] == 86400
    # ... and the answer still resumes it.
    runs.send_message(run_id, payload(chat_id, user, answer(message, approved=True)))
    turn = chunks(read_turn(r, run_id, after=entries[-1][0]))
    assert text_of([("", c) for c in turn]) == report(chat_id)


def test_the_docs_example_defines_a_task_whose_tool_needs_approval() -> None:
    text = (ROOT / "docs" / "agents.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/agents.md", "exec"), namespace)  # our own docs
    booking = namespace["Booking"]
    spec = namespace["concierge"]  # the task object; its tool is built per turn
    assert spec.id == "concierge"
    assert namespace["large_group"](booking(restaurant="x", people=6)) is True
