"""The AI SDK's ``UIMessage`` and its parts, and (re-exported) the ``ModelMessage`` shapes.

Unknown part types are kept so messages written by newer clients round-trip unchanged. The
model-message shapes live in :mod:`.model_messages` and the wire base in :mod:`.wire_model`;
they are re-exported here because this is where users have always imported them from.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)

from .model_messages import (
    AssistantContentPart,
    AssistantModelMessage,
    FilePart,
    GenericContentPart,
    ImagePart,
    ModelMessage,
    ReasoningPart,
    SystemModelMessage,
    TextPart,
    ToolApprovalRequestPart,
    ToolApprovalResponsePart,
    ToolCallPart,
    ToolContentPart,
    ToolModelMessage,
    ToolResultOutput,
    ToolResultPart,
    UserContentPart,
    UserModelMessage,
    parse_model_message,
    parse_model_messages,
)
from .wire_model import TOOL_STATES, ProviderMetadata, WireModel, dump, dump_all

__all__ = [
    "TOOL_STATES",
    "AssistantContentPart",
    "AssistantModelMessage",
    "DataUIPart",
    "DynamicToolUIPart",
    "FilePart",
    "FileUIPart",
    "GenericContentPart",
    "GenericUIPart",
    "ImagePart",
    "ModelMessage",
    "ProviderMetadata",
    "ReasoningPart",
    "ReasoningUIPart",
    "SourceDocumentUIPart",
    "SourceUrlUIPart",
    "SteeringMessageUIPart",
    "StepStartUIPart",
    "SystemModelMessage",
    "TextPart",
    "TextUIPart",
    "ToolApprovalRequestPart",
    "ToolApprovalResponsePart",
    "ToolCallPart",
    "ToolContentPart",
    "ToolModelMessage",
    "ToolResultOutput",
    "ToolResultPart",
    "ToolUIPart",
    "UIMessage",
    "UIMessagePart",
    "UserContentPart",
    "UserModelMessage",
    "WireModel",
    "dump",
    "dump_all",
    "is_tool_part",
    "parse_model_message",
    "parse_model_messages",
    "parse_ui_message",
    "parse_ui_part",
]

# --------------------------------------------------------------------------- UI message parts


class TextUIPart(WireModel):
    """A text part of a UI message (``state`` is ``streaming`` until the text ends)."""

    type: Literal["text"] = "text"
    text: str = ""
    state: Literal["streaming", "done"] | None = None
    provider_metadata: ProviderMetadata | None = None


class ReasoningUIPart(WireModel):
    """A reasoning part of a UI message."""

    type: Literal["reasoning"] = "reasoning"
    text: str = ""
    state: Literal["streaming", "done"] | None = None
    provider_metadata: ProviderMetadata | None = None


class _ToolPartBase(WireModel):
    """Fields shared by static (``tool-<name>``) and dynamic tool parts."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"input", "output"})

    type: str
    tool_call_id: str
    state: str
    title: str | None = None
    input: Any = None
    output: Any = None
    error_text: str | None = None
    raw_input: Any = None
    provider_executed: bool | None = None
    call_provider_metadata: ProviderMetadata | None = None
    result_provider_metadata: ProviderMetadata | None = None
    preliminary: bool | None = None
    approval: dict[str, Any] | None = None


class ToolUIPart(_ToolPartBase):
    """A static tool invocation; ``type`` is ``tool-<toolName>``."""

    @property
    def tool_name(self) -> str:
        """The tool's name, taken from the part type."""
        return self.type[len("tool-") :]


class DynamicToolUIPart(_ToolPartBase):
    """A dynamic tool invocation (tool not known statically); carries ``toolName``."""

    type: Literal["dynamic-tool"] = "dynamic-tool"
    tool_name: str


class SourceUrlUIPart(WireModel):
    """A URL source cited by the model."""

    type: Literal["source-url"] = "source-url"
    source_id: str
    url: str
    title: str | None = None
    provider_metadata: ProviderMetadata | None = None


