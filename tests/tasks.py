"""Chat tasks the integration tests run on a real worker (loaded via CHATWORKER_TASKS).

Hooks record what they saw in the Redis list ``test:events:<chatId>``, the way an app would
persist them, so tests observe exactly what a user's hooks receive.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

import chatworker
from chatworker import chat, config
from chatworker.ai import openai, stream_text
from chatworker.engine.payload import ChatWirePayload
from chatworker.protocol.messages import dump

_client: redis.Redis | None = None


def store() -> redis.Redis:
    global _client
    if _client is None:
        # A cluster client when the worker runs on a Redis Cluster (CHATWORKER_REDIS_CLUSTER).
        _client = config.connect(os.environ["CHATWORKER_REDIS_URL"], cluster=config.redis_cluster())
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
        if getattr(event.client_data, "fail_in", None) == "on_turn_start":
            raise RuntimeError("on_turn_start failed on purpose")
        record("on_turn_start", event)

    @task.on_turn_complete
    def on_turn_complete(event: Any) -> None:
        record("on_turn_complete", event)


echo = chat.task(
    id="echo",
    run=echo_run,
    client_data_schema=EchoOptions,
    warm_timeout_in_seconds=10,
    turn_timeout="60s",
)
_hooks(echo)

# Suspends quickly: a second of warm, then a minute suspended.
sleepy = chat.task(
    id="sleepy",
    run=echo_run,
    client_data_schema=EchoOptions,
    warm_timeout_in_seconds=0.5,
    turn_timeout="60s",
)
_hooks(sleepy)

# Ends quickly: half a second warm, then two seconds suspended, then completed.
brief = chat.task(
    id="brief",
    run=echo_run,
    client_data_schema=EchoOptions,
    warm_timeout_in_seconds=0.3,
    turn_timeout="2s",
)
_hooks(brief)

# Suspends the moment a turn ends: the hammer test sends at exactly that moment.
instant = chat.task(
    id="instant",
    run=echo_run,
    client_data_schema=EchoOptions,
    warm_timeout_in_seconds=0,
    turn_timeout="60s",
)
_hooks(instant)

limited = chat.task(
    id="limited",
    run=echo_run,
    client_data_schema=EchoOptions,
    warm_timeout_in_seconds=5,
    max_turns=2,
)
_hooks(limited)


@chat.task(
    id="overrides", client_data_schema=EchoOptions, warm_timeout_in_seconds=30, turn_timeout="1h"
)
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


# -- the other levels: manual tasks, sessions, raw primitives ------------------------------------


def payload_text(payload: ChatWirePayload) -> str:
    for message in reversed(payload.messages):
        if message.role == "user":
            return message.text
    return ""


@chatworker.task(id="manual-echo")
def manual_echo(payload: ChatWirePayload, ctx: Any) -> None:
    words = int((payload.metadata or {}).get("words", 0))
    delay = float((payload.metadata or {}).get("delay", 0))
    text = f"manual: {payload_text(payload)} " + " ".join(f"w{i}" for i in range(words))

    class Signals:
        signal = ctx.signal

    chat.pipe(echo_chunks(Signals, text.strip(), delay))


@chatworker.task(id="session-echo")
def session_echo(payload: ChatWirePayload, ctx: Any) -> None:
    # One-time set-up runs before the loop (and again when the session re-enters on resume).
    store().rpush(f"test:setup:{payload.chat_id}", ctx.run_id)
    session = chat.create_session(
        payload, signal=ctx.signal, warm_timeout_in_seconds=0.5, timeout="60s"
    )
    for turn in session:
        text = f"session: {turn.ui_messages[-1].text} (turn {turn.number})"
        delay = float((turn.client_data or {}).get("delay", 0))
        words = int((turn.client_data or {}).get("words", 0))
        text += "".join(f" w{i}" for i in range(words))
        turn.complete(echo_chunks(turn, text, delay))
        store().rpush(
            f"test:events:{turn.chat_id}",
            json.dumps(
                {
                    "hook": "session_turn",
                    "number": turn.number,
                    "stopped": turn.stopped,
                    "ui_messages": [dump(m) for m in turn.ui_messages],
                }
            ),
        )


@chatworker.task(id="raw-echo")
def raw_echo(payload: ChatWirePayload, ctx: Any) -> None:
    current = payload
    if current.trigger == "preload":
        result = chat.messages.wait_with_warmup(warm_timeout_in_seconds=5, timeout="60s")
        if not result.ok:
            return
        current = result.output

    stop = chat.create_stop_signal()
    conversation = chat.MessageAccumulator()
    for turn in range(100):
        stop.reset()
        conversation.add_incoming(current.messages, current.trigger, turn)
        combined = chatworker.AbortSignal.any([ctx.signal, stop.signal])
        delay = float((current.metadata or {}).get("delay", 0))
        words = int((current.metadata or {}).get("words", 0))
        text = f"raw: {conversation.ui_messages[-1].text} (turn {turn})"
        text += "".join(f" w{i}" for i in range(words))

        class Signals:
            signal = combined

        response = chat.pipe_and_capture(echo_chunks(Signals, text, delay), signal=combined)
        if response is not None:
            cleaned = chat.cleanup_aborted_parts(response) if stop.signal.aborted else response
            conversation.add_response(cleaned)
        if ctx.signal.aborted:
            break
        store().rpush(
            f"test:events:{current.chat_id}",
            json.dumps(
                {
                    "hook": "raw_turn",
                    "turn": turn,
                    "stopped": stop.signal.aborted,
                    "ui_messages": [dump(m) for m in conversation.ui_messages],
                }
            ),
        )
        chat.write_turn_complete()
        following = chat.messages.wait_with_warmup(warm_timeout_in_seconds=0.5, timeout="60s")
        if not following.ok:
            break
        current = following.output
    stop.cleanup()


@chatworker.task(id="tight-queue", queue={"name": "tight", "concurrency_limit": 2})
def tight_queue(payload: ChatWirePayload, ctx: Any) -> None:
    key = "test:tight"
    store().rpush(key, json.dumps({"run": ctx.run_id, "at": time.time(), "event": "start"}))
    store().incr("test:tight:active")
    peak = int(store().get("test:tight:active") or 0)
    store().rpush("test:tight:peaks", peak)
    ctx.signal.wait(0.6)
    store().decr("test:tight:active")
    store().rpush(key, json.dumps({"run": ctx.run_id, "at": time.time(), "event": "end"}))
    chat.pipe(
        [
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": "done"},
            {"type": "text-end", "id": "t"},
        ]
    )


@chatworker.task(id="flaky", retry={"max_attempts": 3, "min_delay": 0.1})
def flaky(payload: ChatWirePayload, ctx: Any) -> None:
    store().rpush(f"test:attempts:{payload.chat_id}", ctx.attempt)
    chat.pipe(
        [
            {"type": "text-start", "id": "t"},
            {"type": "text-delta", "id": "t", "delta": f"attempt {ctx.attempt}"},
        ]
    )
    if ctx.attempt < 2:
        raise ConnectionError("a transient failure on purpose")
    chat.pipe([{"type": "text-end", "id": "t"}])


# -- features: defer, local, data parts, preload, async -----------------------------------------
counter = chat.local("counter")


@chat.task(
    id="features", client_data_schema=EchoOptions, warm_timeout_in_seconds=0.3, turn_timeout="60s"
)
def features(ctx: Any) -> Any:
    if not counter.is_initialized():
        counter.init({"turns": 0, "run": ctx.run_id})
    counter.update(turns=counter.turns + 1)

    def slow_audit() -> None:
        time.sleep(0.3)
        store().set(f"test:audit:{ctx.chat_id}:{ctx.turn}", "written")

    chat.defer(slow_audit)
    writer = chat.stream.writer()
    writer.write_data("status", {"step": "thinking"}, id="s1")
    writer.write_data("status", {"step": "done"}, id="s1")
    writer.write_data("ping", {"n": 1}, transient=True)
    return echo_chunks(ctx, reply_text(ctx), 0)


@features.on_preload
def features_preload(event: Any) -> None:
    record("on_preload", event)


@features.on_turn_complete
def features_complete(event: Any) -> None:
    audit = store().get(f"test:audit:{event.chat_id}:{event.turn}")
    record("on_turn_complete", event)
    store().rpush(
        f"test:events:{event.chat_id}",
        json.dumps({"hook": "features", "audit": audit, "counter": counter.get()}),
    )


@features.on_chat_start
def features_start(event: Any) -> None:
    record("on_chat_start", event)


async def async_words(ctx: Any) -> Any:
    yield {"type": "text-start", "id": "a"}
    for word in ["async", "chunks", "stream"]:
        await asyncio.sleep(0.01)
        yield {"type": "text-delta", "id": "a", "delta": word + " "}
    yield {"type": "text-end", "id": "a"}


@chat.task(id="async-chat", warm_timeout_in_seconds=2)
async def async_chat(ctx: Any) -> Any:
    await asyncio.sleep(0.01)
    return async_words(ctx)


@async_chat.on_turn_complete
async def async_complete(event: Any) -> None:
    await asyncio.sleep(0.01)
    record("on_turn_complete", event)


# -- a real model call: stream_text over the openai client against the scripted server -----------


@chat.task(id="llm", warm_timeout_in_seconds=5,
           ui_message_stream_options={"send_reasoning": True})
def llm(ctx: Any) -> Any:
    return stream_text(model=openai("scripted", max_retries=0), system="You are terse.",
                       messages=ctx.messages, abort_signal=ctx.signal)


_hooks(llm)


# -- the seed's examples, ported line by line ----------------------------------------------------


@chatworker.task(id="manual-llm")
def manual_llm(payload: ChatWirePayload, ctx: Any) -> None:
    # As the seed's manual example: the payload's messages go straight to the model call.
    chat.pipe(stream_text(model=openai("scripted", max_retries=0), messages=payload.messages,
                          abort_signal=ctx.signal))


@chat.task(id="finish-probe", warm_timeout_in_seconds=5)
def finish_probe(ctx: Any) -> Any:
    def on_finish(event: Any) -> None:
        store().rpush(f"test:events:{ctx.chat_id}", json.dumps({
            "hook": "stream_text.on_finish", "turn": ctx.turn, "is_aborted": event.is_aborted,
            "stopped": chat.is_stopped(), "text": event.text,
            "finish_reason": event.finish_reason}))

    return stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                       abort_signal=ctx.signal, on_finish=on_finish)


# -- max_duration: the time a run may hold a worker -----------------------------------------------

capped = chat.task(id="capped", run=echo_run, client_data_schema=EchoOptions,
                   warm_timeout_in_seconds=0.3, turn_timeout="60s", max_duration="4s")
_hooks(capped)


@chat.task(id="capped-at-runtime", client_data_schema=EchoOptions, warm_timeout_in_seconds=60)
def capped_at_runtime(ctx: Any) -> Any:
    chat.set_max_duration(1.5)
    return echo_chunks(ctx, reply_text(ctx), 0)


@chatworker.task(id="manual-capped", max_duration="1s")
def manual_capped(payload: ChatWirePayload, ctx: Any) -> None:
    class Signals:
        signal = ctx.signal

    chat.pipe(echo_chunks(Signals, " ".join(f"w{i}" for i in range(200)), 0.05))
    store().rpush(f"test:events:{payload.chat_id}", json.dumps(
        {"hook": "manual-capped", "cancel_signal": ctx.signal.aborted,
         "reason": str(ctx.signal.reason)}))


@chatworker.task(id="manual-finish-probe")
def manual_finish_probe(payload: ChatWirePayload, ctx: Any) -> None:
    def on_finish(event: Any) -> None:
        store().rpush(f"test:events:{payload.chat_id}", json.dumps({
            "hook": "stream_text.on_finish", "is_aborted": event.is_aborted,
            "stopped": chat.is_stopped(), "text": event.text}))

    chat.pipe(stream_text(model=openai("scripted", max_retries=0), messages=payload.messages,
                          abort_signal=ctx.signal, on_finish=on_finish))


# More tasks: written with async def; with tools that need approval; the while_streaming policies.
from . import approval_tasks, async_tasks, policy_tasks  # noqa: E402, F401
