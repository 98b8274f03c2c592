"""Tool calls that wait for the user's approval (the AI SDK's ``needsApproval`` protocol).

A step whose tool call needs approval streams ``tool-approval-request`` and leaves the call
unexecuted; the turn ends. The user's answer comes back in the history: the resubmitted
assistant message's tool part is ``approval-responded`` with ``approval: {id, approved,
reason?}``, which converts to a ``tool-approval-response`` in a tool message. The next
``stream_text`` call answers those first (:func:`answered_approvals`), before its first model
call: a denied call becomes ``tool-output-denied`` and an ``execution-denied`` result for the
model; an approved one is executed.

Executed at most once: an approved call's result is written to the :class:`ToolJournal` of the
run (when there is one, see :data:`current_tool_journal`) before the model is called again, and a
call whose result is already there is never executed again: its recorded result is used.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chatworker.signals import AbortSignal

from .tools import NoSuchToolError, Tool, ToolCallOptions, ToolExecutionError, to_jsonable

__all__ = [
    "Answer",
    "ToolJournal",
    "answer_approvals",
    "answered_approvals",
    "current_tool_journal",
    "drop_unanswered_requests",
    "execute_call",
    "journal_entry",
    "new_approval_id",
    "replay_recorded",
]

log = logging.getLogger("chatworker.ai")

Part = dict[str, Any]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_approval_id() -> str:
    """A fresh approval id (16 random alphanumerics, like the AI SDK's ``generateId()``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


class ToolJournal(Protocol):
    """Where a run records executed tool calls, so that none is executed twice.

    Keys are approval ids. :meth:`record` keeps the first entry written for a key and returns
    the entry kept (a second writer gets the first one's).
    """

    def recorded(self, key: str) -> dict[str, Any] | None: ...

    def record(self, key: str, entry: dict[str, Any]) -> dict[str, Any]: ...


current_tool_journal: contextvars.ContextVar[ToolJournal | None] = contextvars.ContextVar(
    "chatworker_tool_journal", default=None
)
"""The journal of the run in progress; chat runs set it, plain ``stream_text`` calls have none."""


@dataclass(frozen=True)
class Answer:
    """A user's answer to an approval request, not yet acted on."""

    approval_id: str
    tool_call_id: str
    tool_name: str
    input: Any
    approved: bool
    reason: str | None
    has_result: bool
    """The history already holds a result for the call (a denial converted with its result)."""


def answered_approvals(messages: Sequence[Mapping[str, Any]]) -> list[Answer]:
    """The approval answers of the last message (a tool message) still to act on, as the AI
    SDK's ``collectToolApprovals``: approved calls in tool-call order, then denied ones.

    An answer naming an unknown approval or tool call is skipped (and logged); a call answered
    twice counts once; an approved call that already has a result is done.
    """
    if not messages or messages[-1].get("role") != "tool":
        return []
    calls: dict[str, Mapping[str, Any]] = {}
    order: dict[str, int] = {}
    requests: dict[str, str] = {}  # approval id -> tool call id
    for message in messages:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "tool-call":
                calls[part["toolCallId"]] = part
                order.setdefault(part["toolCallId"], len(order))
            elif part.get("type") == "tool-approval-request":
                requests[part["approvalId"]] = part["toolCallId"]
    last = messages[-1].get("content") or []
    results = {p["toolCallId"]: p for p in last if p.get("type") == "tool-result"}
    approved: list[Answer] = []
    denied: list[Answer] = []
    seen: set[str] = set()
    for part in last:
        if part.get("type") != "tool-approval-response" or part.get("providerExecuted"):
            continue
        approval_id = str(part.get("approvalId", ""))
        call_id = requests.get(approval_id)
        call = calls.get(call_id) if call_id is not None else None
        if call_id is None or call is None:
            log.warning("stream_text: approval %r answers no tool call in the history; ignored",
                        approval_id)
            continue
        result = results.get(call_id)
        is_ok = bool(part.get("approved"))
        if result is not None and (is_ok or _output_type(result) != "execution-denied"):
            continue
        if call_id in seen:
            continue
        seen.add(call_id)
        reason = part.get("reason")
        answer = Answer(approval_id, call_id, str(call.get("toolName", "")), call.get("input"),
                        is_ok, reason if isinstance(reason, str) else None, result is not None)
        (approved if is_ok else denied).append(answer)
    approved.sort(key=lambda a: order[a.tool_call_id])
    return [*approved, *denied]


def drop_unanswered_requests(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` without the tool calls that asked for approval and got no result when a
    user message follows them (the user moved on without answering, or stopped the turn that
    was to execute them), as the AI SDK's conversion drops unanswered requests: a model refuses
    a tool call that has no result."""
    resolved = {p.get("toolCallId") for m in messages if m.get("role") == "tool"
                for p in m.get("content") or [] if p.get("type") == "tool-result"}
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if index > last_user or message.get("role") != "assistant" or not isinstance(content,
                                                                                    list):
            out.append(message)
            continue
        waiting = {p.get("toolCallId") for p in content
                   if p.get("type") == "tool-approval-request"
                   and p.get("toolCallId") not in resolved}
        if not waiting:
            out.append(message)
            continue
        kept = [p for p in content if p.get("toolCallId") not in waiting
                or p.get("type") not in ("tool-call", "tool-approval-request")]
        if kept:
            out.append({**message, "content": kept})
    return out


def _output_type(result: Mapping[str, Any]) -> Any:
    output = result.get("output")
    return output.get("type") if isinstance(output, Mapping) else None


def execute_call(spec: Tool, call: Mapping[str, Any],
                 options: ToolCallOptions) -> tuple[dict[str, Any], Part]:
    """Execute one validated tool call: its tool result (for the model) and its UI part
    (``tool-output-available``, or ``tool-output-error`` holding the exception)."""
    base = {"toolCallId": call["toolCallId"], "toolName": call["toolName"]}
    try:
        output = to_jsonable(spec.run(spec.parse_input(call["input"]), options))
    except Exception as exc:
        error = ToolExecutionError(call["toolName"], call["toolCallId"], exc)
        log.error("stream_text: %s", error, exc_info=exc)
        result = {**base, "output": {"type": "error-text", "value": str(error)}}
        return result, {"type": "tool-output-error", "toolCallId": call["toolCallId"],
                        "error": error}
    kind = "text" if isinstance(output, str) else "json"
    result = {**base, "output": {"type": kind, "value": output}}
    return result, {"type": "tool-output-available", "toolCallId": call["toolCallId"],
                    "output": output}


def journal_entry(result: dict[str, Any], part: Part) -> dict[str, Any]:
    """What the journal keeps of an executed call: its result, and an error's message."""
    entry: dict[str, Any] = {"result": result}
    error = part.get("error")
    if isinstance(error, ToolExecutionError) and error.__cause__ is not None:
        entry["error"] = str(error.__cause__)
    return entry


def replay_recorded(entry: Mapping[str, Any]) -> tuple[dict[str, Any], Part]:
    """The tool result and UI part of a recorded execution, as :func:`execute_call` gave them."""
    result = dict(entry["result"])
    call_id = result["toolCallId"]
    if "error" in entry:
        cause = RuntimeError(str(entry["error"]))
        error = ToolExecutionError(str(result.get("toolName", "")), call_id, cause)
        return result, {"type": "tool-output-error", "toolCallId": call_id, "error": error}
    output = (result.get("output") or {}).get("value")
    return result, {"type": "tool-output-available", "toolCallId": call_id, "output": output}


def answer_approvals(
    messages: Sequence[Mapping[str, Any]],
    tools: Mapping[str, Tool],
    journal: ToolJournal | None,
    signal: AbortSignal | None,
) -> Generator[Part, None, list[dict[str, Any]]]:
    """Act on the answers of :func:`answered_approvals`, yielding their UI parts; returns the
    tool results to add to the conversation before the next model call.

    A denied call yields ``tool-output-denied`` and the result ``{type: "execution-denied",
    reason?}``; an approved one yields ``tool-output-available`` (or ``tool-output-error``),
    executed unless the journal already holds its result, and recorded before it is yielded.
    """
    answers = answered_approvals(messages)
    denials: list[dict[str, Any]] = []
    for answer in answers:  # as the AI SDK: the denials stream first
        if answer.approved:
            continue
        yield {"type": "tool-output-denied", "toolCallId": answer.tool_call_id}
        if not answer.has_result:
            output: dict[str, Any] = {"type": "execution-denied"}
            if answer.reason is not None:
                output["reason"] = answer.reason
            denials.append({"toolCallId": answer.tool_call_id, "toolName": answer.tool_name,
                            "output": output})
    results: list[dict[str, Any]] = []
    for answer in answers:
        if not answer.approved:
            continue
        if signal is not None and signal.aborted:
            break
        done = _approved(answer, tools, journal, messages, signal)
        if done is not None:
            results.append(done[0])
            yield done[1]
    return [*results, *denials]


def _approved(answer: Answer, tools: Mapping[str, Tool], journal: ToolJournal | None,
              messages: Sequence[Mapping[str, Any]],
              signal: AbortSignal | None) -> tuple[dict[str, Any], Part] | None:
    """Execute an approved call once: the recorded result when there is one."""
    recorded = journal.recorded(answer.approval_id) if journal is not None else None
    if recorded is not None:
        log.info("stream_text: tool call %s already executed; its recorded result is used",
                 answer.tool_call_id)
        return replay_recorded(recorded)
    spec = tools.get(answer.tool_name)
    call = {"toolCallId": answer.tool_call_id, "toolName": answer.tool_name,
            "input": answer.input}
    if spec is None:
        error = NoSuchToolError(answer.tool_name, list(tools))
        log.warning("stream_text: approved call of %s", error)
        result = {"toolCallId": answer.tool_call_id, "toolName": answer.tool_name,
                  "output": {"type": "error-text", "value": str(error)}}
        return result, {"type": "tool-output-error", "toolCallId": answer.tool_call_id,
                        "error": error}
    if spec.execute is None:
        return None  # the client executes it and sends its output
    options = ToolCallOptions(answer.tool_call_id, [dict(m) for m in messages], signal)
    result, part = execute_call(spec, call, options)
    if journal is None or (signal is not None and signal.aborted):
        return result, part  # a stopped tool is not recorded: it did not finish
    entry = journal_entry(result, part)
    kept = journal.record(answer.approval_id, entry)
    if kept != entry:
        return replay_recorded(kept)  # another execution was recorded first
    return result, part
