"""Tools of a LangGraph graph that wait for the user's approval, as AI SDK tool approvals.

:func:`require_approval` wraps a LangChain tool so that, called by the graph's ``ToolNode``, it
pauses the graph with LangGraph's ``interrupt()`` before it runs. The chat adapter turns that
interrupt into a ``tool-approval-request`` and ends the turn. The user's answer comes back in
the resubmitted assistant message (the tool part ``approval-responded``); the next turn acts on
it before the graph runs again (:func:`answer_approvals`): an approved call runs the wrapped tool,
a denied one is not run, and the graph is given the conversation with the call's result or the
denial. No checkpointer is needed: each turn starts from the chat's conversation.

Run natively (outside chatworker, with a checkpointer), the wrapped tool resumes with
``Command(resume={"approved": True})`` or ``{"approved": False, "reason": "..."}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

from chatworker.protocol.messages import DynamicToolUIPart, ToolUIPart, UIMessage

__all__ = ["DENIED_OUTPUT", "ApprovalTool", "answer_approvals", "approval_call",
           "require_approval", "with_results"]

log = logging.getLogger("chatworker.integrations")

DENIED_OUTPUT = "Tool execution denied."
"""What the model is told a denied call returned (when the user gave no reason)."""

_KIND = "tool-approval"


class ApprovalTool(BaseTool):
    """A tool that asks the user before it runs: see :func:`require_approval`."""

    tool: BaseTool
    """The wrapped tool, run once the call is approved."""
    when: Callable[[Any], bool] | None = None
    """Ask only for the calls whose arguments this accepts (``None``: every call)."""

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never reached
        raise NotImplementedError("ApprovalTool runs through invoke/ainvoke")

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        denied = self._ask(input)
        return denied if denied is not None else self.tool.invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> Any:
        denied = self._ask(input)
        return denied if denied is not None else await self.tool.ainvoke(input, config,
                                                                          **kwargs)

    def _ask(self, input: Any) -> Any:
        """``None`` to run the call; else what a denied call returns."""
        call = input if isinstance(input, dict) and input.get("type") == "tool_call" else None
        args = call["args"] if call is not None else input
        if not self._needed(args):
            return None
        call_id = call.get("id") if call is not None else None
        answer = interrupt({"type": _KIND, "toolCallId": call_id, "toolName": self.name,
                            "input": args})
        approved, reason = _read_answer(answer)
        if approved:
            return None
        text = reason or DENIED_OUTPUT
        if call_id is None:
            return text
        return ToolMessage(content=text, tool_call_id=call_id, name=self.name, status="error")

    def _needed(self, args: Any) -> bool:
        if self.when is None:
            return True
        try:
            return bool(self.when(args))
        except Exception:
            log.exception("the approval check of tool %r failed; asking", self.name)
            return True  # the safe side


def require_approval(tool: BaseTool, when: Callable[[Any], bool] | None = None) -> ApprovalTool:
    """``tool``, asking the user's approval before each call (or each call whose arguments
    ``when`` accepts). Give the result to the graph instead of the tool, e.g.
    ``create_react_agent(model, [get_weather, require_approval(book_table)])``."""
    return ApprovalTool(name=tool.name, description=tool.description,
                        args_schema=tool.args_schema, return_direct=tool.return_direct,
                        tool=tool, when=when)


def _read_answer(answer: Any) -> tuple[bool, str | None]:
    if isinstance(answer, bool):
        return answer, None
    if isinstance(answer, dict):
        reason = answer.get("reason")
        return answer.get("approved") is True, reason if isinstance(reason, str) else None
    return False, None


def approval_call(value: Any) -> dict[str, Any] | None:
    """The call an interrupt's value asks approval for (from :class:`ApprovalTool`), or None."""
    if (isinstance(value, dict) and value.get("type") == _KIND
            and isinstance(value.get("toolCallId"), str) and value["toolCallId"]):
        return value
    return None


# ------------------------------------------------------------------ the answers


