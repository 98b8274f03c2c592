"""The objects a chat run's code sees: the run context and the hook events.

Field names are the seed's, in snake_case. ``ui_messages``/``messages`` are the whole
accumulated conversation; ``new_*`` are what arrived this turn plus the response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .protocol.messages import ModelMessage, UIMessage
from .signals import AbortSignal


@dataclass
class ChatRunContext:
    """What ``run`` receives each turn. Extra keys the client put in its body are attributes too."""

    messages: list[ModelMessage]
    ui_messages: list[UIMessage]
    chat_id: str
    run_id: str
    turn: int
    trigger: str
    message_id: str | None
    client_data: Any
    continuation: bool
    previous_run_id: str | None
    preloaded: bool
    signal: AbortSignal
    stop_signal: AbortSignal
    cancel_signal: AbortSignal
    chat_access_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not fields: the client's extra body keys.
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"the run context has no field or body key {name!r}")


@dataclass
class PreloadEvent:
    """``on_preload``: a preloaded run started, before its first message."""

    chat_id: str
    run_id: str
    chat_access_token: str
    client_data: Any


@dataclass
class ChatStartEvent:
    """``on_chat_start``: turn 0 of every run (continuation runs too), before ``run``."""

    chat_id: str
    messages: list[ModelMessage]
    client_data: Any
    run_id: str
    chat_access_token: str
    continuation: bool
    previous_run_id: str | None
    preloaded: bool


@dataclass
class TurnStartEvent:
    """``on_turn_start``: every turn, after accumulation, before ``run`` (persist here)."""

    chat_id: str
    messages: list[ModelMessage]
    ui_messages: list[UIMessage]
    turn: int
    run_id: str
    chat_access_token: str
    continuation: bool
    preloaded: bool
    client_data: Any


@dataclass
class TurnCompleteEvent:
    """``on_turn_complete``: after the turn's marker was written; persist the response here."""

    chat_id: str
    messages: list[ModelMessage]
    ui_messages: list[UIMessage]
    new_messages: list[ModelMessage]
    new_ui_messages: list[UIMessage]
    response_message: UIMessage | None
    raw_response_message: UIMessage | None
    turn: int
    run_id: str
    chat_access_token: str
    last_event_id: str | None
    stopped: bool
    continuation: bool
    client_data: Any
