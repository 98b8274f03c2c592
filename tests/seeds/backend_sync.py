"""The seed's ``chat.task`` examples (Backend page, Quickstart step 1), ported line by line to
sync Python. Task ids are the seed's id plus ``-sync``; examples the seed all calls ``my-chat``
get their section's name. ``db`` is the seed's database (see db.py).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pydantic import BaseModel, Field

from chatworker import chat
from chatworker.ai import openai, stream_text

from .db import db, track


class ClientData(BaseModel):
    """``z.object({ userId: z.string() })``: the client sends ``userId``."""

    user_id: str = Field(alias="userId")


user_context = chat.local("user_context")


# -- Quickstart step 1: "Define a chat task" ------------------------------------------------------
@chat.task(id="my-chat-sync")
def my_chat(ctx: Any) -> Any:
    # messages is ModelMessage[] — pass directly to stream_text
    # signal fires on stop or run cancel
    return stream_text(
        model=openai("gpt-4o"),
        messages=ctx.messages,
        abort_signal=ctx.signal,
    )


# -- Simple: return a StreamTextResult -----------------------------------------------------------
@chat.task(id="simple-chat-sync")
def simple_chat(ctx: Any) -> Any:
    return stream_text(
        model=openai("gpt-4o"),
        system="You are a helpful assistant.",
        messages=ctx.messages,
        abort_signal=ctx.signal,
    )


# -- Using chat.pipe() for complex flows ---------------------------------------------------------
@chat.task(id="agent-chat-sync")
def agent_chat(ctx: Any) -> None:
    # Don't return anything — chat.pipe is called inside
    run_agent_loop(ctx.messages)


def run_agent_loop(messages: list[Any]) -> None:
    # ... agent logic, tool calls, etc.

    result = stream_text(
        model=openai("gpt-4o"),
        messages=messages,
    )

    # Pipe from anywhere — no need to return it
    chat.pipe(result)


# -- Lifecycle hooks: onPreload ------------------------------------------------------------------
def preload_on_preload(event: Any) -> None:
    # Initialize early — before the first message arrives
    user = db.user.find_unique(where={"id": event.client_data.user_id})
    user_context.init({"name": user["name"], "plan": user["plan"]})

    db.chat.create(data={"id": event.chat_id, "user_id": event.client_data.user_id})
    db.chat_session.upsert(
        where={"id": event.chat_id},
        create={"id": event.chat_id, "run_id": event.run_id,
                "public_access_token": event.chat_access_token},
        update={"run_id": event.run_id, "public_access_token": event.chat_access_token},
    )


def preload_on_chat_start(event: Any) -> None:
    if event.preloaded:
        return  # Already initialized in on_preload
    # ... non-preloaded initialization
    db.chat.create(data={"id": event.chat_id, "user_id": event.client_data.user_id})


def preload_run(ctx: Any) -> Any:
    return stream_text(model=openai("gpt-4o"), messages=ctx.messages, abort_signal=ctx.signal)


preload_chat = chat.task(
    id="my-chat-preload-sync",
    client_data_schema=ClientData,
    on_preload=preload_on_preload,
    on_chat_start=preload_on_chat_start,
    run=preload_run,
)


# -- onChatStart ---------------------------------------------------------------------------------
def chat_start_on_chat_start(event: Any) -> None:
    if event.preloaded:
        return  # Already set up in on_preload
    if event.continuation:
        return  # Chat record already exists

    user_id = event.client_data["userId"]
    db.chat.create(
        data={"id": event.chat_id, "user_id": user_id, "title": "New chat"},
    )


chat_start_chat = chat.task(
    id="my-chat-chat-start-sync",
    on_chat_start=chat_start_on_chat_start,
    run=preload_run,
)


# -- onTurnStart ---------------------------------------------------------------------------------
def turn_start_on_turn_start(event: Any) -> None:
    db.chat.update(
        where={"id": event.chat_id},
        data={"messages": event.ui_messages},
    )
    db.chat_session.upsert(
        where={"id": event.chat_id},
        create={"id": event.chat_id, "run_id": event.run_id,
                "public_access_token": event.chat_access_token},
        update={"run_id": event.run_id, "public_access_token": event.chat_access_token},
    )


turn_start_chat = chat.task(
    id="my-chat-turn-start-sync",
    on_turn_start=turn_start_on_turn_start,
    run=preload_run,
)


# -- onTurnComplete ------------------------------------------------------------------------------
def turn_complete_on_turn_complete(event: Any) -> None:
    db.chat.update(
        where={"id": event.chat_id},
        data={"messages": event.ui_messages},
    )
    db.chat_session.upsert(
        where={"id": event.chat_id},
        create={"id": event.chat_id, "run_id": event.run_id,
                "public_access_token": event.chat_access_token,
                "last_event_id": event.last_event_id},
        update={"run_id": event.run_id, "public_access_token": event.chat_access_token,
                "last_event_id": event.last_event_id},
    )


turn_complete_chat = chat.task(
    id="my-chat-turn-complete-sync",
    on_turn_complete=turn_complete_on_turn_complete,
    run=preload_run,
)


# -- Stop generation: abort signals --------------------------------------------------------------
@chat.task(id="my-chat-signals-sync")
def signals_chat(ctx: Any) -> Any:
    return stream_text(
        model=openai("gpt-4o"),
        messages=ctx.messages,
        abort_signal=ctx.signal,  # Handles both stop and cancel
    )


# -- Detecting stop in callbacks: onTurnComplete's stopped ---------------------------------------
def stopped_on_turn_complete(event: Any) -> None:
    db.chat.update(
        where={"id": event.chat_id},
        data={"messages": event.ui_messages,
              "last_stopped_at": time.time() if event.stopped else None},
    )


stopped_chat = chat.task(
    id="my-chat-stopped-sync",
    on_turn_complete=stopped_on_turn_complete,
    run=preload_run,
)


# -- Detecting stop in callbacks: chat.is_stopped() in stream_text's on_finish ------------------
@chat.task(id="my-chat-on-finish-sync")
def on_finish_chat(ctx: Any) -> Any:
    def on_finish(event: Any) -> None:
        # is_aborted may be false even after stop when using create_ui_message_stream
        was_stopped = event.is_aborted or chat.is_stopped()
        # handle stop — e.g. log analytics
        track(ctx.chat_id, "on_finish", was_stopped=was_stopped, is_aborted=event.is_aborted,
              is_stopped=chat.is_stopped(), text=event.text)

    return stream_text(
        model=openai("gpt-4o"),
        messages=ctx.messages,
        abort_signal=ctx.signal,
        on_finish=on_finish,
    )


# -- Persistence: full persistence example -------------------------------------------------------
def persisted_on_chat_start(event: Any) -> None:
    db.chat.create(
        data={"id": event.chat_id, "user_id": event.client_data.user_id, "title": "New chat",
              "messages": []},
    )


def persisted_on_turn_start(event: Any) -> None:
    # Persist messages + session before streaming
    db.chat.update(
        where={"id": event.chat_id},
        data={"messages": event.ui_messages},
    )
    db.chat_session.upsert(
        where={"id": event.chat_id},
        create={"id": event.chat_id, "run_id": event.run_id,
                "public_access_token": event.chat_access_token},
        update={"run_id": event.run_id, "public_access_token": event.chat_access_token},
    )


def persisted_on_turn_complete(event: Any) -> None:
    # Persist assistant response + stream position
    db.chat.update(
        where={"id": event.chat_id},
        data={"messages": event.ui_messages},
    )
    db.chat_session.upsert(
        where={"id": event.chat_id},
        create={"id": event.chat_id, "run_id": event.run_id,
                "public_access_token": event.chat_access_token,
                "last_event_id": event.last_event_id},
        update={"run_id": event.run_id, "public_access_token": event.chat_access_token,
                "last_event_id": event.last_event_id},
    )


def persisted_run(ctx: Any) -> Any:
    return stream_text(
        model=openai("gpt-4o"),
        messages=ctx.messages,
        abort_signal=ctx.signal,
    )


persisted_chat = chat.task(
    id="my-chat-persisted-sync",
    client_data_schema=ClientData,
    on_chat_start=persisted_on_chat_start,
    on_turn_start=persisted_on_turn_start,
    on_turn_complete=persisted_on_turn_complete,
    run=persisted_run,
)


# -- Runtime configuration -----------------------------------------------------------------------
@chat.task(id="my-chat-turn-timeout-sync")
def turn_timeout_chat(ctx: Any) -> Any:
    chat.set_turn_timeout("2h")  # Wait longer for this conversation
    return stream_text(model=openai("gpt-4o"), messages=ctx.messages, abort_signal=ctx.signal)


@chat.task(id="my-chat-warm-timeout-sync")
def warm_timeout_chat(ctx: Any) -> Any:
    chat.set_warm_timeout_in_seconds(60)  # Stay warm for 1 minute
    return stream_text(model=openai("gpt-4o"), messages=ctx.messages, abort_signal=ctx.signal)


# "Set to 0 to suspend immediately after each turn."
@chat.task(id="my-chat-warm-zero-sync")
def warm_zero_chat(ctx: Any) -> Any:
    chat.set_warm_timeout_in_seconds(0)
    return stream_text(model=openai("gpt-4o"), messages=ctx.messages, abort_signal=ctx.signal)


# -- Stream options ------------------------------------------------------------------------------
def on_error(error: BaseException) -> str:
    # Log the full error server-side for debugging
    print("Stream error:", error, file=sys.stderr)
    # Return a sanitized message — this is what the frontend sees
    if isinstance(error, Exception) and "rate limit" in str(error):
        return "Rate limited — please wait a moment and try again."
    return "Something went wrong. Please try again."


on_error_chat = chat.task(
    id="my-chat-on-error-sync",
    ui_message_stream_options={"on_error": on_error},
    run=preload_run,
)

reasoning_chat = chat.task(
    id="my-chat-reasoning-sync",
    ui_message_stream_options={
        "send_reasoning": True,  # Forward model reasoning (default: True)
        "send_sources": True,  # Forward source citations (default: False)
    },
    run=preload_run,
)


class ModelChoice(BaseModel):
    model: str | None = None


# The static config the per-turn override merges over (reasoning off unless a turn enables it).
@chat.task(id="my-chat-per-turn-sync", client_data_schema=ModelChoice,
           ui_message_stream_options={"send_reasoning": False})
def per_turn_chat(ctx: Any) -> Any:
    # Enable reasoning only for certain models
    if ctx.client_data.model and "claude" in ctx.client_data.model:
        chat.set_ui_message_stream_options(send_reasoning=True)
    return stream_text(model=openai(ctx.client_data.model or "gpt-4o"), messages=ctx.messages,
                       abort_signal=ctx.signal)
