"""The seed's manual-mode, ``chat.create_session`` and raw-primitives examples (Backend page),
ported line by line to sync Python. Task ids are the seed's plus ``-sync``."""

from __future__ import annotations

from typing import Any

import chatworker
from chatworker import chat
from chatworker.ai import openai, stream_text
from chatworker.engine.payload import ChatWirePayload
from chatworker.errors import AbortError

from .db import db


# -- Manual mode with task() ---------------------------------------------------------------------
@chatworker.task(
    id="manual-chat-sync",
    retry={"max_attempts": 3},
    queue={"concurrency_limit": 10},
)
def manual_chat(payload: ChatWirePayload) -> None:
    result = stream_text(
        model=openai("gpt-4o"),
        messages=payload.messages,
    )

    chat.pipe(result)


# -- chat.create_session() -----------------------------------------------------------------------
@chatworker.task(id="my-chat-session-sync")
def session_chat(payload: ChatWirePayload, ctx: Any) -> None:
    # One-time initialization — just code, no hooks
    client_data = payload.metadata
    db.chat.create(data={"id": payload.chat_id, "user_id": client_data["userId"]})

    session = chat.create_session(
        payload,
        signal=ctx.signal,
        warm_timeout_in_seconds=60,
        timeout="1h",
    )

    for turn in session:
        result = stream_text(
            model=openai("gpt-4o"),
            messages=turn.messages,
            abort_signal=turn.signal,
        )

        # Pipe, capture, accumulate, and signal turn-complete — all in one call
        turn.complete(result)

        # Persist after each turn
        db.chat.update(
            where={"id": turn.chat_id},
            data={"messages": turn.ui_messages},
        )


# -- turn.complete() vs manual control -----------------------------------------------------------
@chatworker.task(id="my-chat-session-manual-sync")
def session_manual_chat(payload: ChatWirePayload, ctx: Any) -> None:
    session = chat.create_session(payload, signal=ctx.signal, warm_timeout_in_seconds=60,
                                  timeout="1h")
    for turn in session:
        result = stream_text(
            model=openai("gpt-4o"),
            messages=turn.messages,
            abort_signal=turn.signal,
        )

        # Manual: pipe and capture separately
        response = chat.pipe_and_capture(result, signal=turn.signal)

        if response:
            # Custom processing before accumulating
            turn.add_response(response)

        # Custom persistence, analytics, etc.
        db.chat.update(where={"id": turn.chat_id}, data={"messages": turn.ui_messages})

        # Must call done() when not using complete()
        turn.done()


# -- Raw task with primitives --------------------------------------------------------------------
@chatworker.task(id="my-chat-raw-sync")
def raw_chat(payload: ChatWirePayload, ctx: Any) -> None:
    run_signal = ctx.signal
    current_payload = payload

    # Handle preload — wait for the first real message
    if current_payload.trigger == "preload":
        result = chat.messages.wait_with_warmup(
            warm_timeout_in_seconds=60,
            timeout="1h",
            span_name="waiting for first message",
        )
        if not result.ok:
            return
        current_payload = result.output

    stop = chat.create_stop_signal()
    conversation = chat.MessageAccumulator()

    for turn in range(100):
        stop.reset()

        messages = conversation.add_incoming(
            current_payload.messages,
            current_payload.trigger,
            turn,
        )

        combined_signal = chatworker.AbortSignal.any([run_signal, stop.signal])

        result = stream_text(
            model=openai("gpt-4o"),
            messages=messages,
            abort_signal=combined_signal,
        )

        response = None
        try:
            response = chat.pipe_and_capture(result, signal=combined_signal)
        except AbortError:
            if run_signal.aborted:
                break
            # Stop — fall through to accumulate partial

        if response:
            cleaned = (
                chat.cleanup_aborted_parts(response)
                if stop.signal.aborted and not run_signal.aborted
                else response
            )
            conversation.add_response(cleaned)

        if run_signal.aborted:
            break

        # Persist, analytics, etc.
        db.chat.update(
            where={"id": current_payload.chat_id},
            data={"messages": conversation.ui_messages},
        )

        chat.write_turn_complete()

        # Wait for the next message
        next = chat.messages.wait_with_warmup(
            warm_timeout_in_seconds=60,
            timeout="1h",
            span_name="waiting for next message",
        )
        if not next.ok:
            break
        current_payload = next.output

    stop.cleanup()


# -- MessageAccumulator --------------------------------------------------------------------------
@chatworker.task(id="my-chat-accumulator-sync")
def accumulator_chat(payload: ChatWirePayload, ctx: Any) -> None:
    turn = 0
    conversation = chat.MessageAccumulator()

    # Returns full accumulated ModelMessage[] for stream_text
    messages = conversation.add_incoming(payload.messages, payload.trigger, turn)
    result = stream_text(model=openai("gpt-4o"), messages=messages)

    # After piping, add the response
    response = chat.pipe_and_capture(result)
    if response:
        conversation.add_response(response)

    # Access accumulated messages for persistence
    db.chat.update(where={"id": payload.chat_id}, data={
        "ui_messages": conversation.ui_messages,  # UIMessage[]
        "model_messages": conversation.model_messages,  # ModelMessage[]
    })
