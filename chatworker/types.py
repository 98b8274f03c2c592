"""The typed seams between the layers: what a task definition and a run driver offer, and the
objects a chat run's code sees (the run context and the hook events).

Field names are the seed's, in snake_case. ``ui_messages``/``messages`` are the whole
accumulated conversation; ``new_*`` are what arrived this turn plus the response. Events are
keyword-only dataclasses: they are built by name, never by position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from celery import Celery

from .config import Duration
from .protocol.messages import ModelMessage, UIMessage
from .signals import AbortSignal


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
class PreloadEvent:
    """``on_preload``: a preloaded run started, before its first message."""

    chat_id: str
    run_id: str
    chat_access_token: str
    client_data: Any


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
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


@dataclass(kw_only=True)
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


Hook = Callable[[Any], Any]


class TaskDefinition(Protocol):
    """What every chatworker task offers the engine, the client API and the gateway: chat
    tasks (``chat.task``) and manual tasks (``chatworker.task``) alike."""

    id: str
    max_turns: int
    chat_access_token_ttl: Duration
    warm_timeout_in_seconds: float
    turn_timeout: Duration
    max_duration: Duration | None
    client_data_schema: Any
    ui_message_stream_options: dict[str, Any]
    queue: dict[str, Any]

    def bind(self, app: Celery) -> None:
        """Register the task's Celery task on ``app``."""

    def enqueue(self, run_id: str) -> None:
        """Send the Celery message that starts or resumes ``run_id``."""

    def execute(self, run_id: str) -> None:
        """Run ``run_id`` on this worker until it suspends or ends."""


class ChatTaskDefinition(TaskDefinition, Protocol):
    """A ``chat.task``: its run function, hooks and preload settings, as its turn loop reads
    them."""

    run_fn: Callable[[ChatRunContext], Any]
    hooks: dict[str, Hook | None]
    preload_warm_timeout_in_seconds: float | None
    preload_timeout: Duration | None
    preload_timeout_seconds: float | None


class Driver(Protocol):
    """The run a turn belongs to, as the turn's helpers see it."""

    run_id: str

    def stream_defaults(self) -> dict[str, Any]:
        """The task's static ``ui_message_stream_options``."""
