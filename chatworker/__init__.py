"""chatworker: AI chat conversations as durable, long-lived Celery tasks.

``chat.task`` defines a chat; each run loops over turns on a Celery worker, streams AI SDK UI
message chunks into a Redis Stream, waits warm, then suspends until the next message.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import chat, runs
from .engine.celery_app import configure, create_app
from .engine.chat_task import ChatTask
from .engine.manual import ManualContext, ManualTask, task
from .engine.payload import ChatWirePayload
from .errors import ChatworkerError, InvalidPayload, RunEnded, RunNotFound, TaskNotFound
from .protocol.messages import ModelMessage, UIMessage
from .signals import AbortController, AbortSignal
from .types import ChatRunContext, ChatStartEvent, PreloadEvent, TurnCompleteEvent, TurnStartEvent

__all__ = [
    "AbortController",
    "AbortSignal",
    "ChatRunContext",
    "ChatStartEvent",
    "ChatTask",
    "ChatWirePayload",
    "ChatworkerError",
    "InvalidPayload",
    "ManualContext",
    "ManualTask",
    "ModelMessage",
    "PreloadEvent",
    "RunEnded",
    "RunNotFound",
    "TaskNotFound",
    "TurnCompleteEvent",
    "TurnStartEvent",
    "UIMessage",
    "chat",
    "configure",
    "create_app",
    "runs",
    "task",
]

#: Submodules loaded on first attribute access (``chatworker.flask.chat_blueprint()`` after a
#: bare ``import chatworker``), so importing the package does not load the HTTP gateway.
_LAZY_SUBMODULES = frozenset({"flask", "messages", "convert"})


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
