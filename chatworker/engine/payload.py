"""The wire payload: what a trigger body and every input message carry (SPEC §3)."""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidPayload
from ..protocol.messages import UIMessage
from ..types import TaskDefinition
from .policy import WhileStreaming

Trigger = Literal["submit-message", "regenerate-message", "preload"]

#: How deep objects and arrays may nest in a payload: the limit of the JSON parser the worker
#: reads every queued message with (pydantic's). Deeper is refused before anything is enqueued.
MAX_DEPTH = 200


class ChatWirePayload(BaseModel):
    """``{chatId, messages, trigger, messageId?, metadata?, continuation?, previousRunId?,
    warmTimeoutInSeconds?, whileStreaming?, ...extra body keys}``; ``metadata`` is the client
    data, ``whileStreaming`` what the message does if it arrives while a turn streams."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    chat_id: str = Field(alias="chatId", min_length=1, max_length=256)
    messages: list[UIMessage] = Field(default_factory=list)
    trigger: Trigger = "submit-message"
    message_id: str | None = Field(default=None, alias="messageId")
    metadata: Any = None
    continuation: bool = False
    previous_run_id: str | None = Field(default=None, alias="previousRunId")
    warm_timeout_in_seconds: float | None = Field(
        default=None, alias="warmTimeoutInSeconds", ge=0, le=86400
    )
    while_streaming: WhileStreaming | None = Field(default=None, alias="whileStreaming")

    @property
    def extra(self) -> dict[str, Any]:
        """Keys the client added to the body beyond the fixed ones."""
        return dict(self.__pydantic_extra__ or {})

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict, with absent optional fields omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_wire_json(self) -> str:
        """The exact JSON that is enqueued for the worker, already read back the way the worker
        reads it (:meth:`model_validate_json`), so a message that is accepted is one the run can
        read. Raises :class:`InvalidPayload` for what it could not: a lone surrogate, nesting
        deeper than :data:`MAX_DEPTH`."""
        try:
            wire = self.model_dump_json(by_alias=True, exclude_none=True)
            ChatWirePayload.model_validate_json(wire)
        except (ValueError, ValidationError) as exc:  # incl. PydanticSerializationError
            detail = _json_detail(exc)
            reason = unreadable_json(detail, "the payload", where=False)
            raise InvalidPayload(reason or f"invalid payload: {detail}") from None
        return wire


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


_WHERE = re.compile(r" at (line \d+ column \d+)$")


def _json_detail(exc: Exception) -> str:
    """The parser's own words for why JSON was refused (from a ValidationError, its ctx)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            return str((errors[0].get("ctx") or {}).get("error", errors[0]["msg"]))
        return _describe(exc)
    return str(exc)


def unreadable_json(detail: str, what: str, *, where: bool = True) -> str | None:
    """Why well-formed JSON is refused by the worker's parser, in words a person can act on
    (``detail`` is the parser's message); None when it is something else (malformed JSON)."""
    found = _WHERE.search(detail) if where else None
    at = f" at {found.group(1)}" if found else ""
    if "recursion limit" in detail or "depth exceeded" in detail:
        return (f"{what} nests deeper than {MAX_DEPTH} levels{at}: objects and arrays may be "
                f"nested at most {MAX_DEPTH} deep")
    if "surrogate" in detail or "hex escape" in detail:
        return (f"{what} contains an invalid unicode escape (a lone surrogate){at}: one half "
                f"of a \\ud800-\\udfff surrogate pair without the other is not text; send the "
                f"character itself, or both halves of its pair")
    return None


def load_json(text: str | bytes) -> Any:
    """Parse a request body with the parser the worker reads messages with (pydantic's), so
    what is accepted here the worker can read. ``NaN`` and ``Infinity`` are refused.

    Raises :class:`InvalidPayload` for well-formed JSON the worker could not read (a lone
    surrogate, nesting deeper than :data:`MAX_DEPTH`) and ``ValueError`` for malformed JSON.
    """
    try:
        return pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:
        reason = unreadable_json(str(exc), "the body")
        if reason is not None:
            raise InvalidPayload(reason) from None
        raise


def parse_payload(obj: Any, task: TaskDefinition | None = None) -> ChatWirePayload:
    """Validate a wire payload (and its ``metadata`` against the task's client data schema).

    Raises :class:`InvalidPayload` with a message naming the offending fields.
    """
    if isinstance(obj, ChatWirePayload):
        payload = obj
    else:
        if not isinstance(obj, dict):
            raise InvalidPayload("the body must be a JSON object with chatId and messages")
        try:
            payload = ChatWirePayload.model_validate(obj)
        except ValidationError as exc:
            raise InvalidPayload(f"invalid payload: {_describe(exc)}") from exc
    if task is not None:
        parse_client_data(task, payload.metadata)
    return payload


def parse_client_data(task: TaskDefinition, metadata: Any) -> Any:
    """The client data parsed by the task's ``client_data_schema`` (raw when it has none)."""
    schema = getattr(task, "client_data_schema", None)
    if schema is None:
        return metadata
    try:
        return schema.model_validate(metadata if metadata is not None else {})
    except ValidationError as exc:
        raise InvalidPayload(f"invalid client data (metadata): {_describe(exc)}") from exc
