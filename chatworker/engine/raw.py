"""Raw primitives: the pieces ``chat.task`` is made of, for a hand-written turn loop.

``chat.messages.wait_with_warmup`` waits for the next message (warm, then **parked**: the
greenlet stays blocked on a local event with no polling and no Redis connection of its own,
because a hand-written loop's stack cannot be checkpointed — use ``chat.create_session`` or
``chat.task`` where true suspension matters). ``chat.create_stop_signal``,
``chat.pipe_and_capture`` and ``chat.write_turn_complete`` complete the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Duration, parse_duration
from ..protocol.messages import UIMessage
from ..signals import AbortController, AbortSignal
from .hand_driven import HandDrivenRun, hand_driven
from .payload import ChatWirePayload
from .turns import (
    TurnScope,
    now_or_task,
    pipe_source,
    pipe_source_async,
    run_deferred_async,
    settle,
    settle_async,
)


@dataclass
class WaitResult:
    """``ok`` with the next message's payload in ``output``, or ``ok=False`` on timeout."""

    ok: bool
    output: ChatWirePayload | None = None


class _Messages:
    """``chat.messages``: the run's input stream of wire payloads."""

    def wait_with_warmup(self, warm_timeout_in_seconds: float = 30, timeout: Duration = "1h",
                         span_name: str | None = None) -> Any:
        """Wait warm for the next message, then parked up to ``timeout``; ``ok=False`` on
        timeout or cancel. Returns a :class:`WaitResult` (in ``async def`` code: ``await`` it;
        the wait blocks only this run's loop)."""
        driver = hand_driven("messages.wait_with_warmup")

        def now() -> WaitResult:
            return _wait(driver, float(warm_timeout_in_seconds), parse_duration(timeout))

        async def later() -> WaitResult:
            if driver.scope is not None:
                await _settle(driver.scope)
            return now()

        return now_or_task(driver.scope, now, later)


def _wait(driver: HandDrivenRun, warm: float, timeout: float) -> WaitResult:
    driver.allow_turns(max(driver.turn_number + 2, 100))
    if driver.scope is not None or driver.pending is not None:
        driver.finish_turn()  # a turn left open is closed, so its client is not left waiting
    try:
        item = driver.next_message(warm, timeout, park=True)
    except Exception:
        return WaitResult(False)
    if item is None:
        return WaitResult(False)
    driver.pending = item
    return WaitResult(True, item.payload)


async def _settle(scope: TurnScope) -> None:
    await settle_async(scope)
    await run_deferred_async(scope.deferred)


messages = _Messages()


class StopSignal:
    """A stop signal wired to the run's stop input: ``signal``, ``reset()``, ``cleanup()``."""

    def __init__(self, driver: HandDrivenRun) -> None:
        self.driver = driver
        self.controller = driver.local.stop or AbortController()
        driver.local.stop = self.controller
        driver.stop_signal = self

    @property
    def signal(self) -> AbortSignal:
        return self.controller.signal

    def reset(self) -> None:
        """A fresh signal for the next turn (a stop between turns does not carry over)."""
        self.controller = AbortController()
        self.driver.local.stop = self.controller
        if self.driver.scope is not None:
            self.driver.scope.stop = self.controller

    def cleanup(self) -> None:
        """Detach from the run's stop input."""
        if self.driver.stop_signal is self:
            self.driver.stop_signal = None


def create_stop_signal() -> StopSignal:
    """A managed stop signal for a raw loop."""
    return StopSignal(hand_driven("create_stop_signal"))


def pipe_and_capture(source: Any, *, signal: AbortSignal | None = None) -> Any:
    """Pipe ``source`` to the chat and return the captured response message (None if empty);
    in ``async def`` code ``await`` it."""
    driver = hand_driven("pipe_and_capture")
    scope = driver.ensure_scope()

    def capture() -> UIMessage | None:
        settle(scope)
        stopped = scope.stop.signal.aborted or bool(signal is not None and signal.aborted)
        scope.output.close(stopped)
        response: UIMessage | None = scope.output.response
        return response

    def now() -> UIMessage | None:
        pipe_source(scope, source, signal)
        return capture()

    async def later() -> UIMessage | None:
        await pipe_source_async(scope, source, signal)
        await settle_async(scope)
        return capture()

    return now_or_task(scope, now, later)


def write_turn_complete(public_access_token: str | None = None) -> Any:
    """Write the turn marker for the message being answered; returns its stream id (in
    ``async def`` code: ``await`` it)."""
    driver = hand_driven("write_turn_complete")

    async def later() -> str | None:
        if driver.scope is not None:
            await _settle(driver.scope)
        return driver.finish_turn(public_access_token)

    return now_or_task(driver.scope, lambda: driver.finish_turn(public_access_token), later)
