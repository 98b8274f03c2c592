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
from ..protocol.accumulator import generate_id
from ..signals import AbortController, AbortSignal
from ..tokens import create_run_token
from .celery_app import CeleryBacked
from .driver import Input, RunCanceled, RunDriver, Suspended, execute
from .payload import ChatWirePayload
from .registry import register
from .turns import TurnScope, activate, call, pipe_source, run_deferred

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
        client_data_schema: Any = None,
        app: Celery | None = None,
    ) -> None:
        from .chat_task import _stream_options

        if not id or not isinstance(id, str):
            raise ValueError("a task needs a non-empty string id")
        self.id = id
        self.run_fn = run
        self.retry = _retry_options(retry)
        self.queue = {"name": queue} if isinstance(queue, str) else dict(queue or {})
        self.ui_message_stream_options = _stream_options(ui_message_stream_options)
        self.chat_access_token_ttl = chat_access_token_ttl
        self.warm_timeout_in_seconds = float(warm_timeout_in_seconds)
        self.turn_timeout = turn_timeout
        parse_duration(turn_timeout)
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


class ManualRun(RunDriver):
    """A manual run: calls ``run(payload, ctx)``, retrying per the task's policy."""

    task: ManualTask

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: Input | None = None
        self.scope: TurnScope | None = None
        self.stop_signal: Any = None  # a raw-mode StopSignal, when the run made one
        self.end_reason = "returned"

    def live(self) -> None:
        try:
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
        except Suspended:
            log.info("run %s: session suspended; it re-enters at turn %d", self.run_id,
                     self.turn_number)
        except RunCanceled as exc:
            if not self.local.lost:  # a lost lease means another worker owns the run now
                self.abandon_turn()
                self.end("canceled", str(exc) or "canceled")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.lost_to_outage(exc)
        except Exception as exc:
            log.exception("run %s: failed", self.run_id)
            self.abandon_turn()
            self.end("failed", f"{type(exc).__name__} in the task (see the worker log)")

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

    first_input: Input | None = None

    def allow_turns(self, limit: int) -> None:
        """Accept further messages (a session or raw wait is listening) up to ``limit`` turns."""
        self.owner_set(max_turns=max(limit, 1))

    # -- the turn in progress -------------------------------------------------------------------
    def ensure_scope(self) -> TurnScope:
        """The open turn, opening one for the message being answered if needed."""
        if self.scope is not None:
            return self.scope
        if self.pending is None:
            raise RuntimeError(
                "no message to answer here: wait for one with chat.messages.wait_with_warmup()"
            )
        self.scope = self.open_turn(self.pending, generate_id())
        return self.scope

    def new_stop_controller(self) -> AbortController:
        if self.stop_signal is not None:
            return self.stop_signal.controller
        return AbortController()

    def finish_turn(self, token: str | None = None) -> str | None:
        """Close the open turn's message and write its marker (always, so clients never hang)."""
        if self.scope is None and self.pending is None:
            return None
        scope = self.ensure_scope()
        stopped = scope.stop.signal.aborted and not self.local.cancel.signal.aborted
        scope.output.close(stopped)
        run_deferred(scope.deferred)
        number = self.turn_number
        self.turn_number += 1
        if token is None:
            token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        marker = self.write_turn_complete(number, scope.input_id, stopped, token)
        self.scope, self.pending = None, None
        return marker

    def abandon_turn(self) -> None:
        """After a failure or cancel: close the partial message so no client shows it as final."""
        if self.scope is not None and not self.scope.output.closed:
            try:
                self.scope.output.close(stopped=True)
            except Exception:
                log.exception("run %s: could not close the partial message", self.run_id)
        self.scope = None


def _missing(payload: Any, ctx: Any) -> Any:
    raise RuntimeError("this task has no run function: decorate one with @chatworker.task(...)")