def _tools_of(graph: Any) -> dict[str, BaseTool]:
    """The tools of the graph's tool nodes, by name."""
    tools: dict[str, BaseTool] = {}
    for node in getattr(graph, "nodes", {}).values():
        bound = getattr(node, "bound", None)
        if isinstance(bound, ToolNode):
            tools.update(bound.tools_by_name)
    return tools


def _tool_name(part: ToolUIPart | DynamicToolUIPart) -> str:
    if isinstance(part, DynamicToolUIPart):
        return part.tool_name
    return part.type.removeprefix("tool-")


async def answer_approvals(graph: Any, message: UIMessage | None,
                           config: RunnableConfig | None
                           ) -> tuple[list[ToolMessage], list[dict[str, Any]]]:
    """Act on the approval answers of ``message`` (the assistant message the client sent back):
    run the approved calls, not the denied ones. Returns the approved calls' results (the
    denials are in the converted history already) and the chunks that report them."""
    parts = [p for p in (message.parts if message is not None else [])
             if isinstance(p, ToolUIPart | DynamicToolUIPart)
             and p.state == "approval-responded" and p.approval
             and isinstance(p.approval.get("approved"), bool)]
    denied = [{"type": "tool-output-denied", "toolCallId": p.tool_call_id}
              for p in parts if p.approval and p.approval.get("approved") is False]
    approved = [p for p in parts if p.approval and p.approval.get("approved") is True]
    if not approved:
        return [], denied
    tools = _tools_of(graph)
    results: list[ToolMessage] = []
    chunks: list[dict[str, Any]] = []
    for part in approved:
        result, chunk = await _run_approved(tools, part, config)
        results.append(result)
        chunks.append(chunk)
    return results, denied + chunks


async def _run_approved(tools: dict[str, BaseTool], part: ToolUIPart | DynamicToolUIPart,
                        config: RunnableConfig | None) -> tuple[ToolMessage, dict[str, Any]]:
    call_id, name = part.tool_call_id, _tool_name(part)
    args = part.input if isinstance(part.input, dict) else {}
    tool = tools.get(name)
    if isinstance(tool, ApprovalTool):
        tool = tool.tool  # approved: run the tool itself, without asking again
    try:
        if tool is None:
            raise LookupError(f"the graph has no tool {name!r}")
        output = await tool.ainvoke({"type": "tool_call", "id": call_id, "name": name,
                                     "args": args}, config)
    except Exception as exc:
        log.warning("approved tool %r failed", name, exc_info=True)
        return (ToolMessage(content=f"The tool '{name}' failed: {exc}", tool_call_id=call_id,
                            name=name, status="error"),
                {"type": "tool-output-error", "toolCallId": call_id,
                 "errorText": f"The tool '{name}' failed."})
    if not isinstance(output, ToolMessage):  # e.g. a Command: its text is what is kept
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        output = ToolMessage(content=text, tool_call_id=call_id, name=name)
    if output.status == "error":
        return output, {"type": "tool-output-error", "toolCallId": call_id,
                        "errorText": output.text or "The tool failed."}
    shown = output.content if isinstance(output.content, str) else output.text
    return output, {"type": "tool-output-available", "toolCallId": call_id, "output": shown}


def with_results(history: Sequence[BaseMessage],
                 results: Sequence[ToolMessage]) -> list[BaseMessage]:
    """``history`` with ``results`` after the tool messages of the calls they answer, and
    without the calls that have no result (an approval never answered, a turn stopped before its
    tool ran): a model API refuses a tool call without its result."""
    by_id = {m.tool_call_id: m for m in results}
    answered = {m.tool_call_id for m in history if isinstance(m, ToolMessage)} | set(by_id)
    out: list[BaseMessage] = []
    pending: list[ToolMessage] = []
    for message in history:
        if not isinstance(message, ToolMessage):
            out.extend(pending)
            pending = []
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = [c for c in message.tool_calls if c["id"] in answered]
            pending = [by_id[c["id"]] for c in calls if c["id"] in by_id]
            if len(calls) != len(message.tool_calls):
                if not calls and not message.content:
                    continue
                message = message.model_copy(update={"tool_calls": calls})
        out.append(message)
    out.extend(pending)
    return out
