"""A chat's UI messages as the OpenAI Agents SDK's input items (Responses API shapes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..protocol.messages import (
    DynamicToolUIPart,
    FileUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
    parse_ui_message,
)

__all__ = ["DENIED_OUTPUT", "output_text", "to_input_items", "tool_name"]

DENIED_OUTPUT = "Tool execution denied."
"""What the model is told a denied tool call returned (when the user gave no reason)."""


def tool_name(part: ToolUIPart | DynamicToolUIPart) -> str:
    if isinstance(part, DynamicToolUIPart):
        return part.tool_name
    return part.type.removeprefix("tool-")


def output_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output)


def _user_content(message: UIMessage) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextUIPart):
            content.append({"type": "input_text", "text": part.text})
        elif isinstance(part, FileUIPart):
            if part.media_type.startswith("image/"):
                content.append({"type": "input_image", "image_url": part.url, "detail": "auto"})
            else:
                item: dict[str, Any] = {"type": "input_file"}
                if part.url.startswith("data:"):
                    item["file_data"] = part.url
                else:
                    item["file_url"] = part.url
                if part.filename:
                    item["filename"] = part.filename
                content.append(item)
    return content


def _tool_items(part: ToolUIPart | DynamicToolUIPart,
                results: dict[str, str]) -> list[dict[str, Any]]:
    """The function call of a tool part and its result; a call without one is left out (the
    model API refuses a call without its result)."""
    call = {"type": "function_call", "call_id": part.tool_call_id, "name": tool_name(part),
            "arguments": json.dumps(part.input if part.input is not None else {})}
    if part.state == "output-available":
        output = output_text(part.output)
    elif part.state == "output-error":
        output = part.error_text or "The tool failed."
    elif part.state == "output-denied" or (
        part.state == "approval-responded" and part.approval
        and part.approval.get("approved") is False
    ):
        reason = (part.approval or {}).get("reason")
        output = reason if isinstance(reason, str) and reason else DENIED_OUTPUT
    elif part.tool_call_id in results:
        output = results[part.tool_call_id]
    else:
        return []
    return [call, {"type": "function_call_output", "call_id": part.tool_call_id,
                   "output": output}]


def to_input_items(messages: Sequence[UIMessage | dict[str, Any]],
                   results: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """UI messages as the Agents SDK's input items (Responses API shapes), in order.

    User text and files (images as ``input_image``, other files as ``input_file``), system
    text, assistant text, and each tool call with its result (an error's text, or the denial)
    are kept; reasoning, sources and data parts are not (see docs/integrations.md).
    ``results`` gives the output of calls whose part has none yet (approved calls just run).
    """
    results = results or {}
    items: list[dict[str, Any]] = []
    for raw in messages:
        message = parse_ui_message(raw)
        if message.role == "system":
            if message.text:
                items.append({"role": "system", "content": message.text})
        elif message.role == "user":
            content = _user_content(message)
            if content:
                items.append({"role": "user", "content": content})
        else:
            text: list[str] = []

            def flush(text: list[str] = text) -> None:
                if text:
                    items.append({"role": "assistant", "content": "".join(text)})
                    text.clear()

            for part in message.parts:
                if isinstance(part, TextUIPart):
                    text.append(part.text)
                elif isinstance(part, ToolUIPart | DynamicToolUIPart):
                    flush()
                    items.extend(_tool_items(part, results))
            flush()
    return items
