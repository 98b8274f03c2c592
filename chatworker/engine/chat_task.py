"""``chat.task``: a chat run definition — its run function, hooks and options."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from celery import Celery
from pydantic import BaseModel

from ..config import Duration, parse_duration
from .celery_app import CeleryBacked
from .chat_run import execute_chat
from .policy import WhileStreaming, check_overrides, check_policy
from .registry import register
from .stream_options import normalize_stream_options

log = logging.getLogger("chatworker.task")

HOOKS = ("on_preload", "on_chat_start", "on_turn_start", "on_turn_complete")

RunFunction = Callable[[Any], Any]
Hook = Callable[[Any], Any]


class ChatTask(CeleryBacked):
    """A chat task: register hooks with ``@task.on_turn_complete`` etc.; start runs with
    :meth:`trigger`. Each run is one Celery task execution that loops over turns."""

    def __init__(
        self,
        id: str,
        run: RunFunction | None = None,
        *,
        client_data_schema: type[BaseModel] | None = None,
        on_preload: Hook | None = None,
        on_chat_start: Hook | None = None,
        on_turn_start: Hook | None = None,
        on_turn_complete: Hook | None = None,
        warm_timeout_in_seconds: float = 30,
        turn_timeout: Duration = "1h",
        max_turns: int = 100,
        preload_warm_timeout_in_seconds: float | None = None,
        preload_timeout: Duration | None = None,
        chat_access_token_ttl: Duration = "1h",
        max_duration: Duration | None = None,
        ui_message_stream_options: dict[str, Any] | None = None,
        queue: dict[str, Any] | str | None = None,
        while_streaming: WhileStreaming = "queue",
        while_streaming_overrides: Iterable[WhileStreaming] | None = None,
        app: Celery | None = None,
    ) -> None:
        if not id or not isinstance(id, str):
            raise ValueError("a chat task needs a non-empty string id")
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        parse_duration(turn_timeout)  # fail at definition time, not in a run
        parse_duration(chat_access_token_ttl)
        if max_duration is not None:
            parse_duration(max_duration)
        if preload_timeout is not None:
            parse_duration(preload_timeout)
        self.id = id
        self.run_fn: RunFunction = run or _missing_run
        self.client_data_schema = client_data_schema
        self.hooks: dict[str, Hook | None] = {
            "on_preload": on_preload,
            "on_chat_start": on_chat_start,
            "on_turn_start": on_turn_start,
            "on_turn_complete": on_turn_complete,
        }
        self.warm_timeout_in_seconds = float(warm_timeout_in_seconds)
        self.turn_timeout = turn_timeout
        self.max_duration = max_duration
        self.max_turns = max_turns
        self.preload_warm_timeout_in_seconds = preload_warm_timeout_in_seconds
        self.preload_timeout = preload_timeout
        self.preload_timeout_seconds = (
            parse_duration(preload_timeout) if preload_timeout is not None else None
        )
        self.chat_access_token_ttl = chat_access_token_ttl
        self.ui_message_stream_options = normalize_stream_options(ui_message_stream_options)
        self.queue = {"name": queue} if isinstance(queue, str) else dict(queue or {})
        # What a message arriving mid-reply does, and which policies a message may ask for.
        self.while_streaming = check_policy(while_streaming)
        self.while_streaming_overrides = check_overrides(while_streaming_overrides)
        register(self)
        self._setup_celery(app)

    def __call__(self, fn: RunFunction) -> ChatTask:
        """Decorator form: ``@chat.task(id=...)`` on the run function."""
        self.run_fn = fn
        return self

    def execute(self, run_id: str) -> None:
        execute_chat(self, run_id)

    # Hook decorators: @my_chat.on_turn_complete
    def on_preload(self, fn: Hook) -> Hook:
        self.hooks["on_preload"] = fn
        return fn

    def on_chat_start(self, fn: Hook) -> Hook:
        self.hooks["on_chat_start"] = fn
        return fn

    def on_turn_start(self, fn: Hook) -> Hook:
        self.hooks["on_turn_start"] = fn
        return fn

    def on_turn_complete(self, fn: Hook) -> Hook:
        self.hooks["on_turn_complete"] = fn
        return fn

    def __repr__(self) -> str:
        return f"<ChatTask {self.id!r}>"


def _missing_run(context: Any) -> Any:
    raise RuntimeError("this chat task has no run function: decorate one with @chat.task(...)")
