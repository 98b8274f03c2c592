"""The life of a run on a worker, shared by every level (chat tasks, sessions, raw, manual).

:class:`RunDriver` owns one run on this process: where a message enters (:meth:`take`, an
atomic move from the run's inbox), where a run sleeps (:meth:`wait_warm` on a local event, then
:meth:`suspend` — checkpoint in Redis, worker slot freed — or :meth:`park` for code whose stack
cannot be checkpointed), the turn marker, and the end of the run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from .. import logs, metrics
from ..config import get_redis, parse_duration
from ..loops import owned_loop
from ..protocol.accumulator import MessageAccumulator, derive_id, generate_id
from ..protocol.messages import UIMessage
from ..signals import AbortController, AbortSignal
from ..store.records import split_item
from ..store.run_store import LeaseLost, RunStore
from ..store.streams import OutputStream
from ..tokens import create_run_token
from ..tracing import Carrier, unstamp
from ..types import TaskDefinition
from . import concurrency
from .capture import TurnOutput
from .mailbox import MAX_DURATION, LocalRun, get_mailbox
from .payload import ChatWirePayload
from .policy import can_steer
from .steering import RunSteering
from .tool_journal import RunToolJournal
from .turns import TurnScope, current_driver

log = logging.getLogger("chatworker.run")


class RunCanceled(Exception):
    """The run was canceled (or lost its lease): end it without another turn."""


class Suspended(BaseException):
    """Raised through user code when a session suspends: the worker slot is freed and the run
    re-enters at its saved turn on the next message. A BaseException so ``except Exception``
    in user code does not swallow it."""


@dataclass
class Input:
    """A message a turn answers: its id on the run (``i0`` is the trigger) and its payload."""

    input_id: str
    payload: ChatWirePayload
    stop_reason: str = ""
    trace: Carrier | None = None  # the trace context of the request that sent it


class RunDriver:
    """One run owned by this worker process: its Redis state and the waits between turns."""

    def __init__(self, task: TaskDefinition, run_id: str, local: LocalRun) -> None:
        self.task = task
        self.run_id = run_id
        self.local = local
        self.redis = get_redis()
        self.store = RunStore(self.redis)
        self.stream = OutputStream(self.redis, run_id, token=local.token)
        self.accumulator = MessageAccumulator()
        self.turn_number = 0
        self.news_at_take = 0  # the run's message notices heard when the turn was taken
        self.warm_override: float | None = None
        self.turn_timeout_override: float | None = None
        self.max_duration_override: float | None = None
        self.used_seconds = 0.0  # time held on workers before this one (from the checkpoint)
        self.held_since = time.monotonic()
        self.taken_at: float | None = None  # when the current turn took its input (metrics)
        self.locals: dict[str, Any] = {}
        self.preload_done = False
        self.resumed = False
        self.ended = False
        self.parked = False
        self.last_turn: dict[str, Any] | None = None  # what a recovered on_turn_complete needs
        self.hook_pending: str | None = None

    def live(self) -> None:
        """Run until the run suspends or ends (each level implements its own loop)."""
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------------
    def restore(self) -> bool:
        """Load the run record and, when resuming, the checkpoint; True if it was resumed."""
        record, state = self.store.record_and_checkpoint(self.run_id)
        self.chat_id = record.get("chat_id", "")
        logs.bind(chat_id=self.chat_id)
        self.initial = ChatWirePayload.model_validate(json.loads(record["initial"]))
        self.continuation = record.get("continuation") == "1"
        self.previous_run_id = record.get("previous_run_id") or None
        self.preloaded = self.initial.trigger == "preload"
        if state:
            self.turn_number = state["turn"]
            self.accumulator = MessageAccumulator.from_state(state["ui_messages"])
            self.warm_override = state.get("warm")
            self.turn_timeout_override = state.get("turn_timeout")
            self.max_duration_override = state.get("max_duration")
            self.used_seconds = float(state.get("used", 0.0))
            self.locals = state.get("locals", {})
            self.preload_done = state.get("preload_done", False)
            self.last_turn = state.get("last_turn")
            self.hook_pending = record.get("hook_pending") or None
            self.resumed = True
        log.info("run %s: %s on %s", self.run_id, "resumed" if self.resumed else "started",
                 get_mailbox().worker_id)
        self.arm_max_duration()
        return self.resumed

    def checkpoint(self) -> str:
        """The JSON a worker needs to resume this run (history, turn, overrides, locals)."""
        return json.dumps({
            "turn": self.turn_number,
            "ui_messages": self.accumulator.to_state(),
            "warm": self.warm_override,
            "turn_timeout": self.turn_timeout_override,
            "max_duration": self.max_duration_override,
            "used": self.held_seconds(),
            "locals": self.locals,
            "preload_done": self.preload_done,
            "last_turn": self.last_turn,
        })

    @property
    def tool_journal(self) -> RunToolJournal | None:
        """Where this chat's approved tool calls are recorded once executed (chats only)."""
        chat_id = getattr(self, "chat_id", "")
        if not chat_id:
            return None
        return RunToolJournal(self.store, self.run_id, self.local.token, self.task.id, chat_id)

    def stream_defaults(self) -> dict[str, Any]:
        """The task's static ``ui_message_stream_options``."""
        return dict(self.task.ui_message_stream_options)

    def owner_set(self, **fields: str | int) -> None:
        """Set fields of the run record that only the owner writes (fenced by the lease)."""
        self.store.owner_set(self.run_id, self.local.token, fields)

    # -- where a message enters ---------------------------------------------------------------
    def take(self) -> Input | None:
        """Move the oldest waiting message into this run's processing list and start a turn."""
        self.local.wake.clear()
        self.news_at_take = self.local.news  # before __turn_start: see RunSteering
        while True:
            result = self.store.take(self.run_id, self.turn_number, self.local.token)
            if result is None:
                return None
            input_id, body = split_item(result[0])
            body, trace = unstamp(body)
            try:
                payload = ChatWirePayload.model_validate_json(body)
            except ValidationError as exc:
                self.write_turn_start(input_id, None)
                self.reject(input_id, exc)
                continue  # that turn is answered: on to the next message, if one is waiting
            self.write_turn_start(input_id, body)
            break
        item = Input(input_id, payload, result[1], trace)
        self.taken_at = time.monotonic()
        # From here a stop for this input reaches the turn (the mailbox matches the input id).
        stop = self.new_stop_controller()
        if item.stop_reason:
            stop.abort(item.stop_reason)
        self.local.stop, self.local.current_input, self.local.streaming = stop, input_id, True
        # A stop notice that came between the take and the line above found no turn to stop.
        if self.local.last_stop and self.local.last_stop[0] == input_id:
            stop.abort(self.local.last_stop[1] or "stopped")
        return item

    def write_turn_start(self, input_id: str, body: str | None) -> None:
        """The turn's first chunk, ``__turn_start``: with what any viewer of the chat needs to
        show the turn whoever sent it (its ``trigger``, ``messageId`` and the wire ``messages``,
        copied from the queued payload ``body``; nothing else of the payload, such as client
        data, is shown)."""
        start: dict[str, Any] = {"type": "__turn_start", "turn": self.turn_number}
        if input_id != "i0":
            start["inputId"] = input_id
        wire = json.loads(body) if body is not None else {}
        for key in ("trigger", "messageId", "messages"):
            if key in wire:
                start[key] = wire[key]
        if "messages" in start:
            # The messages are the whole history the turn starts from (a run's first turn, a
            # regenerate), or new messages to add to it (a submit).
            start["history"] = self.turn_number == 0 or wire.get("trigger") == "regenerate-message"
        chunk = json.dumps(start, separators=(",", ":"), ensure_ascii=False)
        self.store.turn_start(self.run_id, self.local.token, chunk)

    def reject(self, input_id: str, exc: ValidationError) -> None:
        """A queued message this worker cannot read (the gateway refuses such bodies, so it was
        corrupted in Redis or written by another version): only its turn fails, with an
        ``error`` chunk and the turn's marker, and the run goes on to the next message."""
        log.error("run %s: input %s is unreadable, its turn fails: %s", self.run_id, input_id,
                  exc)
        output = TurnOutput(self.stream, generate_id())
        output.write({"type": "error", "errorText": (
            "This message could not be read by the chat run, so it was not answered; "
            "send it again.")})
        output.close(stopped=False)
        number = self.turn_number
        self.turn_number += 1
        ttl = self.task.chat_access_token_ttl
        self.write_turn_complete(number, input_id, False, create_run_token(self.run_id, ttl))

    def next_message(self, warm: float, timeout: float, *, park: bool = False) -> Input | None:
        """The next message: at once, or after a warm wait; None once suspended (or timed out
        when ``park``)."""
        warmed = False
        while True:
            self.check_canceled()
            item = self.take()
            if item is not None:
                return item
            if not warmed and warm > 0:
                item = self.wait_warm(warm)
                if item is not None:
                    return item
                warmed = True
                continue
            if park:
                return self.park(timeout)
            if self.suspend(timeout):
                return None
            # A message arrived at the instant of suspending: take it and carry on.

    # -- where a run sleeps ---------------------------------------------------------------------
    def wait_warm(self, seconds: float) -> Input | None:
        """Hold the worker slot up to ``seconds``, woken by the mailbox when a message comes."""
        log.info("run %s: waiting warm for %gs", self.run_id, seconds)
        self.mark_waiting()
        return self._wait(seconds)

    def _wait(self, seconds: float) -> Input | None:
        deadline = time.monotonic() + seconds
        mailbox = get_mailbox()
        while (remaining := deadline - time.monotonic()) > 0:
            if mailbox.draining and not self.parked:
                return None  # the worker is shutting down: suspend now, resume elsewhere
            self.local.wake.wait(remaining)
            self.check_canceled()
            item = self.take()
            if item is not None:
                return item
        return None

    def suspend(self, timeout: float) -> bool:
        """Checkpoint, then atomically suspend unless a message is waiting; frees the slot."""
        done = self.store.suspend(self.run_id, self.local.token, timeout, self.checkpoint())
        if done == -1:
            raise LeaseLost("lease lost")
        if done:
            log.info("run %s: suspended (turn timeout %gs)", self.run_id, timeout)
            concurrency.release(self.task, self.run_id)
        return bool(done)

    def park(self, timeout: float) -> Input | None:
        """Wait up to ``timeout`` without suspending (the stack stays; no polling): raw mode."""
        log.info("run %s: parked for up to %gs", self.run_id, timeout)
        self.owner_set(parked=1, status="waiting")
        self.parked = True
        try:
            return self._wait(timeout)
        finally:
            self.parked = False
            if not self.local.lost:
                self.owner_set(parked=0)

    def lost_to_outage(self, exc: BaseException) -> None:
        """Redis failed mid-run: leave the run to lease recovery rather than mark it failed."""
        log.warning("run %s: Redis unreachable (%s); leaving the run to recovery", self.run_id, exc)

    @contextmanager
    def ending_on_errors(self, what: str) -> Iterator[None]:
        """How every level's run ends when its code raises: canceled (unless another worker
        owns it now), left to recovery when Redis is unreachable, failed on anything else.
        :meth:`abandon_turn` closes a partial reply first."""
        try:
            yield
        except RunCanceled as exc:
            if not self.local.lost:  # a lost lease means another worker owns the run now
                self.abandon_turn()
                self.end("canceled", str(exc) or "canceled")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.lost_to_outage(exc)
        except Exception as exc:
            log.exception("run %s: failed in turn %s", self.run_id, self.turn_number)
            metrics.turn_ended(self.task.id, "failed")
            self.abandon_turn()
            self.end("failed", f"{type(exc).__name__} in {what} (see the worker log)")

    def abandon_turn(self) -> None:
        """After a failure or cancel: close a partial reply (levels that keep one override)."""

    def check_canceled(self) -> None:
        if self.local.cancel.signal.aborted:
            raise RunCanceled(str(self.local.cancel.signal.reason or "canceled"))

    # -- turns ------------------------------------------------------------------------------------
    def new_stop_controller(self) -> AbortController:
        """The stop controller for the next turn (raw mode's ``create_stop_signal`` overrides)."""
        return AbortController()

    def turn_message_id(self, item: Input) -> str:
        """The id of the message answering ``item``: the same for every attempt at the turn, so
        a turn restarted after its worker died answers under the id its first attempt showed."""
        return derive_id(self.run_id, item.input_id)

    def open_turn(self, item: Input, message_id: str,
                  continues: UIMessage | None = None) -> TurnScope:
        """Start answering ``item``: its output (continuing the assistant message
        ``continues``, if any), and its stop signal combined with cancel."""
        stop = self.local.stop or AbortController()
        signal = AbortSignal.any([self.local.cancel.signal, stop.signal])
        output = TurnOutput(self.stream, message_id, continues)
        output.task = self.task.id
        output.taken_at = self.taken_at if self.taken_at is not None else output.taken_at
        logs.bind(turn=self.turn_number)
        log.info("run %s: turn %d started (%s)", self.run_id, self.turn_number, item.input_id)
        scope = TurnScope(self, item.input_id, output, stop, signal)
        if can_steer(self.task):  # messages steered into this turn reach its stream_text
            scope.steering = RunSteering(self.store, self.run_id, self.local.token, item.input_id,
                                         news=lambda: self.local.news, seen=self.news_at_take)
        return scope

    def write_turn_complete(self, number: int, input_id: str, stopped: bool, token: str,
                            *, hook_pending: bool = False) -> str:
        """Write ``__turn_complete`` and the checkpoint atomically; return the marker's id.

        With ``hook_pending`` the answered message stays in the processing list until
        :meth:`hook_done`, so a worker dying before ``on_turn_complete`` returns has only that
        hook re-run on recovery, never the turn.
        """
        marker: dict[str, Any] = {"type": "__turn_complete", "turn": number, "stopped": stopped}
        if input_id != "i0":
            marker["inputId"] = input_id
        if token:
            marker["publicAccessToken"] = token
        self.stream.flush()  # the turn's chunks go before its marker
        marker_id = self.store.marker(
            self.run_id, self.local.token, marker=json.dumps(marker, separators=(",", ":")),
            checkpoint=self.checkpoint(), input_id=input_id, hook_pending=hook_pending,
        )
        self.local.streaming = False
        metrics.turn_ended(self.task.id, "stopped" if stopped else "completed",
                           None if self.taken_at is None else time.monotonic() - self.taken_at)
        log.info("run %s: turn %d complete%s", self.run_id, number, " (stopped)" if stopped else "")
        return marker_id

    def hook_done(self) -> None:
        """``on_turn_complete`` returned: the turn is fully answered."""
        self.store.hook_done(self.run_id, self.local.token)

    def mark_waiting(self) -> None:
        self.owner_set(status="waiting")

    # -- timeouts --------------------------------------------------------------------------------
    def warm_seconds(self) -> float:
        if self.warm_override is not None:
            return self.warm_override
        return float(self.task.warm_timeout_in_seconds)

    def turn_timeout_seconds(self) -> float:
        if self.turn_timeout_override is not None:
            return self.turn_timeout_override
        return parse_duration(self.task.turn_timeout)

    # -- max_duration: the time a run may hold workers, suspended time not counted --------------
    def held_seconds(self) -> float:
        """How long this run has held a worker in all (streaming or warm), over every resume."""
        return self.used_seconds + (time.monotonic() - self.held_since)

    def max_duration_seconds(self) -> float | None:
        if self.max_duration_override is not None:
            return self.max_duration_override if self.max_duration_override > 0 else None
        limit = parse_duration(self.task.max_duration) if self.task.max_duration else 0.0
        return limit if limit > 0 else None  # 0 or None: no cap

    def set_max_duration(self, seconds: float | None) -> None:
        """``chat.set_max_duration``: a new cap, counted from the run's start (0 or None: none)."""
        self.max_duration_override = 0.0 if seconds is None else seconds
        self.arm_max_duration()

    def arm_max_duration(self) -> None:
        """Tell the mailbox when this run's max_duration runs out on this worker; past it, the
        run's cancel signal fires and it ends canceled with reason ``max_duration``."""
        limit = self.max_duration_seconds()
        if limit is None:
            self.local.deadline = None
            return
        remaining = limit - self.held_seconds()
        self.local.deadline = time.monotonic() + remaining
        if remaining <= 0 and self.local.cancel.abort(MAX_DURATION):
            log.info("run %s: max_duration reached; canceling it", self.run_id)
            self.local.wake.set()

    # -- the end ----------------------------------------------------------------------------------
    def end(self, status: str, reason: str) -> None:
        """Finish the run: ``__run_end`` on the stream, lease released, keys set to expire."""
        if self.ended:
            return
        self.ended = True
        try:
            self.stream.flush()  # chunks still queued go before ``__run_end``
        except (LeaseLost, redis.RedisError) as exc:
            log.debug("run %s: queued chunks were not written (%s)", self.run_id, exc)
        if not self.store.end(self.run_id, self.local.token, status, reason):
            # Already ended, or no longer ours (recovered by another worker): touch nothing.
            log.info("run %s: not ended here (it ended already or has another owner)", self.run_id)
            return
        concurrency.release(self.task, self.run_id)
        log.info("run %s: %s (%s)", self.run_id, status, reason)


