"""Tasks written with ``async def`` (and the stop/options/timeout fixes), loaded by tests.tasks.

Each awaits the ``chat.*`` calls a user's async code awaits; hooks and turns record what they
saw in ``test:events:<chatId>`` like the tasks in tests/tasks.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import chatworker
from chatworker import chat
from chatworker.ai import openai, step_count_is, stream_text, tool
from chatworker.engine.payload import ChatWirePayload
from chatworker.protocol.messages import dump

from .tasks import record, store


def note(chat_id: str, **fields: Any) -> None:
    store().rpush(f"test:events:{chat_id}", json.dumps(fields))


async def words(text: str, id: str, delay: float = 0.01) -> AsyncIterator[dict[str, Any]]:
    """An async chunk source: one text part, a word per chunk, awaiting between words."""
    yield {"type": "text-start", "id": id}
    for word in text.split(" "):
        await asyncio.sleep(delay)
        yield {"type": "text-delta", "id": id, "delta": word + " "}
    yield {"type": "text-end", "id": id}


# -- chat.task: awaited pipes (one never awaited), async hooks ---------------------------------
@chat.task(id="async-pipes", warm_timeout_in_seconds=2)
async def async_pipes(ctx: Any) -> None:
    await chat.pipe(words("first", "a"))
    chat.pipe([{"type": "text-start", "id": "b"}, {"type": "text-delta", "id": "b",
               "delta": "forgotten "}, {"type": "text-end", "id": "b"}])  # never awaited
    await chat.pipe(words("last", "c"))


@async_pipes.on_chat_start
async def async_pipes_start(event: Any) -> None:
    await asyncio.sleep(0.01)
    record("on_chat_start", event)


@async_pipes.on_turn_start
async def async_pipes_turn_start(event: Any) -> None:
    await asyncio.sleep(0.01)
    record("on_turn_start", event)


@async_pipes.on_turn_complete
async def async_pipes_complete(event: Any) -> None:
    await asyncio.sleep(0.01)
    record("on_turn_complete", event)


# -- an async tool and an async on_finish callback ---------------------------------------------
async def lookup_weather(args: Any) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"city": args["city"], "sky": "sunny"}


WEATHER = tool(description="The weather in a city.", execute=lookup_weather,
               parameters={"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]})


@chat.task(id="async-tools", warm_timeout_in_seconds=2)
async def async_tools(ctx: Any) -> None:
    async def finished(event: Any) -> None:
        await asyncio.sleep(0.01)
        note(ctx.chat_id, hook="on_finish", text=event.text)

    await chat.pipe(stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                                tools={"weather": WEATHER}, stop_when=step_count_is(2),
                                on_finish=finished, abort_signal=ctx.signal))


# -- many words, slowly: two of these stream side by side on one worker ------------------------
@chat.task(id="async-slow", warm_timeout_in_seconds=0.5)
async def async_slow(ctx: Any) -> Any:
    await asyncio.sleep(0.01)
    return words(" ".join(f"w{i}" for i in range(15)), "s", delay=0.05)


# -- stop means stop: a source that yields once more after the stop ---------------------------
@chat.task(id="stop-source", warm_timeout_in_seconds=2)
def stop_source(ctx: Any) -> Any:
    def chunks() -> Iterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "before "}
        ctx.signal.wait(30)  # until the user stops the turn
        yield {"type": "text-delta", "id": "t", "delta": "after-stop "}
        yield {"type": "text-end", "id": "t"}

    return chunks()


@chat.task(id="async-stop-source", warm_timeout_in_seconds=2)
async def async_stop_source(ctx: Any) -> None:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        yield {"type": "text-start", "id": "t"}
        yield {"type": "text-delta", "id": "t", "delta": "before "}
        while not ctx.signal.aborted:
            await asyncio.sleep(0.02)
        yield {"type": "text-delta", "id": "t", "delta": "after-stop "}
        yield {"type": "text-end", "id": "t"}

    await chat.pipe(chunks())


# -- per-turn stream options hold for every pipe of the turn ----------------------------------
@chat.task(id="options-twice", warm_timeout_in_seconds=2,
           ui_message_stream_options={"send_reasoning": True})
def options_twice(ctx: Any) -> None:
    chat.set_ui_message_stream_options(send_reasoning=False)
    for _ in range(2):
        chat.pipe(stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                              abort_signal=ctx.signal))


# -- sessions ------------------------------------------------------------------------------------
@chatworker.task(id="async-session")
async def async_session(payload: ChatWirePayload, ctx: Any) -> None:
    session = chat.create_session(payload, signal=ctx.signal, warm_timeout_in_seconds=0.5,
                                  timeout="60s")
    async for turn in session:
        text = f"session {turn.ui_messages[-1].text} {turn.number}"
        if turn.number % 2 == 0:
            await turn.complete(words(text, "t"))
        else:
            message = await chat.pipe_and_capture(words(text, "t"))
            await turn.add_response(message)
            await turn.done()
        note(turn.chat_id, hook="session_turn", number=turn.number,
             ui_messages=[dump(m) for m in turn.ui_messages])


@chatworker.task(id="session-timeout-zero")
def session_timeout_zero(payload: ChatWirePayload, ctx: Any) -> None:
    session = chat.create_session(payload, signal=ctx.signal, warm_timeout_in_seconds=0.3,
                                  timeout="60s")
    for turn in session:
        chat.set_turn_timeout(0)  # no waiting suspended: the run ends after its warm wait
        turn.complete([{"type": "text-start", "id": "t"},
                       {"type": "text-delta", "id": "t", "delta": "once"},
                       {"type": "text-end", "id": "t"}])


# -- raw primitives, awaited ---------------------------------------------------------------------
@chatworker.task(id="async-raw")
async def async_raw(payload: ChatWirePayload, ctx: Any) -> None:
    conversation = chat.MessageAccumulator()
    current = payload
    if current.trigger == "preload":
        first = await chat.messages.wait_with_warmup(warm_timeout_in_seconds=5, timeout="60s")
        if not first.ok:
            return
        current = first.output
    for turn in range(10):
        await conversation.add_incoming(current.messages, current.trigger, turn)
        text = f"raw {conversation.ui_messages[-1].text} {turn}"
        response = await chat.pipe_and_capture(words(text, "r"))
        await conversation.add_response(response)
        note(current.chat_id, hook="raw_turn", turn=turn,
             ui_messages=[dump(m) for m in conversation.ui_messages])
        await chat.write_turn_complete()
        result = await chat.messages.wait_with_warmup(warm_timeout_in_seconds=5, timeout="60s")
        if not result.ok:
            break
        current = result.output
