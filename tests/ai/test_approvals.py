"""stream_text tool approvals: ``needs_approval`` asks instead of executing, and the user's
answer (an ``approval-responded`` tool part, as the AI SDK client resubmits it) is acted on
before the next model call: executed once when approved, reported to the model when denied."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel

from chatworker.ai import UIMessageStreamFinishEvent, stream_text, tool
from chatworker.ai.approvals import answered_approvals
from chatworker.ai.providers import OpenAIChatModel
from chatworker.protocol.messages import dump
from chatworker.testing import ModelServer, ToolCall, call_then_report
from chatworker.testing.checks import assert_valid_ui_stream

from ..approval_support import answer, assistant_of
from .helpers import types, ui

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "book a table for 2"}]}


class Booking(BaseModel):
    people: int


def booking_tool(executed: list[int], needs_approval: Any = True) -> Any:
    def execute(args: Booking) -> dict[str, Any]:
        executed.append(args.people)
        return {"table": 7, "people": args.people}

    return tool(description="Book a table.", parameters=Booking, execute=execute,
                needs_approval=needs_approval)


def continued(result: Any, message: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    """The chunks of a turn continuing ``message``, validated as a client continuing it would."""
    chunks = list(result.to_ui_message_stream(original_messages=[USER, message], **options))
    assert_valid_ui_stream(chunks, [p["toolCallId"] for p in message["parts"] if "toolCallId" in p])
    return chunks


def first_turn(model: OpenAIChatModel, tools: dict[str, Any]) -> list[dict[str, Any]]:
    return ui(stream_text(model=model, messages=[USER], tools=tools, max_steps=5))


def test_a_call_needing_approval_streams_a_request_and_is_not_executed(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="c1")))
    executed: list[int] = []
    chunks = first_turn(model, {"book": booking_tool(executed)})
    assert types(chunks)[-5:] == ["tool-input-delta", "tool-input-available",
                                  "tool-approval-request", "finish-step", "finish"]
    request = chunks[-3]
    assert request["toolCallId"] == "c1" and len(request["approvalId"]) == 16
    assert chunks[-1]["finishReason"] == "tool-calls"
    assert executed == [] and len(server.requests) == 1  # not executed, model not called again
    part = assistant_of(chunks)["parts"][-1]
    assert part["state"] == "approval-requested"
    assert part["approval"] == {"id": request["approvalId"]}


def test_approved_call_executes_then_the_model_answers_in_the_same_message(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="c1")))
    executed: list[int] = []
    tools = {"book": booking_tool(executed)}
    message = answer(assistant_of(first_turn(model, tools)), approved=True)
    finished: list[UIMessageStreamFinishEvent] = []
    result = stream_text(model=model, messages=[USER, message], tools=tools, max_steps=5)
    chunks = continued(result, message, on_finish=finished.append)
    assert executed == [2]
    assert chunks[0] == {"type": "start", "messageId": message["id"]}
    assert chunks[1] == {"type": "tool-output-available", "toolCallId": "c1",
                         "output": {"table": 7, "people": 2}}
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == 'Got book: {"table": 7, "people": 2}'
    # The model's second request carries the call and its result.
    second = server.requests[-1]["messages"]
    assert second[-2]["tool_calls"][0]["id"] == "c1"
    assert second[-1] == {"role": "tool", "tool_call_id": "c1",
                          "content": json.dumps({"table": 7, "people": 2})}
    response = dump(finished[0].response_message)
    assert finished[0].is_continuation and response["id"] == message["id"]
    assert [p["type"] for p in response["parts"]] == ["step-start", "tool-book", "step-start",
                                                      "text"]
    assert response["parts"][1]["state"] == "output-available"
    assert response["parts"][1]["approval"]["approved"] is True


def test_denied_call_is_reported_to_the_model_with_its_reason(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="c1")))
    executed: list[int] = []
    tools = {"book": booking_tool(executed)}
    message = answer(assistant_of(first_turn(model, tools)), approved=False,
                     reason="too expensive")
    finished: list[UIMessageStreamFinishEvent] = []
    result = stream_text(model=model, messages=[USER, message], tools=tools, max_steps=5)
    chunks = continued(result, message, on_finish=finished.append)
    assert executed == []
    assert chunks[1] == {"type": "tool-output-denied", "toolCallId": "c1"}
    assert server.requests[-1]["messages"][-1] == {"role": "tool", "tool_call_id": "c1",
                                                   "content": "too expensive"}
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "Got book: too expensive"
    part = dump(finished[0].response_message)["parts"][1]
    assert part["state"] == "output-denied"
    assert part["approval"] == {"id": part["approval"]["id"], "approved": False,
                                "reason": "too expensive"}


def test_needs_approval_as_sync_and_async_functions_of_the_arguments(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    def big(args: Booking) -> bool:
        return args.people > 4

    async def big_async(args: Booking) -> bool:
        await asyncio.sleep(0)
        return args.people > 4

    for check in (big, big_async):
        server.reset()
        server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="small"),
                                           ToolCall("book", {"people": 8}, id="large")))
        executed: list[int] = []
        chunks = first_turn(model, {"book": booking_tool(executed, check)})
        requests = [c for c in chunks if c["type"] == "tool-approval-request"]
        assert [r["toolCallId"] for r in requests] == ["large"], check
        assert executed == [2]  # the small booking ran at once, the large one waits
        assert len(server.requests) == 1  # a call still waits: the step loop stops


def test_two_approvals_in_one_step_one_approved_one_denied(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="a"),
                                       ToolCall("book", {"people": 3}, id="b")))
    executed: list[int] = []
    tools = {"book": booking_tool(executed)}
    chunks = first_turn(model, tools)
    assert len([c for c in chunks if c["type"] == "tool-approval-request"]) == 2
    message = answer(answer(assistant_of(chunks), True, call_id="a"), False, "no", call_id="b")
    result = stream_text(model=model, messages=[USER, message], tools=tools, max_steps=5)
    chunks = continued(result, message)
    assert executed == [2]
    # As the AI SDK: denials stream first, then the approved calls execute.
    assert [c["type"] for c in chunks[1:3]] == ["tool-output-denied", "tool-output-available"]
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    # The denial's result comes with the answers (converted), the executed one after it.
    assert text == 'Got book: no; book: {"table": 7, "people": 2}'


def test_answers_already_acted_on_are_not_collected_again() -> None:
    call = {"type": "tool-call", "toolCallId": "c", "toolName": "t", "input": {}}
    request = {"type": "tool-approval-request", "approvalId": "ap", "toolCallId": "c"}
    approved = {"type": "tool-approval-response", "approvalId": "ap", "approved": True}
    history = [{"role": "assistant", "content": [call, request]},
               {"role": "tool", "content": [approved, approved]}]
    assert [a.tool_call_id for a in answered_approvals(history)] == ["c"]  # twice: once
    result = {"type": "tool-result", "toolCallId": "c", "toolName": "t",
              "output": {"type": "json", "value": 1}}
    history[-1]["content"] = [approved, result]
    assert answered_approvals(history) == []  # executed already
    unknown = {"type": "tool-approval-response", "approvalId": "zz", "approved": True}
    history[-1]["content"] = [unknown]
    assert answered_approvals(history) == []  # answers no request: ignored


def test_a_request_left_unanswered_is_dropped_once_the_user_moves_on(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="c1")))
    executed: list[int] = []
    tools = {"book": booking_tool(executed)}
    message = assistant_of(first_turn(model, tools))
    later = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "never mind"}]}
    chunks = ui(stream_text(model=model, messages=[USER, message, later], tools=tools))
    assert "error" not in types(chunks) and executed == []
    sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "user"]  # the unanswered call is left out


def test_an_approved_call_never_executed_is_dropped_once_the_user_moves_on(
    server: ModelServer, model: OpenAIChatModel
) -> None:
    """The turn that was to execute it was stopped first: the call has an answer, no result."""
    server.on("book", call_then_report(ToolCall("book", {"people": 2}, id="c1")))
    executed: list[int] = []
    tools = {"book": booking_tool(executed)}
    message = answer(assistant_of(first_turn(model, tools)), approved=True)
    later = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "never mind"}]}
    chunks = ui(stream_text(model=model, messages=[USER, message, later], tools=tools))
    assert "error" not in types(chunks) and executed == []
    assert [m["role"] for m in server.requests[-1]["messages"]] == ["user", "user"]
