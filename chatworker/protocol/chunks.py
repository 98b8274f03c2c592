"""The AI SDK UI message stream chunks (the v6-compatible set) as pydantic models.

The real client (``useChat``) rejects unknown chunk types and ``null`` in optional fields, so
:func:`validate_chunk` checks a chunk against the schema and :func:`to_chunk_dict` is the
cheap path that only drops ``None`` optionals.  Control chunks (``__turn_complete``…) are
chatworker's own and never reach ``useChat``.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from .messages import ProviderMetadata, WireModel, dump

__all__ = [
    "CHUNK_MODELS",
    "FINISH_REASONS",
    "AbortChunk",
    "ChunkModel",
    "DataChunk",
    "ErrorChunk",
    "FileChunk",
    "FinishChunk",
    "FinishReason",
    "FinishStepChunk",
    "MessageMetadataChunk",
    "ReasoningDeltaChunk",
    "ReasoningEndChunk",
    "ReasoningStartChunk",
    "SourceDocumentChunk",
    "SourceUrlChunk",
    "StartChunk",
    "StartStepChunk",
    "SteeringMessageChunk",
    "TextDeltaChunk",
    "TextEndChunk",
    "TextStartChunk",
    "ToolApprovalRequestChunk",
    "ToolInputAvailableChunk",
    "ToolInputDeltaChunk",
    "ToolInputErrorChunk",
    "ToolInputStartChunk",
    "ToolOutputAvailableChunk",
    "ToolOutputDeniedChunk",
    "ToolOutputErrorChunk",
    "UIMessageChunk",
    "chunk_model_for",
    "is_control_chunk",
    "to_chunk_dict",
    "validate_chunk",
]

FinishReason: TypeAlias = Literal[
    "stop", "length", "content-filter", "tool-calls", "error", "other"
]

FINISH_REASONS: frozenset[str] = frozenset(typing.get_args(FinishReason))
"""The ``finishReason`` values every supported client accepts."""


class ChunkModel(WireModel):
    """Base for chunk models: strict types (the client does not coerce), extra keys allowed."""

    model_config = ConfigDict(strict=True)


class StartChunk(ChunkModel):
    """Opens a message; ``messageId`` sets the assistant message id (always send it)."""

    type: Literal["start"] = "start"
    message_id: str | None = None
    message_metadata: Any = None


class StartStepChunk(ChunkModel):
    """Opens a model step (pushes a ``step-start`` part)."""

    type: Literal["start-step"] = "start-step"


class FinishStepChunk(ChunkModel):
    """Closes a model step; text and reasoning parts must be closed before it."""

    type: Literal["finish-step"] = "finish-step"


class SteeringMessageChunk(ChunkModel):
    """A user message delivered into the turn at the start of a step (pushes a
    ``steering-message`` part holding the message's id and its text and file parts)."""

    type: Literal["steering-message"] = "steering-message"
    id: str
    parts: list[dict[str, Any]]


class _TextLike(ChunkModel):
    type: str
    id: str
    provider_metadata: ProviderMetadata | None = None


class TextStartChunk(_TextLike):
    """Opens a text part with the given id."""

    type: Literal["text-start"] = "text-start"


class TextDeltaChunk(_TextLike):
    """Appends ``delta`` to the open text part with that id."""

    type: Literal["text-delta"] = "text-delta"
    delta: str


class TextEndChunk(_TextLike):
    """Closes the text part with that id."""

    type: Literal["text-end"] = "text-end"


class ReasoningStartChunk(_TextLike):
    """Opens a reasoning part with the given id."""

    type: Literal["reasoning-start"] = "reasoning-start"


class ReasoningDeltaChunk(_TextLike):
    """Appends ``delta`` to the open reasoning part with that id."""

    type: Literal["reasoning-delta"] = "reasoning-delta"
    delta: str


class ReasoningEndChunk(_TextLike):
    """Closes the reasoning part with that id."""

    type: Literal["reasoning-end"] = "reasoning-end"


class _ToolCallOptionals(ChunkModel):
    type: str
    tool_call_id: str
    provider_executed: bool | None = None
    provider_metadata: ProviderMetadata | None = None
    dynamic: bool | None = None


class ToolInputStartChunk(_ToolCallOptionals):
    """Starts streaming a tool call's input (part state ``input-streaming``)."""

    type: Literal["tool-input-start"] = "tool-input-start"
    tool_name: str
    title: str | None = None


class ToolInputDeltaChunk(ChunkModel):
    """A piece of a tool call's JSON input text."""

    type: Literal["tool-input-delta"] = "tool-input-delta"
    tool_call_id: str
    input_text_delta: str


class ToolInputAvailableChunk(_ToolCallOptionals):
    """The complete tool input (part state ``input-available``); ``input`` is always sent."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"input"})

    type: Literal["tool-input-available"] = "tool-input-available"
    tool_name: str
    input: Any
    title: str | None = None


class ToolInputErrorChunk(_ToolCallOptionals):
    """The model produced an invalid tool call (part state ``output-error``)."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"input"})

    type: Literal["tool-input-error"] = "tool-input-error"
    tool_name: str
    input: Any
    error_text: str
    title: str | None = None


class ToolOutputAvailableChunk(_ToolCallOptionals):
    """The tool's result (part state ``output-available``); ``output`` is always sent."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"output"})

    type: Literal["tool-output-available"] = "tool-output-available"
    output: Any
    preliminary: bool | None = None


class ToolOutputErrorChunk(_ToolCallOptionals):
    """The tool failed (part state ``output-error``)."""

    type: Literal["tool-output-error"] = "tool-output-error"
    error_text: str


class ToolOutputDeniedChunk(ChunkModel):
    """The user denied the tool call (part state ``output-denied``)."""

    type: Literal["tool-output-denied"] = "tool-output-denied"
    tool_call_id: str


class ToolApprovalRequestChunk(ChunkModel):
    """Asks the user to approve a tool call (part state ``approval-requested``)."""

    type: Literal["tool-approval-request"] = "tool-approval-request"
    approval_id: str
    tool_call_id: str


class SourceUrlChunk(ChunkModel):
    """A URL source cited by the model."""

    type: Literal["source-url"] = "source-url"
    source_id: str
    url: str
    title: str | None = None
    provider_metadata: ProviderMetadata | None = None


class SourceDocumentChunk(ChunkModel):
    """A document source cited by the model."""

    type: Literal["source-document"] = "source-document"
    source_id: str
    media_type: str
    title: str
    filename: str | None = None
    provider_metadata: ProviderMetadata | None = None


class FileChunk(ChunkModel):
    """A generated file (URL or data: URL)."""

    type: Literal["file"] = "file"
    url: str
    media_type: str
    provider_metadata: ProviderMetadata | None = None


class DataChunk(ChunkModel):
    """A custom ``data-<name>`` chunk; parts with the same (type, id) are replaced in place."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"data"})

    type: Annotated[str, Field(pattern=r"^data-.+")]
    id: str | None = None
    data: Any
    transient: bool | None = None


class MessageMetadataChunk(ChunkModel):
    """Deep-merges ``messageMetadata`` into the message's metadata."""

    _keep_null: ClassVar[frozenset[str]] = frozenset({"message_metadata"})

    type: Literal["message-metadata"] = "message-metadata"
    message_metadata: Any


class FinishChunk(ChunkModel):
    """Ends the message, with the finish reason and optional metadata."""

    type: Literal["finish"] = "finish"
    finish_reason: FinishReason | None = None
    message_metadata: Any = None


class AbortChunk(ChunkModel):
    """The generation was aborted (stopped)."""

    type: Literal["abort"] = "abort"
    reason: str | None = None


class ErrorChunk(ChunkModel):
    """An error; ``useChat`` goes to status ``error`` on it."""

    type: Literal["error"] = "error"
    error_text: str


CHUNK_MODELS: dict[str, type[ChunkModel]] = {
    model.model_fields["type"].default: model
    for model in (
        StartChunk,
        StartStepChunk,
        FinishStepChunk,
        SteeringMessageChunk,
        TextStartChunk,
        TextDeltaChunk,
        TextEndChunk,
        ReasoningStartChunk,
        ReasoningDeltaChunk,
        ReasoningEndChunk,
        ToolInputStartChunk,
        ToolInputDeltaChunk,
        ToolInputAvailableChunk,
        ToolInputErrorChunk,
        ToolOutputAvailableChunk,
        ToolOutputErrorChunk,
        ToolOutputDeniedChunk,
        ToolApprovalRequestChunk,
        SourceUrlChunk,
        SourceDocumentChunk,
        FileChunk,
        MessageMetadataChunk,
        FinishChunk,
        AbortChunk,
        ErrorChunk,
    )
}
"""Chunk type → model, for every fixed chunk type (``data-*`` maps to :class:`DataChunk`)."""


def chunk_model_for(chunk_type: str) -> type[ChunkModel] | None:
    """The model class for a chunk type, or None when the client would reject the type."""
    model = CHUNK_MODELS.get(chunk_type)
    if model is None and chunk_type.startswith("data-") and len(chunk_type) > 5:
        return DataChunk
    return model


def _chunk_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if isinstance(kind, str) and kind.startswith("data-"):
        return "data"
    return kind if isinstance(kind, str) else ""


UIMessageChunk: TypeAlias = Annotated[
    Annotated[StartChunk, Tag("start")]
    | Annotated[StartStepChunk, Tag("start-step")]
    | Annotated[FinishStepChunk, Tag("finish-step")]
    | Annotated[SteeringMessageChunk, Tag("steering-message")]
    | Annotated[TextStartChunk, Tag("text-start")]
    | Annotated[TextDeltaChunk, Tag("text-delta")]
    | Annotated[TextEndChunk, Tag("text-end")]
    | Annotated[ReasoningStartChunk, Tag("reasoning-start")]
    | Annotated[ReasoningDeltaChunk, Tag("reasoning-delta")]
    | Annotated[ReasoningEndChunk, Tag("reasoning-end")]
    | Annotated[ToolInputStartChunk, Tag("tool-input-start")]
    | Annotated[ToolInputDeltaChunk, Tag("tool-input-delta")]
    | Annotated[ToolInputAvailableChunk, Tag("tool-input-available")]
    | Annotated[ToolInputErrorChunk, Tag("tool-input-error")]
    | Annotated[ToolOutputAvailableChunk, Tag("tool-output-available")]
    | Annotated[ToolOutputErrorChunk, Tag("tool-output-error")]
    | Annotated[ToolOutputDeniedChunk, Tag("tool-output-denied")]
    | Annotated[ToolApprovalRequestChunk, Tag("tool-approval-request")]
    | Annotated[SourceUrlChunk, Tag("source-url")]
    | Annotated[SourceDocumentChunk, Tag("source-document")]
    | Annotated[FileChunk, Tag("file")]
    | Annotated[DataChunk, Tag("data")]
    | Annotated[MessageMetadataChunk, Tag("message-metadata")]
    | Annotated[FinishChunk, Tag("finish")]
    | Annotated[AbortChunk, Tag("abort")]
    | Annotated[ErrorChunk, Tag("error")],
    Discriminator(_chunk_tag),
]
"""Any client-facing UI message chunk, discriminated by ``type``."""


class _NullRules(typing.NamedTuple):
    known: frozenset[str]  # every declared key (wire alias and attribute name)
    nullable: frozenset[str]  # keys typed "unknown" by the client: null is valid
    keep: frozenset[str]  # required "unknown" keys: kept even when None


def _null_rules(model: type[ChunkModel]) -> _NullRules:
    known: set[str] = set()
    nullable: set[str] = set()
    keep: set[str] = set()
    for name, field in model.model_fields.items():
        keys = {name, field.alias or name}
        known |= keys
        if field.annotation is Any:
            nullable |= keys
            if field.is_required():
                keep |= keys
    return _NullRules(frozenset(known), frozenset(nullable), frozenset(keep))


_ALL_MODELS: list[type[ChunkModel]] = [*CHUNK_MODELS.values(), DataChunk]
_NULL_RULES: dict[type[ChunkModel], _NullRules] = {m: _null_rules(m) for m in _ALL_MODELS}
_KEEP_NULL_BY_TYPE: dict[str, frozenset[str]] = {
    kind: _NULL_RULES[model].keep for kind, model in CHUNK_MODELS.items()
}
_DATA_KEEP_NULL = _NULL_RULES[DataChunk].keep


def is_control_chunk(chunk: Any) -> bool:
    """True for chatworker's own control chunks (type starting ``__``), which clients filter."""
    kind = chunk.get("type") if isinstance(chunk, dict) else getattr(chunk, "type", None)
    return isinstance(kind, str) and kind.startswith("__")


def _format_errors(kind: str, exc: ValidationError) -> str:
    details = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "<chunk>"
        if err["type"] == "missing":
            details.append(f"missing required key {loc!r}")
        else:
            details.append(f"{loc}: {err['msg']}")
    return f"invalid {kind!r} chunk: " + "; ".join(details)


def validate_chunk(
    obj: dict[str, Any] | BaseModel, *, allow_control: bool = False
) -> dict[str, Any]:
    """Check a chunk against the client's schema and return its JSON-ready dict.

    Raises ValueError for an unknown type, ``null`` in an optional field, a missing required
    key or a wrong value (e.g. a bad ``finishReason``).  Control chunks pass only with
    ``allow_control=True`` (they are not part of the client schema).
    """
    data = dump(obj) if isinstance(obj, BaseModel) else obj
    if not isinstance(data, dict):
        raise ValueError(f"a UI message chunk must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"a UI message chunk needs a string 'type', got {kind!r}")
    if kind.startswith("__"):
        if allow_control:
            return to_chunk_dict(data)
        raise ValueError(f"control chunk {kind!r} must not be sent to the AI SDK client")
    model = chunk_model_for(kind)
    if model is None:
        raise ValueError(f"unknown UI message chunk type {kind!r}")
    rules = _NULL_RULES[model]
    for key, value in data.items():
        if value is None and key in rules.known and key not in rules.nullable:
            raise ValueError(
                f"invalid {kind!r} chunk: optional key {key!r} is null; omit it instead"
            )
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_format_errors(kind, exc)) from None
    return dump(validated)


def to_chunk_dict(obj: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """Fast path to a JSON-ready chunk dict: models are dumped, dicts lose ``None`` optionals.

    A dict with no ``None`` values is returned as is (not copied); ``input``/``output``/
    ``data`` (and ``messageMetadata`` on ``message-metadata``) keep an explicit ``None``.
    """
    if isinstance(obj, BaseModel):
        return dump(obj)
    if not isinstance(obj, dict):
        raise TypeError(f"a UI message chunk must be a dict or a model, got {type(obj).__name__}")
    for value in obj.values():
        if value is None:
            break
    else:
        return obj
    kind = obj.get("type")
    keep: frozenset[str] = frozenset()
    if isinstance(kind, str):
        found = _KEEP_NULL_BY_TYPE.get(kind)
        if found is not None:
            keep = found
        elif kind.startswith("data-"):
            keep = _DATA_KEEP_NULL
    return {k: v for k, v in obj.items() if v is not None or k in keep}
