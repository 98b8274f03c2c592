"""AI SDK ModelMessages to OpenAI Chat Completions messages, and OpenAI values back to AI SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .tools import Tool

__all__ = [
    "ModelMessageLike",
    "map_finish_reason",
    "map_usage",
    "model_message_dict",
    "to_openai_messages",
    "to_openai_tools",
]

ModelMessageLike = Any
"""A ModelMessage: a pydantic model (anything with ``model_dump``) or a plain dict."""

_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "tool_use": "tool-calls",
}


def map_finish_reason(reason: str | None) -> str:
    """Map an OpenAI(-compatible) ``finish_reason`` onto the AI SDK enum."""
    if reason is None:
        return "other"
    return _FINISH_REASONS.get(reason, "other")


def map_usage(usage: Any) -> dict[str, int | None]:
    """OpenAI ``usage`` (object or dict) as the AI SDK's ``{inputTokens, outputTokens, ...}``."""
    data = _as_dict(usage)
    result: dict[str, int | None] = {
        "inputTokens": data.get("prompt_tokens"),
        "outputTokens": data.get("completion_tokens"),
        "totalTokens": data.get("total_tokens"),
    }
    if result["totalTokens"] is None and None not in (
        result["inputTokens"],
        result["outputTokens"],
    ):
        result["totalTokens"] = (result["inputTokens"] or 0) + (result["outputTokens"] or 0)
    reasoning = _as_dict(data.get("completion_tokens_details")).get("reasoning_tokens")
    if isinstance(reasoning, int):
        result["reasoningTokens"] = reasoning
    cached = _as_dict(data.get("prompt_tokens_details")).get("cached_tokens")
    if isinstance(cached, int):
        result["cachedInputTokens"] = cached
    return result


def model_message_dict(message: ModelMessageLike) -> dict[str, Any]:
    """A ModelMessage as a plain dict in the AI SDK shape."""
    if isinstance(message, Mapping):
        return dict(message)
    dump = getattr(message, "model_dump", None)
    if dump is None:
        raise TypeError(f"not a ModelMessage: {type(message).__name__}")
    data = dump(mode="json", by_alias=True, exclude_none=True)
    if not isinstance(data, dict):
        raise TypeError(f"not a ModelMessage: {type(message).__name__}")
    return data


def to_openai_tools(tools: Mapping[str, Tool] | None) -> list[dict[str, Any]]:
    """Tool definitions in the Chat Completions ``tools`` format."""
    result = []
    for name, spec in (tools or {}).items():
        function: dict[str, Any] = {"name": name, "parameters": spec.json_schema()}
        if spec.description:
            function["description"] = spec.description
        result.append({"type": "function", "function": function})
    return result


def to_openai_messages(
    messages: Iterable[ModelMessageLike], system: str | None = None
) -> list[dict[str, Any]]:
    """Convert AI SDK ModelMessages (and an optional system prompt) to Chat Completions ones."""
    result: list[dict[str, Any]] = []
    if system:
        result.append({"role": "system", "content": system})
    for raw in messages:
        message = model_message_dict(raw)
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            result.append({"role": "system", "content": _plain_text(content)})
        elif role == "user":
            result.append({"role": "user", "content": _user_content(content)})
        elif role == "assistant":
            result.append(_assistant_message(content))
        elif role == "tool":
            result.extend(_tool_messages(content))
        else:
            raise ValueError(f"unsupported message role: {role!r}")
    return result


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, Mapping))


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            media_type = part.get("mediaType") or part.get("mimeType") or "image/jpeg"
            url = _data_url(part.get("image"), media_type)
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "file":
            parts.append(_file_part(part))
        else:
            raise ValueError(f"unsupported user content part: {kind!r}")
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _file_part(part: Mapping[str, Any]) -> dict[str, Any]:
    media_type = str(part.get("mediaType") or part.get("mimeType") or "application/octet-stream")
    data = part.get("data")
    if media_type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": _data_url(data, media_type)}}
    if media_type in ("audio/wav", "audio/x-wav", "audio/mpeg", "audio/mp3"):
        fmt = "wav" if "wav" in media_type else "mp3"
        return {"type": "input_audio", "input_audio": {"data": _base64(data), "format": fmt}}
    if media_type == "application/pdf":
        filename = part.get("filename") or "document.pdf"
        if isinstance(data, str) and data.startswith(("http://", "https://")):
            raise ValueError("PDF files must be sent as data, not as a URL")
        return {
            "type": "file",
            "file": {"filename": filename, "file_data": _data_url(data, media_type)},
        }
    if media_type.startswith("text/"):
        return {"type": "text", "text": _decode_text(data)}
    raise ValueError(f"unsupported file media type for this model: {media_type}")


def _assistant_message(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            text.append(part.get("text", ""))
        elif kind == "tool-call":
            value = part.get("input", {})
            arguments = value if isinstance(value, str) else json.dumps(value)
            tool_calls.append(
                {
                    "id": part.get("toolCallId"),
                    "type": "function",
                    "function": {"name": part.get("toolName"), "arguments": arguments},
                }
            )
        # reasoning, files and provider-executed results are not sent back to Chat Completions
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_messages(content: Any) -> list[dict[str, Any]]:
    result = []
    for part in content or []:
        if part.get("type") != "tool-result":
            continue
        result.append(
            {
                "role": "tool",
                "tool_call_id": part.get("toolCallId"),
                "content": _tool_output_text(part.get("output")),
            }
        )
    return result


def _tool_output_text(output: Any) -> str:
    if not isinstance(output, Mapping):
        return json.dumps(output)
    kind = output.get("type")
    value = output.get("value")
    if kind in ("text", "error-text"):
        return str(value)
    if kind in ("json", "error-json"):
        return json.dumps(value)
    if kind == "execution-denied":
        return str(output.get("reason") or "Tool execution denied.")
    if kind == "content":
        return "".join(item.get("text", "") for item in value or [] if isinstance(item, Mapping))
    return json.dumps(output)


def _data_url(data: Any, media_type: str) -> str:
    if isinstance(data, str) and data.startswith(("http://", "https://", "data:")):
        return data
    return f"data:{media_type};base64,{_base64(data)}"


def _base64(data: Any) -> str:
    if isinstance(data, bytes | bytearray):
        return base64.b64encode(bytes(data)).decode("ascii")
    if isinstance(data, str):
        if data.startswith("data:"):
            return data.split(",", 1)[1]
        return data
    raise ValueError(f"unsupported file data: {type(data).__name__}")


def _decode_text(data: Any) -> str:
    if isinstance(data, bytes | bytearray):
        return bytes(data).decode("utf-8", "replace")
    encoded = _base64(data)
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
    except ValueError:
        return encoded


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        data = dump()
        return data if isinstance(data, dict) else {}
    return {}
