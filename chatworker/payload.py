"""The wire payload: what a trigger body and every input message carry (SPEC §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidPayload
from .messages import UIMessage

if TYPE_CHECKING:
    from .registry import AnyTask

Trigger = Literal["submit-message", "regenerate-message", "preload"]


class ChatWirePayload(BaseModel):
    """``{chatId, messages, trigger, messageId?, metadata?, continuation?, previousRunId?,
    warmTimeoutInSeconds?, ...extra body keys}``; ``metadata`` is the client data."""

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

    @property
    def extra(self) -> dict[str, Any]:
        """Keys the client added to the body beyond the fixed ones."""
        return dict(self.__pydantic_extra__ or {})

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict, with absent optional fields omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_payload(obj: Any, task: AnyTask | None = None) -> ChatWirePayload:
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


def parse_client_data(task: AnyTask, metadata: Any) -> Any:
    """The client data parsed by the task's ``client_data_schema`` (raw when it has none)."""
    schema = getattr(task, "client_data_schema", None)
    if schema is None:
        return metadata
    try:
        return schema.model_validate(metadata if metadata is not None else {})
    except ValidationError as exc:
        raise InvalidPayload(f"invalid client data (metadata): {_describe(exc)}") from exc