class SourceDocumentUIPart(WireModel):
    """A document source cited by the model."""

    type: Literal["source-document"] = "source-document"
    source_id: str
    media_type: str
    title: str
    filename: str | None = None
    provider_metadata: ProviderMetadata | None = None


class FileUIPart(WireModel):
    """A file (URL or data: URL) attached to or produced in a message."""

    type: Literal["file"] = "file"
    media_type: str
    filename: str | None = None
    url: str
    provider_metadata: ProviderMetadata | None = None


class StepStartUIPart(WireModel):
    """Marks the start of a model step; convert splits assistant messages here."""

    type: Literal["step-start"] = "step-start"


class SteeringMessageUIPart(WireModel):
    """A user message that joined the assistant's turn at a step boundary (steering): the
    model saw it as a user message after that step's tool results."""

    type: Literal["steering-message"] = "steering-message"
    id: str
    parts: list[TextUIPart | FileUIPart] = Field(default_factory=list)


class DataUIPart(WireModel):
    """A custom ``data-<name>`` part; upserted by (type, id) during assembly."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"data"})

    type: str
    id: str | None = None
    data: Any = None


class GenericUIPart(WireModel):
    """Any part type this module does not know; kept verbatim so it round-trips."""

    type: str


_PART_TAGS = frozenset(
    {"text", "reasoning", "dynamic-tool", "source-url", "source-document", "file", "step-start",
     "steering-message"}
)


def _ui_part_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return "unknown"
    if kind in _PART_TAGS:
        return kind
    if kind.startswith("tool-") and kind != "tool-invocation":
        return "tool"
    if kind.startswith("data-"):
        return "data"
    return "unknown"


UIMessagePart: TypeAlias = Annotated[
    Annotated[TextUIPart, Tag("text")]
    | Annotated[ReasoningUIPart, Tag("reasoning")]
    | Annotated[ToolUIPart, Tag("tool")]
    | Annotated[DynamicToolUIPart, Tag("dynamic-tool")]
    | Annotated[SourceUrlUIPart, Tag("source-url")]
    | Annotated[SourceDocumentUIPart, Tag("source-document")]
    | Annotated[FileUIPart, Tag("file")]
    | Annotated[StepStartUIPart, Tag("step-start")]
    | Annotated[SteeringMessageUIPart, Tag("steering-message")]
    | Annotated[DataUIPart, Tag("data")]
    | Annotated[GenericUIPart, Tag("unknown")],
    Discriminator(_ui_part_tag),
]
"""Any UI message part; ``tool-*``/``data-*`` map by prefix, unknown types are kept."""


def is_tool_part(part: Any) -> bool:
    """True for ``tool-<name>`` and ``dynamic-tool`` parts (models or dicts)."""
    kind = part.get("type") if isinstance(part, dict) else getattr(part, "type", None)
    return isinstance(kind, str) and (
        kind == "dynamic-tool" or (kind.startswith("tool-") and kind != "tool-invocation")
    )


class UIMessage(WireModel):
    """The AI SDK ``UIMessage``: what the browser shows and what gets persisted."""

    id: str
    role: Literal["system", "user", "assistant"]
    metadata: Any = None
    parts: list[UIMessagePart] = Field(default_factory=list)

    @property
    def text(self) -> str:
        """The concatenated text of all ``text`` parts."""
        return "".join(p.text for p in self.parts if isinstance(p, TextUIPart))

_UI_PART_ADAPTER: TypeAdapter[UIMessagePart] = TypeAdapter(UIMessagePart)


def parse_ui_message(value: UIMessage | dict[str, Any]) -> UIMessage:
    """Return ``value`` as a :class:`UIMessage` (validating dicts, passing models through)."""
    if isinstance(value, UIMessage):
        return value
    return UIMessage.model_validate(value)


def parse_ui_part(value: Any) -> UIMessagePart:
    """Validate one UI message part dict into its model."""
    return _UI_PART_ADAPTER.validate_python(value)
