"""The conversation of a chat run as LangChain messages, for a LangGraph graph's ``messages``.

UI messages go through the AI SDK conversion to model messages first (so tool calls, results,
errors and denials mean what they mean for any model), then each becomes its LangChain message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from chatworker.protocol.convert import convert_to_model_messages
from chatworker.protocol.messages import UIMessage
from chatworker.protocol.model_messages import (
    AssistantModelMessage,
    FilePart,
    ImagePart,
    ModelMessage,
    ReasoningPart,
    SystemModelMessage,
    TextPart,
    ToolCallPart,
    ToolModelMessage,
    ToolResultPart,
    UserModelMessage,
)

__all__ = ["to_langchain_messages"]

def to_langchain_messages(ui_messages: Sequence[UIMessage | dict[str, Any]]) -> list[BaseMessage]:
    """The conversation as LangChain messages: system, human (text, images, files), AI (text,
    reasoning in ``additional_kwargs["reasoning_content"]``, tool calls) and tool messages."""
    out: list[BaseMessage] = []
    for message in convert_to_model_messages(ui_messages):
        out.extend(_convert(message))
    return out


def _convert(message: ModelMessage) -> list[BaseMessage]:
    if isinstance(message, SystemModelMessage):
        return [SystemMessage(content=message.content)]
    if isinstance(message, UserModelMessage):
        if isinstance(message.content, str):
            return [HumanMessage(content=message.content)]
        blocks = [b for b in (_user_block(part) for part in message.content) if b is not None]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            return [HumanMessage(content=blocks[0]["text"])]
        content: list[str | dict[Any, Any]] = [*blocks]
        return [HumanMessage(content=content)]
    if isinstance(message, AssistantModelMessage):
        return [_assistant(message)]
    if isinstance(message, ToolModelMessage):
        return [_tool_message(part) for part in message.content
                if isinstance(part, ToolResultPart)]
    return []


def _data_block(kind: str, data: str, media_type: str | None) -> dict[str, Any]:
    """A LangChain standard ``image``/``file`` block from a URL, data: URL or base64 string."""
    if data.startswith("data:") and "," in data:
        header, payload = data[5:].split(",", 1)
        mime = header.split(";")[0] or media_type
        if header.endswith(";base64"):
            return {"type": kind, "base64": payload, "mime_type": mime}
        encoded = base64.b64encode(payload.encode()).decode()
        return {"type": kind, "base64": encoded, "mime_type": mime}
    if data.startswith(("http://", "https://")):
        return {"type": kind, "url": data, **({"mime_type": media_type} if media_type else {})}
    return {"type": kind, "base64": data, "mime_type": media_type or "application/octet-stream"}


def _user_block(part: Any) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return _data_block("image", part.image, part.media_type)
    if isinstance(part, FilePart):
        kind = "image" if part.media_type.startswith("image/") else "file"
        block = _data_block(kind, part.data, part.media_type)
        if part.filename and kind == "file":
            block["filename"] = part.filename
        return block
    return None


def _assistant(message: AssistantModelMessage) -> AIMessage:
    if isinstance(message.content, str):
        return AIMessage(content=message.content)
    texts, reasoning, calls = [], [], []
    for part in message.content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ReasoningPart):
            reasoning.append(part.text)
        elif isinstance(part, ToolCallPart) and not part.provider_executed:
            args = part.input if isinstance(part.input, dict) else {"input": part.input}
            calls.append({"name": part.tool_name, "args": args, "id": part.tool_call_id,
                          "type": "tool_call"})
    extra = {"reasoning_content": "".join(reasoning)} if reasoning else {}
    return AIMessage(content="".join(texts), tool_calls=calls, additional_kwargs=extra)


def _tool_message(part: ToolResultPart) -> ToolMessage:
    output = part.output
    failed = output.type in ("error-text", "error-json", "execution-denied")
    if output.type == "execution-denied":
        content = output.reason or "Tool execution denied."
    elif isinstance(output.value, str):
        content = output.value
    elif output.type == "content" and isinstance(output.value, list):
        content = "".join(str(item.get("text", "")) for item in output.value
                          if isinstance(item, dict))
    else:
        content = json.dumps(output.value)
    return ToolMessage(content=content, tool_call_id=part.tool_call_id, name=part.tool_name,
                       status="error" if failed else "success")