def execute(task: TaskDefinition, run_id: str, driver_class: type[RunDriver]) -> None:
    """Celery entry point of every run: a queue slot if the task has a limit, the run's lease,
    then ``driver.live()`` until the run suspends or ends."""
    if not concurrency.acquire(task, run_id):
        return  # in line for a slot: enqueued again when one frees up
    mailbox = get_mailbox()
    verdict, local = mailbox.claim(run_id)
    if local is None:
        log.info("run %s: not started here (%s)", run_id, verdict)
        if verdict in {"missing", "ended", "suspended"}:
            concurrency.release(task, run_id)  # nobody runs it: its slot is free
        return
    group = concurrency.limit_of(task)
    local.slot = group[0] if group else None
    bound = logs.bind(run_id=run_id, task=task.id)  # the run's log records carry them
    try:
        with owned_loop():  # the run's event loop for its async code, closed as the run leaves
            driver_class(task, run_id, local).live()
    except LeaseLost:
        # Recovery handed the run to another worker while this one could not renew its lease
        # (a stall): every write of ours is refused from then on, so stop here, quietly.
        local.lost = True
        log.warning("run %s: this worker lost the run's lease; another worker carries it on",
                    run_id)
    finally:
        mailbox.release(run_id)
        logs.reset(bound)


def current_run(what: str) -> RunDriver:
    """The run whose code is executing now; a clear error outside a run."""
    driver = current_driver.get()
    if not isinstance(driver, RunDriver):
        raise RuntimeError(f"{what} works only inside a chat run")
    return driver
