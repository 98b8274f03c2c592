"""Manual mode: ``chatworker.task`` — a plain Celery-backed task that gets the wire payload.

No accumulation, no hooks: ``run(payload, ctx)`` streams with ``chat.pipe``. It is also where
``chat.create_session`` and the raw primitives live, since they drive the run themselves.
Runs are triggered through the same endpoint and stream like chat tasks. ``retry`` re-runs a
failed run from its trigger payload; ``queue`` caps concurrency across all workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

from ..config import Duration, parse_duration
from ..signals import AbortSignal
from .celery_app import CeleryBacked
from .driver import Input, RunCanceled, Suspended, execute
from .hand_driven import HandDrivenRun
from .payload import ChatWirePayload
from .registry import register
from .stream_options import normalize_stream_options
from .turns import activate, call, pipe_source, settle

log = logging.getLogger("chatworker.run")


@dataclass
class ManualContext:
    """The second argument of a manual task's run: the run's ids and its cancel ``signal``."""

    run_id: str
    chat_id: str
    signal: AbortSignal
    attempt: int = 1
    continuation: bool = False
    previous_run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ManualTask(CeleryBacked):
    """A task whose run function drives the chat itself (``chat.pipe``, sessions, raw mode)."""

    def __init__(
        self,
        id: str,
        run: Callable[[ChatWirePayload, ManualContext], Any] | None = None,
        *,
        retry: dict[str, Any] | None = None,
        queue: dict[str, Any] | str | None = None,
        ui_message_stream_options: dict[str, Any] | None = None,
        chat_access_token_ttl: Duration = "1h",
        warm_timeout_in_seconds: float = 30,
        turn_timeout: Duration = "1h",
        max_duration: Duration | None = None,
        client_data_schema: Any = None,
        app: Celery | None = None,
    ) -> None:
        if not id or not isinstance(id, str):
            raise ValueError("a task needs a non-empty string id")
        self.id = id
        self.run_fn = run
        self.retry = _retry_options(retry)
        self.queue = {"name": queue} if isinstance(queue, str) else dict(queue or {})
        self.ui_message_stream_options = normalize_stream_options(ui_message_stream_options)
        self.chat_access_token_ttl = chat_access_token_ttl
        self.warm_timeout_in_seconds = float(warm_timeout_in_seconds)
        self.turn_timeout = turn_timeout
        parse_duration(turn_timeout)
        self.max_duration = max_duration
        if max_duration is not None:
            parse_duration(max_duration)
        self.client_data_schema = client_data_schema
        # Until the run opens a session or waits for messages, it answers its trigger only.
        self.max_turns = 1
        register(self)
        self._setup_celery(app)

    def __call__(self, fn: Callable[[ChatWirePayload, ManualContext], Any]) -> ManualTask:
        self.run_fn = fn
        return self

    def execute(self, run_id: str) -> None:
        execute(self, run_id, ManualRun)

    def __repr__(self) -> str:
        return f"<ManualTask {self.id!r}>"


def task(id: str, run: Any = None, **options: Any) -> ManualTask:
    """Define a manual task: ``@chatworker.task(id="manual-chat", retry={"max_attempts": 3})``."""
    return ManualTask(id, run, **options)


def _retry_options(retry: dict[str, Any] | None) -> dict[str, float]:
    retry = dict(retry or {})
    attempts = retry.pop("max_attempts", retry.pop("maxAttempts", 1))
    options = {
        "max_attempts": max(1, int(attempts)),
        "min_delay": float(retry.pop("min_delay", retry.pop("minTimeoutInMs", 1000) / 1000)),
        "max_delay": float(retry.pop("max_delay", retry.pop("maxTimeoutInMs", 30000) / 1000)),
        "factor": float(retry.pop("factor", 2.0)),
    }
    if retry:
        raise ValueError(f"unknown retry options: {', '.join(retry)}")
    return options


class ManualRun(HandDrivenRun):
    """A manual run: calls ``run(payload, ctx)``, retrying per the task's policy."""

    task: ManualTask

    def live(self) -> None:
        try:
            with self.ending_on_errors("the task"):
                self.attempts()
        except Suspended:
            log.info("run %s: session suspended; it re-enters at turn %d", self.run_id,
                     self.turn_number)

    def attempts(self) -> None:
        """Restore, then call the run function until it returns, retrying per the policy."""
        self.restore()
        policy = self.task.retry
        for attempt in range(1, int(policy["max_attempts"]) + 1):
            try:
                self.attempt(attempt)
                break
            except (Suspended, RunCanceled, redis.ConnectionError, redis.TimeoutError):
                raise
            except Exception:
                if attempt >= policy["max_attempts"]:
                    raise
                delay = min(policy["max_delay"],
                            policy["min_delay"] * policy["factor"] ** (attempt - 1))
                log.exception("run %s: attempt %d failed; retrying in %.1fs",
                              self.run_id, attempt, delay)
                self.abandon_turn()
                if self.local.cancel.signal.wait(delay):
                    raise RunCanceled("canceled") from None
        self.finish_turn()
        self.check_canceled()
        self.end("completed", self.end_reason)

    def attempt(self, number: int) -> None:
        """One try of the run function, from the trigger payload (or re-entering a session)."""
        if not self.resumed and self.initial.trigger != "preload" and self.pending is None:
            if number == 1 or self.first_input is None:
                self.first_input = self.take()
            self.pending = self.first_input
        context = ManualContext(self.run_id, self.chat_id, self.local.cancel.signal, number,
                                self.continuation, self.previous_run_id, self.initial.extra)
        with activate(driver=self):
            result = call(self.task.run_fn or _missing, self.initial, context)
            if result is not None and (self.scope is None or self.scope.pipes == 0):
                pipe_source(self.ensure_scope(), result)
            if self.scope is not None:
                settle(self.scope)  # pipes async code started and did not await

    first_input: Input | None = None


def _missing(payload: Any, ctx: Any) -> Any:
    raise RuntimeError("this task has no run function: decorate one with @chatworker.task(...)")
