"""``chat.create_session``: an iterator of turns, for code that wants its own loop.

Each turn is accumulated and stop-aware; ``turn.complete(result)`` pipes, captures, cleans a
stopped response, accumulates and writes the turn marker. Between turns the run waits warm and
then **suspends**: its state is checkpointed, the worker slot is freed, and on the next message
the task's run function is called again and the session re-enters at the saved turn — so code
before the ``for`` loop runs again on resume and should be idempotent (see docs/levels.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..config import Duration, parse_duration
from ..protocol.convert import cleanup_aborted_parts
from ..protocol.messages import ModelMessage, UIMessage
from ..signals import AbortSignal
from .driver import Input, Suspended
from .hand_driven import hand_driven
from .payload import ChatWirePayload, parse_payload
from .turns import (
    now_or_task,
    pipe_source,
    pipe_source_async,
    run_deferred_async,
    settle,
    settle_async,
)

log = logging.getLogger("chatworker.sessions")


class ChatTurn:
    """One turn of a session: the accumulated conversation and the means to answer it."""

    def __init__(self, session: ChatSession, item: Input) -> None:
        driver = session.driver
        self.session = session
        self.number: int = driver.turn_number
        self.chat_id: str = item.payload.chat_id
        self.trigger: str = item.payload.trigger
        self.client_data: Any = item.payload.metadata
        self.continuation: bool = driver.continuation
        self.payload: ChatWirePayload = item.payload
        driver.accumulator.add_incoming(item.payload.messages, item.payload.trigger, self.number)
        self.scope = driver.ensure_scope()
        self.finished = False

    @property
    def messages(self) -> list[ModelMessage]:
        """The whole conversation as model messages: pass to ``stream_text``."""
        return self.session.driver.accumulator.model_messages

    @property
    def ui_messages(self) -> list[UIMessage]:
        """The whole conversation as UI messages: persist these."""
        return self.session.driver.accumulator.ui_messages

    @property
    def signal(self) -> AbortSignal:
        """Fires on stop (this turn) or cancel (the run)."""
        return self.scope.signal

    @property
    def stopped(self) -> bool:
        """Whether the user stopped this turn."""
        return self.scope.stop.signal.aborted

    def complete(self, source: Any) -> Any:
        """Pipe ``source``, capture and accumulate the response (cleaned if stopped), write the
        turn marker; returns the raw response (in ``async def`` code: ``await`` it)."""

        def now() -> UIMessage | None:
            pipe_source(self.scope, source)
            return self._close()

        async def later() -> UIMessage | None:
            await pipe_source_async(self.scope, source, None)
            await self._settle()
            return self._close()

        return now_or_task(self.scope, now, later)

    def _close(self) -> UIMessage | None:
        settle(self.scope)
        self.scope.output.close(self.stopped)
        raw = self.scope.output.response
        if raw is not None:
            self._add(cleanup_aborted_parts(raw) if self.stopped else raw)
        self._done()
        return raw

    async def _settle(self) -> None:
        await settle_async(self.scope)
        await run_deferred_async(self.scope.deferred)

    def add_response(self, message: UIMessage | dict[str, Any]) -> Any:
        """Add a response to the conversation yourself (with :meth:`done`, instead of complete);
        returns it as stored (awaitable in ``async def`` code)."""

        async def later() -> UIMessage:
            return self._add(message)

        return now_or_task(self.scope, lambda: self._add(message), later)

    def _add(self, message: UIMessage | dict[str, Any]) -> UIMessage:
        return self.session.driver.accumulator.add_response(message)

    def done(self) -> Any:
        """Write the turn marker (after piping yourself with ``chat.pipe_and_capture``);
        awaitable in ``async def`` code."""

        async def later() -> None:
            await self._settle()
            self._done()

        return now_or_task(self.scope, self._done, later)

    def _done(self) -> None:
        if not self.finished:
            self.finished = True
            self.session.driver.finish_turn()


class ChatSession:
    """Iterate to get turns: ``for turn in chat.create_session(payload, signal=ctx.signal):``."""

    def __init__(
        self,
        payload: ChatWirePayload | dict[str, Any],
        *,
        signal: AbortSignal | None = None,
        warm_timeout_in_seconds: float = 30,
        timeout: Duration = "1h",
        max_turns: int = 100,
    ) -> None:
        self.driver = hand_driven("create_session")
        self.payload = parse_payload(payload)
        self.signal = signal
        self.warm = float(warm_timeout_in_seconds)
        self.timeout = parse_duration(timeout)
        self.max_turns = max_turns
        self.current: ChatTurn | None = None
        self.driver.allow_turns(max_turns)

    def __iter__(self) -> Iterator[ChatTurn]:
        return self

    def __aiter__(self) -> AsyncIterator[ChatTurn]:
        """``async for turn in session`` in ``async def`` code: the same turns, awaited."""
        return self

    async def __anext__(self) -> ChatTurn:
        current = self.current
        if current is not None:
            await current._settle()
            if not current.finished:
                current._done()
        try:
            return self.__next__()
        except StopIteration:
            raise StopAsyncIteration from None

    def __next__(self) -> ChatTurn:
        driver = self.driver
        if self.current is not None and not self.current.finished:
            self.current._done()  # a turn left open is closed, so its client is not left waiting
        if driver.turn_number >= self.max_turns:
            driver.end_reason = "max_turns"
            raise StopIteration
        if self.signal is not None and self.signal.aborted:
            raise StopIteration
        item = driver.pending
        if item is None:
            warm = self.warm
            if driver.turn_number == 0 and self.payload.trigger == "preload":
                if self.payload.warm_timeout_in_seconds is not None:
                    warm = self.payload.warm_timeout_in_seconds
                driver.preload_done = True
            item = driver.next_message(
                driver.warm_override if driver.warm_override is not None else warm,
                self.timeout if driver.turn_timeout_override is None
                else driver.turn_timeout_override,
            )
            if item is None:
                raise Suspended()
            driver.pending = item
        self.current = ChatTurn(self, item)
        return self.current


def create_session(payload: ChatWirePayload | dict[str, Any], **options: Any) -> ChatSession:
    """An iterator of turns over the run's messages (see :class:`ChatSession`)."""
    return ChatSession(payload, **options)
