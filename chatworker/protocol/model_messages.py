"""The AI SDK's ``ModelMessage``: what a model is sent (system, user, assistant and tool
messages and their content parts)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)

from .wire_model import ProviderMetadata, WireModel

# ------------------------------------------------------------------------ model message parts


class TextPart(WireModel):
    """Text content of a model message."""

    type: Literal["text"] = "text"
    text: str
    provider_options: ProviderMetadata | None = None


class ImagePart(WireModel):
    """Image content of a user model message (URL, data: URL or base64)."""

    type: Literal["image"] = "image"
    image: str
    media_type: str | None = None
    provider_options: ProviderMetadata | None = None


class FilePart(WireModel):
    """File content of a model message (URL, data: URL or base64)."""

    type: Literal["file"] = "file"
    data: str
    filename: str | None = None
    media_type: str
    provider_options: ProviderMetadata | None = None


class ReasoningPart(WireModel):
    """Reasoning content of an assistant model message."""

    type: Literal["reasoning"] = "reasoning"
    text: str
    provider_options: ProviderMetadata | None = None


class ToolCallPart(WireModel):
    """A tool call made by the assistant."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"input"})

    type: Literal["tool-call"] = "tool-call"
    tool_call_id: str
    tool_name: str
    input: Any = None
    provider_executed: bool | None = None
    provider_options: ProviderMetadata | None = None


class ToolResultOutput(WireModel):
    """The typed output of a tool result (``json``, ``text``, ``error-text``, ``error-json``)."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"value"})

    type: Literal["json", "text", "error-text", "error-json", "content", "execution-denied"]
    value: Any = None
    reason: str | None = None


class ToolResultPart(WireModel):
    """The result of a tool call, in a tool message (or an assistant one if provider-run)."""

    type: Literal["tool-result"] = "tool-result"
    tool_call_id: str
    tool_name: str
    output: ToolResultOutput
    provider_options: ProviderMetadata | None = None


class ToolApprovalRequestPart(WireModel):
    """An assistant's request for the user to approve a tool call."""

    type: Literal["tool-approval-request"] = "tool-approval-request"
    approval_id: str
    tool_call_id: str


class ToolApprovalResponsePart(WireModel):
    """The user's answer to a tool approval request, in a tool message."""

    type: Literal["tool-approval-response"] = "tool-approval-response"
    approval_id: str
    approved: bool
    reason: str | None = None
    provider_executed: bool | None = None


class GenericContentPart(WireModel):
    """A model-message content part of a type this module does not know; kept verbatim."""

    type: str


def _content_tag(known: frozenset[str]) -> Any:
    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return kind if isinstance(kind, str) and kind in known else "unknown"

    return tag


UserContentPart: TypeAlias = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[GenericContentPart, Tag("unknown")],
    Discriminator(_content_tag(frozenset({"text", "image", "file"}))),
]
"""A content part of a user model message."""

AssistantContentPart: TypeAlias = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[FilePart, Tag("file")]
    | Annotated[ReasoningPart, Tag("reasoning")]
    | Annotated[ToolCallPart, Tag("tool-call")]
    | Annotated[ToolResultPart, Tag("tool-result")]
    | Annotated[ToolApprovalRequestPart, Tag("tool-approval-request")]
    | Annotated[GenericContentPart, Tag("unknown")],
    Discriminator(
        _content_tag(
            frozenset(
                {"text", "file", "reasoning", "tool-call", "tool-result", "tool-approval-request"}
            )
        )
    ),
]
"""A content part of an assistant model message."""

ToolContentPart: TypeAlias = Annotated[
    Annotated[ToolResultPart, Tag("tool-result")]
    | Annotated[ToolApprovalResponsePart, Tag("tool-approval-response")]
    | Annotated[GenericContentPart, Tag("unknown")],
    Discriminator(_content_tag(frozenset({"tool-result", "tool-approval-response"}))),
]
"""A content part of a tool model message."""


class SystemModelMessage(WireModel):
    """A system prompt message."""

    role: Literal["system"] = "system"
    content: str
    provider_options: ProviderMetadata | None = None


class UserModelMessage(WireModel):
    """A user message for the model."""

    role: Literal["user"] = "user"
    content: str | list[UserContentPart]
    provider_options: ProviderMetadata | None = None


class AssistantModelMessage(WireModel):
    """An assistant message for the model (one per step)."""

    role: Literal["assistant"] = "assistant"
    content: str | list[AssistantContentPart]
    provider_options: ProviderMetadata | None = None


class ToolModelMessage(WireModel):
    """Tool results answering the preceding assistant message's tool calls."""

    role: Literal["tool"] = "tool"
    content: list[ToolContentPart]
    provider_options: ProviderMetadata | None = None


ModelMessage: TypeAlias = Annotated[
    SystemModelMessage | UserModelMessage | AssistantModelMessage | ToolModelMessage,
    Field(discriminator="role"),
]
"""The AI SDK ``ModelMessage`` union, discriminated by ``role``."""

_MODEL_MESSAGE_ADAPTER: TypeAdapter[ModelMessage] = TypeAdapter(ModelMessage)
_MODEL_MESSAGES_ADAPTER: TypeAdapter[list[ModelMessage]] = TypeAdapter(list[ModelMessage])


def parse_model_message(value: Any) -> ModelMessage:
    """Validate one model message dict (or pass a model through)."""
    return _MODEL_MESSAGE_ADAPTER.validate_python(value)


def parse_model_messages(values: Iterable[Any]) -> list[ModelMessage]:
    """Validate a list of model message dicts."""
    return _MODEL_MESSAGES_ADAPTER.validate_python(list(values))
