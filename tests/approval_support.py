"""Playing the AI SDK client's side of a tool approval in tests: the assistant message a client
builds from a turn's chunks, and what ``addToolApprovalResponse`` does to it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chatworker.protocol.assemble import MessageAssembler
from chatworker.protocol.messages import dump


def assistant_of(chunks: Iterable[dict[str, Any]], previous: dict[str, Any] | None = None,
                 message_id: str = "a1") -> dict[str, Any]:
    """The assistant message a client builds from ``chunks`` (continuing ``previous``)."""
    assembler = MessageAssembler(message_id, previous=previous)
    for chunk in chunks:
        assembler.feed(chunk)
    return dump(assembler.message)


def answer(message: dict[str, Any], approved: bool, reason: str | None = None,
           call_id: str | None = None) -> dict[str, Any]:
    """``addToolApprovalResponse``: the ``approval-requested`` part (of ``call_id``, or each)
    becomes ``approval-responded`` with ``approval: {id, approved, reason?}``."""
    parts = []
    for part in message["parts"]:
        if part.get("state") == "approval-requested" and call_id in (None, part["toolCallId"]):
            approval = {**part["approval"], "approved": approved}
            if reason is not None:
                approval["reason"] = reason
            part = {**part, "state": "approval-responded", "approval": approval}
        parts.append(part)
    return {**message, "parts": parts}
