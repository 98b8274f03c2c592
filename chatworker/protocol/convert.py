"""UI messages → model messages (the AI SDK's ``convertToModelMessages`` rules), and the two
message clean-ups chat runs apply: ``cleanup_aborted_parts`` and ``strip_provider_metadata``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from .messages import (
    AssistantContentPart,
    AssistantModelMessage,
    DataUIPart,
    DynamicToolUIPart,
    FilePart,
    FileUIPart,
    GenericUIPart,
    ModelMessage,
    ProviderMetadata,
    ReasoningPart,
    ReasoningUIPart,
    SteeringMessageUIPart,
    StepStartUIPart,
    SystemModelMessage,
    TextPart,
    TextUIPart,
    ToolApprovalRequestPart,
    ToolApprovalResponsePart,
    ToolCallPart,
    ToolContentPart,
    ToolModelMessage,
    ToolResultOutput,
    ToolResultPart,
    ToolUIPart,
    UIMessage,
    UIMessagePart,
    UserContentPart,
    UserModelMessage,
    parse_ui_message,
)

__all__ = ["cleanup_aborted_parts", "convert_to_model_messages", "strip_provider_metadata"]

log = logging.getLogger(__name__)

_ToolPart = ToolUIPart | DynamicToolUIPart
_BlockPart = TextUIPart | ReasoningUIPart | FileUIPart | ToolUIPart | DynamicToolUIPart | DataUIPart

_ABORTED_TOOL_STATES = frozenset({"partial-call", "input-available", "input-streaming"})


# ------------------------------------------------------------------------------- conversion


def convert_to_model_messages(
    ui_messages: Iterable[UIMessage | dict[str, Any]],
) -> list[ModelMessage]:
    """Convert UI messages to model messages by the AI SDK's ``convertToModelMessages`` rules.

    One deliberate difference: an assistant block that yields no content at all (e.g. only
    ``data-*`` parts) produces no empty assistant message, which some providers reject.
    """
    out: list[ModelMessage] = []
    for raw in ui_messages:
        message = parse_ui_message(raw)
        if message.role == "system":
            out.append(_convert_system(message))
        elif message.role == "user":
            out.append(_convert_user(message))
        else:
            _convert_assistant(message, out)
    return out


def _convert_system(message: UIMessage) -> SystemModelMessage:
    texts = [p for p in message.parts if isinstance(p, TextUIPart)]
    options: ProviderMetadata = {}
    for part in texts:
        if part.provider_metadata is not None:
            options.update(part.provider_metadata)
    return SystemModelMessage(
        content="".join(p.text for p in texts), provider_options=options or None
    )


def _file_part(part: FileUIPart) -> FilePart:
    return FilePart(
        media_type=part.media_type,
        filename=part.filename,
        data=part.url,
        provider_options=part.provider_metadata,
    )


def _convert_user(message: UIMessage | SteeringMessageUIPart) -> UserModelMessage:
    content: list[UserContentPart] = []
    for part in message.parts:
        if isinstance(part, TextUIPart):
            content.append(TextPart(text=part.text, provider_options=part.provider_metadata))
        elif isinstance(part, FileUIPart):
            content.append(_file_part(part))
        # data parts (and anything else) are dropped: there is no data-part converter
    return UserModelMessage(content=content)


def _tool_name(part: _ToolPart) -> str:
    return part.tool_name


def _error_message(value: Any) -> str:
    """``getErrorMessage`` of the AI SDK: strings as is, None → "unknown error", else JSON."""
    if value is None:
        return "unknown error"
    if isinstance(value, str):
        return value
    if isinstance(value, BaseException):
        return str(value)
    return json.dumps(value)


def _tool_output(part: _ToolPart, error_mode: str) -> ToolResultOutput:
    if part.state == "output-error":
        if error_mode == "text":
            return ToolResultOutput(type="error-text", value=_error_message(part.error_text))
        return ToolResultOutput(type="error-json", value=part.error_text)
    if isinstance(part.output, str):
        return ToolResultOutput(type="text", value=part.output)
    return ToolResultOutput(type="json", value=part.output)


def _approval_approved(part: _ToolPart) -> bool | None:
    approval = part.approval or {}
    approved = approval.get("approved")
    return approved if isinstance(approved, bool) else None


def _process_block(block: list[_BlockPart], out: list[ModelMessage]) -> None:
    if not block:
        return
    content: list[AssistantContentPart] = []
    for part in block:
        if isinstance(part, TextUIPart):
            content.append(TextPart(text=part.text, provider_options=part.provider_metadata))
        elif isinstance(part, FileUIPart):
            content.append(_file_part(part))
        elif isinstance(part, ReasoningUIPart):
            content.append(ReasoningPart(text=part.text, provider_options=part.provider_metadata))
        elif isinstance(part, ToolUIPart | DynamicToolUIPart):
            if part.state == "input-streaming":
                continue
            tool_input = part.input
            if part.state == "output-error" and tool_input is None:
                tool_input = part.raw_input
            content.append(
                ToolCallPart(
                    tool_call_id=part.tool_call_id,
                    tool_name=_tool_name(part),
                    input=tool_input,
                    provider_executed=part.provider_executed,
                    provider_options=part.call_provider_metadata,
                )
            )
            approval_id = (part.approval or {}).get("id")
            if isinstance(approval_id, str):
                content.append(
                    ToolApprovalRequestPart(approval_id=approval_id, tool_call_id=part.tool_call_id)
                )
            if part.provider_executed is True and part.state in (
                "output-available",
                "output-error",
            ):
                content.append(
                    ToolResultPart(
                        tool_call_id=part.tool_call_id,
                        tool_name=_tool_name(part),
                        output=_tool_output(part, "json"),
                        provider_options=part.result_provider_metadata
                        or part.call_provider_metadata,
                    )
                )
        # data parts: dropped (no converter)

    tool_parts = [
        p
        for p in block
        if isinstance(p, ToolUIPart | DynamicToolUIPart)
        and (p.provider_executed is not True or _approval_approved(p) is not None)
    ]
    if not content:
        return
    out.append(AssistantModelMessage(content=content))

    results: list[ToolContentPart] = []
    for part in tool_parts:
        approved = _approval_approved(part)
        if approved is not None:
            approval = part.approval or {}
            reason = approval.get("reason")
            results.append(
                ToolApprovalResponsePart(
                    approval_id=str(approval.get("id", "")),
                    approved=approved,
                    reason=reason if isinstance(reason, str) else None,
                    provider_executed=part.provider_executed,
                )
            )
            if part.state == "approval-responded" and approved is False:
                results.append(
                    ToolResultPart(
                        tool_call_id=part.tool_call_id,
                        tool_name=_tool_name(part),
                        output=ToolResultOutput(
                            type="execution-denied",
                            reason=reason if isinstance(reason, str) else None,
                        ),
                        provider_options=part.call_provider_metadata,
                    )
                )
        if part.provider_executed is True:
            continue  # its result is already in the assistant content
        if part.state == "output-denied":
            reason = (part.approval or {}).get("reason")
            results.append(
                ToolResultPart(
                    tool_call_id=part.tool_call_id,
                    tool_name=_tool_name(part),
                    output=ToolResultOutput(
                        type="error-text",
                        value=reason if isinstance(reason, str) else "Tool execution denied.",
                    ),
                    provider_options=part.call_provider_metadata,
                )
            )
        elif part.state in ("output-available", "output-error"):
            results.append(
                ToolResultPart(
                    tool_call_id=part.tool_call_id,
                    tool_name=_tool_name(part),
                    output=_tool_output(part, "text"),
                    provider_options=part.call_provider_metadata,
                )
            )
    if results:
        out.append(ToolModelMessage(content=results))


def _convert_assistant(message: UIMessage, out: list[ModelMessage]) -> None:
    block: list[_BlockPart] = []
    for part in message.parts:
        if isinstance(
            part,
            TextUIPart | ReasoningUIPart | FileUIPart | ToolUIPart | DynamicToolUIPart | DataUIPart,
        ):
            block.append(part)
        elif isinstance(part, StepStartUIPart):
            _process_block(block, out)
            block = []
        elif isinstance(part, SteeringMessageUIPart):
            # a message steered into the turn: the model saw it after the step's tool results
            _process_block(block, out)
            block = []
            out.append(_convert_user(part))
        # sources and unknown parts are not sent to the model
    _process_block(block, out)


# -------------------------------------------------------------------------------- clean-ups


def _tool_state(part: UIMessagePart) -> str | None:
    if isinstance(part, ToolUIPart | DynamicToolUIPart):
        return part.state
    if isinstance(part, GenericUIPart) and part.type == "tool-invocation":
        invocation = (part.model_extra or {}).get("toolInvocation")
        state = invocation.get("state") if isinstance(invocation, dict) else None
        if state is None:
            state = (part.model_extra or {}).get("state")
        return state if isinstance(state, str) else None
    return None


def cleanup_aborted_parts(message: UIMessage | dict[str, Any]) -> UIMessage:
    """Return a copy of a (possibly stopped) message fit to keep in the history.

    Tool parts still in ``partial-call``/``input-streaming``/``input-available`` are removed;
    streaming text and reasoning parts become ``done``; everything else is kept as is.
    """
    msg = parse_ui_message(message)
    parts: list[UIMessagePart] = []
    for part in msg.parts:
        state = _tool_state(part)
        if state is not None and state in _ABORTED_TOOL_STATES:
            continue
        if isinstance(part, TextUIPart | ReasoningUIPart) and part.state == "streaming":
            part = part.model_copy(update={"state": "done"})
        parts.append(part)
    return msg.model_copy(update={"parts": parts})


def _strip_item_id(meta: ProviderMetadata | None) -> ProviderMetadata | None:
    if not meta:
        return meta
    openai = meta.get("openai")
    if not isinstance(openai, dict) or "itemId" not in openai:
        return meta
    rest = {k: v for k, v in openai.items() if k != "itemId"}
    stripped = {k: v for k, v in meta.items() if k != "openai"}
    if rest:
        stripped["openai"] = rest
    return stripped or None


_METADATA_FIELDS = ("provider_metadata", "call_provider_metadata", "result_provider_metadata")


def strip_provider_metadata(message: UIMessage | dict[str, Any]) -> UIMessage:
    """Return a copy without ``providerMetadata.openai.itemId`` (also in tool call metadata).

    Replaying OpenAI item ids makes the Responses API reject the request as a duplicate item.
    """
    msg = parse_ui_message(message)
    parts: list[UIMessagePart] = []
    for part in msg.parts:
        update: dict[str, Any] = {}
        for name in _METADATA_FIELDS:
            current = getattr(part, name, None)
            if isinstance(current, dict):
                new = _strip_item_id(current)
                if new is not current:
                    update[name] = new
        if update:
            part = part.model_copy(update=update)
        parts.append(part)
    return msg.model_copy(update={"parts": parts})
