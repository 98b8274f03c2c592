"""Pydantic models for the AI SDK's ``UIMessage`` and ``ModelMessage`` shapes.

Attributes are snake_case, serialised as the AI SDK's camelCase; unknown keys and unknown part
types are kept so messages written by newer clients round-trip unchanged.  Use :func:`dump`
to serialise: absent optional fields are omitted (never ``null``), while ``input``, ``output``
and ``data`` keep an explicitly set ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    TypeAdapter,
    model_serializer,
)
from pydantic.alias_generators import to_camel

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

ProviderMetadata: TypeAlias = dict[str, dict[str, Any]]
"""Provider metadata / options: a record of records, ``{provider: {key: JSON}}``."""

TOOL_STATES: frozenset[str] = frozenset(
    {
        "input-streaming",
        "input-available",
        "approval-requested",
        "approval-responded",
        "output-available",
        "output-error",
        "output-denied",
    }
)
"""Tool part states known to AI SDK v6/v7 (other values are accepted and kept)."""


class WireModel(BaseModel):
    """Base for every wire model: camelCase aliases, extra keys kept, nulls omitted on dump.

    Fields listed in ``_keep_null`` (``input``/``output``/``data``…) keep an explicit ``None``.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        serialize_by_alias=True,
    )

    _keep_null: ClassVar[frozenset[str]] = frozenset()
    _keep_null_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys = set(cls._keep_null)
        for name in cls._keep_null:
            field = cls.model_fields.get(name)
            if field is not None and field.alias:
                keys.add(field.alias)
        cls._keep_null_keys = frozenset(keys)

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        extras = self.__pydantic_extra__ or {}
        keep = self._keep_null_keys
        fields_set = self.model_fields_set
        fields = type(self).model_fields
        out: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                if key in extras:
                    pass  # unknown keys round-trip verbatim
                elif key not in keep:
                    continue
                else:
                    name = key if key in fields else _alias_to_name(type(self), key)
                    if name not in fields_set:
                        continue
            out[key] = value
        return out


def _alias_to_name(cls: type[BaseModel], key: str) -> str:
    for name, field in cls.model_fields.items():
        if field.alias == key:
            return name
    return key


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
    {"text", "reasoning", "dynamic-tool", "source-url", "source-document", "file", "step-start"}
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
_UI_PART_ADAPTER: TypeAdapter[UIMessagePart] = TypeAdapter(UIMessagePart)


# ------------------------------------------------------------------------------------ helpers


def parse_ui_message(value: UIMessage | dict[str, Any]) -> UIMessage:
    """Return ``value`` as a :class:`UIMessage` (validating dicts, passing models through)."""
    if isinstance(value, UIMessage):
        return value
    return UIMessage.model_validate(value)


def parse_ui_part(value: Any) -> UIMessagePart:
    """Validate one UI message part dict into its model."""
    return _UI_PART_ADAPTER.validate_python(value)


def parse_model_message(value: Any) -> ModelMessage:
    """Validate one model message dict (or pass a model through)."""
    return _MODEL_MESSAGE_ADAPTER.validate_python(value)


def parse_model_messages(values: Iterable[Any]) -> list[ModelMessage]:
    """Validate a list of model message dicts."""
    return _MODEL_MESSAGES_ADAPTER.validate_python(list(values))


def dump(model: BaseModel) -> dict[str, Any]:
    """Serialise a wire model to a JSON-ready dict: camelCase keys, absent fields omitted."""
    result: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return result


def dump_all(models: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Serialise each model with :func:`dump`."""
    return [dump(m) for m in models]
