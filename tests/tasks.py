"""Chat tasks the integration tests run on a real worker (loaded via CHATWORKER_TASKS).

Hooks record what they saw in the Redis list ``test:events:<chatId>``, the way an app would
persist them, so tests observe exactly what a user's hooks receive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from chatworker import chat
from chatworker.messages import dump

_client: redis.Redis | None = None


def store() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["CHATWORKER_REDIS_URL"], decode_responses=True)
    return _client


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return dump(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def record(name: str, event: Any) -> None:
    fields = {k: _plain(v) for k, v in vars(event).items() if not k.endswith("signal")}
    store().rpush(f"test:events:{event.chat_id}", json.dumps({"hook": name, **fields}))


class EchoOptions(BaseModel):
    """Client data the echo task understands."""

    model_config = ConfigDict(extra="allow")
    delay: float = 0.0
    words: int = 0
    fail_in: str | None = None


def last_user_text(ctx: Any) -> str:
    for message in reversed(ctx.ui_messages):
        if message.role == "user":
            return "".join(getattr(p, "text", "") for p in message.parts)
    return ""


def echo_chunks(ctx: Any, text: str, delay: float) -> Iterator[dict[str, Any]]:
    yield {"type": "start-step"}
    yield {"type": "text-start", "id": "t1"}
    for word in text.split(" "):
        if delay and ctx.signal.wait(delay):
            return
        yield {"type": "text-delta", "id": "t1", "delta": word + " "}
    yield {"type": "text-end", "id": "t1"}
    yield {"type": "finish-step"}
    yield {"type": "finish", "finishReason": "stop"}


def reply_text(ctx: Any) -> str:
    options: EchoOptions = ctx.client_data
    words = " ".join(f"w{i}" for i in range(options.words)) if options.words else ""
    return f"echo: {last_user_text(ctx)} (turn {ctx.turn}) {words}".strip()


def echo_run(ctx: Any) -> Any:
    options: EchoOptions = ctx.client_data
    if options.fail_in == "run":
        raise ValueError("the run function failed on purpose")
    return echo_chunks(ctx, reply_text(ctx), options.delay)


def _hooks(task: Any) -> None:
    @task.on_chat_start
    def on_chat_start(event: Any) -> None:
        record("on_chat_start", event)

    @task.on_turn_start
    def on_turn_start(event: Any) -> None:
        if event.client_data.fail_in == "on_turn_start":
            raise RuntimeError("on_turn_start failed on purpose")
        record("on_turn_start", event)

    @task.on_turn_complete
    def on_turn_complete(event: Any) -> None:
        record("on_turn_complete", event)


echo = chat.task(id="echo", run=echo_run, client_data_schema=EchoOptions,
                 warm_timeout_in_seconds=10, turn_timeout="60s")
_hooks(echo)

# Suspends quickly: a second of warm, then a minute suspended.
sleepy = chat.task(id="sleepy", run=echo_run, client_data_schema=EchoOptions,
                   warm_timeout_in_seconds=0.5, turn_timeout="60s")
_hooks(sleepy)

# Ends quickly: half a second warm, then two seconds suspended, then completed.
brief = chat.task(id="brief", run=echo_run, client_data_schema=EchoOptions,
                  warm_timeout_in_seconds=0.3, turn_timeout="2s")
_hooks(brief)

# Suspends the moment a turn ends: the hammer test sends at exactly that moment.
instant = chat.task(id="instant", run=echo_run, client_data_schema=EchoOptions,
                    warm_timeout_in_seconds=0, turn_timeout="60s")
_hooks(instant)

limited = chat.task(id="limited", run=echo_run, client_data_schema=EchoOptions,
                    warm_timeout_in_seconds=5, max_turns=2)
_hooks(limited)


@chat.task(id="overrides", client_data_schema=EchoOptions, warm_timeout_in_seconds=30,
           turn_timeout="1h")
def overrides(ctx: Any) -> Any:
    if ctx.turn == 0:
        chat.set_warm_timeout_in_seconds(0.3)
        chat.set_turn_timeout("3s")
    return echo_chunks(ctx, reply_text(ctx), 0)


_hooks(overrides)


@chat.task(id="piped", client_data_schema=EchoOptions, warm_timeout_in_seconds=5)
def piped(ctx: Any) -> None:
    helper_that_pipes(ctx)


def helper_that_pipes(ctx: Any) -> None:
    chat.pipe(echo_chunks(ctx, "first part.", 0))
    chat.pipe([{"type": "data-progress", "id": "p1", "data": {"done": True}}])
    chat.pipe(echo_chunks(ctx, "second part.", 0))


_hooks(piped)
