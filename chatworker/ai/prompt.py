"""The conversation a ``stream_text`` call is given: model messages, or UI messages.

A chat's wire payload carries UI messages (``parts``), and the AI SDK's examples hand them to
``streamText`` after ``convertToModelMessages``. ``stream_text`` accepts either: UI messages are
converted by the same rules. A message whose content cannot reach the model is an error naming
the message, never a message silently sent empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from chatworker.protocol.convert import convert_to_model_messages, strip_provider_metadata
from chatworker.protocol.messages import UIMessage

from .wire import ModelMessageLike, model_message_dict

__all__ = ["describe_message", "model_messages"]


def is_ui_message(message: Any) -> bool:
    """A UI message (``{id, role, parts}``) rather than a model message (``{role, content}``)."""
    if isinstance(message, UIMessage):
        return True
    return isinstance(message, Mapping) and "parts" in message and "content" not in message


def describe_message(index: int, message: Any) -> str:
    """``messages[2] (user message 'abc')``: how an error names a message."""
    role = getattr(message, "role", None)
    ident = getattr(message, "id", None)
    if isinstance(message, Mapping):
        role, ident = message.get("role"), message.get("id")
    what = f"{role} message" if isinstance(role, str) else "message"
    if isinstance(ident, str) and ident:
        what += f" {ident!r}"
    return f"messages[{index}] ({what})"


def model_messages(messages: Sequence[ModelMessageLike]) -> list[dict[str, Any]]:
    """The messages as AI SDK ModelMessage dicts, UI messages converted.

    Raises ``ValueError`` naming the message when one cannot be read or converted, or has
    nothing the model can read (a user message of only ``data-*`` parts, a message with neither
    ``content`` nor ``parts``).
    """
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not is_ui_message(message):
            try:
                data = model_message_dict(message)
            except TypeError as exc:
                raise ValueError(f"{describe_message(index, message)}: {exc}") from None
            if data.get("content") is None:
                raise ValueError(
                    f"{describe_message(index, message)} has no content: pass model messages "
                    f"({{role, content}}) or UI messages ({{id, role, parts}})")
            out.append(data)
            continue
        try:
            converted = convert_to_model_messages([strip_provider_metadata(message)])
        except (ValueError, ValidationError) as exc:
            raise ValueError(
                f"{describe_message(index, message)} cannot be converted for the model: {exc}"
            ) from None
        for model in converted:
            data = model_message_dict(model)
            if data.get("role") == "user" and not data.get("content"):
                raise ValueError(
                    f"{describe_message(index, message)} has no part the model can read "
                    f"(only text and file parts reach it)")
            out.append(data)
    return out
