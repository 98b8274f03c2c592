"""The per-process mailbox: how runs owned by this worker process hear about news.

One Pub/Sub connection per worker process (not one per run) receives "a message arrived",
"stop" and "cancel" notices for the runs this process owns; one thread renews their leases;
one maintenance thread re-checks Redis in case a notice was missed, ends suspended runs whose
turn timeout passed, recovers runs whose owner died, and sends again the start of runs no worker
claimed in time. So 1,000 warm-waiting runs cost a few Redis connections, not 1,000.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from .. import metrics
from ..config import get_redis, is_cluster, lease_seconds
from ..signals import AbortController
from ..store.run_store import RunStore
from . import concurrency
from .dispatch import enqueue_quietly

log = logging.getLogger("chatworker.mailbox")

POLL_SECONDS = 1.0
#: How often every owned run is re-checked in Redis in case a notice was missed. Notices are
#: exact while the Pub/Sub connection is up (it is re-checked at once after a reconnect), so
#: this is a backstop for rare races; at 1,000 owned runs a once-a-second check cost ~10% of
#: a worker's CPU.
RECHECK_SECONDS = 10.0
#: How often a worker walks part of the runs index, dropping runs whose keys have expired.
TRIM_SECONDS = 10.0
#: How many runs of the index one trim looks at.
TRIM_BATCH = 500
#: The cancel reason (and ``__run_end`` reason) of a run that reached its ``max_duration``.
MAX_DURATION = "max_duration"
#: A worker whose heartbeat is older than this is dropped from the workers index.
WORKER_FORGET_SECONDS = 3600.0


@dataclass
class LocalRun:
    """A run this process owns: its lease token and the signals the mailbox fires."""

    run_id: str
    token: str
    wake: threading.Event = field(default_factory=threading.Event)
    cancel: AbortController = field(default_factory=AbortController)
    stop: AbortController | None = None
    current_input: str | None = None
    streaming: bool = False
    lost: bool = False
    slot: str | None = None  # the concurrency-limited queue whose slot this run holds
    last_stop: tuple[str, str] | None = None  # the latest stop notice: (input id, reason)
    deadline: float | None = None  # monotonic time its max_duration runs out on this worker
    #: Messages announced for this run so far (every accepted message publishes one notice):
    #: a turn that heard none since it began has nothing steered into it to take.
    news: int = 0

    def overdue(self, now: float) -> bool:
        """Its max_duration ran out (see :meth:`Mailbox.enforce_deadlines`)."""
        return self.deadline is not None and now >= self.deadline

    def on_stop(self, input_id: str, reason: str) -> None:
        stop = self.stop
        if self.streaming and self.current_input == input_id and stop is not None and (
            stop.abort(reason or "stopped")
        ):
            log.info("run %s: stop received for %s", self.run_id, input_id)


class Mailbox:
    """Owns the runs of this process and keeps them informed; started on first use."""

    def __init__(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runs: dict[str, LocalRun] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stopping = threading.Event()
        self._trim_from = 0
        self._trim_bucket = 0
        self.draining = False

    # -- ownership -----------------------------------------------------------------------
    def claim(self, run_id: str) -> tuple[str, LocalRun | None]:
        """Take the run's lease; returns ``("ok", run)`` or the reason it cannot be taken."""
        self.start()
        token = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        verdict, detail = RunStore(get_redis()).claim(run_id, token, self.worker_id)
        if verdict == "state":
            verdict = detail  # e.g. "suspended", or "running" under another owner
        if verdict != "ok":
            return verdict, None
        local = LocalRun(run_id, token)
        with self._lock:
            self.runs[run_id] = local
        return "ok", local

    def release(self, run_id: str) -> None:
        """Forget a run (after it suspended or ended); its lease is dropped by the caller."""
        with self._lock:
            self.runs.pop(run_id, None)

    # -- background threads ----------------------------------------------------------------
    def start(self) -> None:
        """Start the listener, lease and maintenance threads once per process (after any fork).

        Leases are renewed on a thread of their own: a long sweep (recovering a dead worker's
        hundred runs takes seconds) must never delay them, or this worker's own runs would
        lapse while it is busy rescuing others."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
        for target in (self._listen, self._keep_leases, self._maintain):
            name = f"chatworker-{target.__name__}"
            threading.Thread(target=target, name=name, daemon=True).start()
        log.info("worker %s: mailbox started", self.worker_id)

    def _listen(self) -> None:
        channel = RunStore.wake_channel(self.worker_id)
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                client = get_redis(blocking=True)
                pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
                sharded = is_cluster(client)  # a cluster: sharded Pub/Sub (SSUBSCRIBE)
                if sharded:
                    pubsub.ssubscribe(channel)
                else:
                    pubsub.subscribe(channel)
                backoff = 0.5
                # A reconnect may have missed notices: re-check everything once.
                self._check_all()
                while not self._stopping.is_set():
                    if sharded:
                        message = pubsub.get_sharded_message(timeout=1.0)
                    else:
                        message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") in ("message", "smessage"):
                        self._dispatch(str(message["data"]))
            except redis.RedisError as exc:
                log.warning("mailbox: Redis unreachable (%s); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("mailbox listener error")
                time.sleep(1.0)

    def _dispatch(self, data: str) -> None:
        kind, _, rest = data.partition(" ")
        run_id, _, rest = rest.partition(" ")
        local = self.runs.get(run_id)
        if local is None:
            return
        if kind == "m":
            local.news += 1
            local.wake.set()
        elif kind == "s":
            input_id, _, reason = rest.partition(" ")
            local.last_stop = (input_id, reason)  # read by a turn starting at this instant
            local.on_stop(input_id, reason)
        elif kind == "c":
            local.cancel.abort("canceled")
            local.wake.set()

    def _keep_leases(self) -> None:
        failing = False
        while not self._stopping.wait(lease_seconds() / 4):
            try:
                self._renew()
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("mailbox: cannot renew leases, Redis unreachable (%s)", exc)
                failing = True
            except Exception:
                log.exception("mailbox lease renewal error")

    def _maintain(self) -> None:
        last_check = last_trim = 0.0
        last_failure: float | None = None
        while not self._stopping.wait(POLL_SECONDS):
            try:
                now = time.monotonic()
                self.enforce_deadlines(now)
                if now - last_check >= RECHECK_SECONDS:
                    self._check_all()
                    last_check = now
                # Just after Redis came back every lease looks lapsed, those of live workers
                # too: give each owner a lease period to renew (take back) its own before
                # treating any run as orphaned.
                grace = last_failure is not None and now - last_failure < lease_seconds() + 1
                self._sweep(recover=not grace)
                concurrency.sweep()
                if now - last_trim >= TRIM_SECONDS:
                    self._trim()
                    last_trim = now
            except redis.RedisError as exc:
                if last_failure is None or time.monotonic() - last_failure > 30:
                    log.warning("mailbox maintenance: Redis unreachable (%s)", exc)
                last_failure = time.monotonic()
            except Exception:
                log.exception("mailbox maintenance error")

    def enforce_deadlines(self, now: float) -> None:
        """Cancel the runs whose ``max_duration`` ran out (checked every second, no Redis): their
        ``cancel_signal`` fires, and the run ends canceled with reason ``max_duration``."""
        for local in list(self.runs.values()):
            if local.overdue(now) and local.cancel.abort(MAX_DURATION):
                log.info("run %s: max_duration reached; canceling it", local.run_id)
                local.wake.set()

    def _renew(self) -> None:
        runs = list(self.runs.values())
        lost = RunStore(get_redis()).renew(self.worker_id, [(r.run_id, r.token) for r in runs])
        concurrency.renew([(r.slot, r.run_id) for r in runs if r.slot])
        for local in runs:
            if local.run_id in lost and not local.lost:
                local.lost = True
                log.error("run %s: lease lost; another worker may own it now", local.run_id)
                local.cancel.abort("lease lost")
                local.wake.set()

    def _check_all(self) -> None:
        """Catch up on notices a dropped Pub/Sub connection may have missed."""
        runs = list(self.runs.values())
        if not runs:
            return
        news = RunStore(get_redis()).news((r.run_id, r.current_input or "i0") for r in runs)
        for local, (waiting, canceled, stop_reason) in zip(runs, news, strict=True):
            if canceled:
                local.cancel.abort("canceled")
                local.wake.set()
            elif waiting:
                local.wake.set()
            if stop_reason and local.current_input:
                local.on_stop(local.current_input, stop_reason)

    def _sweep(self, *, recover: bool = True) -> None:
        """End suspended runs whose turn timeout passed; send again the start of runs queued or
        resuming that no worker claimed in time; with ``recover``, resume elsewhere the runs
        whose owner stopped renewing its lease. Deadlines are on Redis's clock."""
        store = RunStore(get_redis())
        now = store.now_ms()
        for run_id, seen in store.due_deadlines(now, 100):
            if store.expire(run_id, seen):
                log.info("run %s: completed (turn timeout while suspended)", run_id)
        for run_id, seen in store.lapsed_leases(now, 50) if recover else []:
            task_id, status = store.fields(run_id, "task_id", "status")
            if store.recover(run_id, seen):
                metrics.recovered()
                if status == "running":  # a turn was interrupted: it starts again elsewhere
                    metrics.turn_ended(task_id or "unknown", "recovered")
                log.warning("run %s: its worker stopped renewing its lease; resuming it elsewhere",
                            run_id)
                enqueue_quietly(run_id)
        for run_id, seen in store.overdue_starts(now, 50):
            if store.requeue(run_id, seen):
                log.warning("run %s: no worker started it in time (its message may be lost); "
                            "enqueueing it again", run_id)
                enqueue_quietly(run_id)

    def _trim(self) -> None:
        """Drop from the runs index the runs whose keys expired, a window at a time (the window
        moves on, so long-lived runs at the old end never stop the walk; at a bucket's end it
        moves to the next bucket), and forget workers that stopped beating long ago."""
        store = RunStore(get_redis())
        store.forget_workers(time.time() - WORKER_FORGET_SECONDS)
        budget = TRIM_BATCH
        for _ in range(store.BUCKETS):  # at most one pass over the buckets per trim
            seen, gone = store.trim_runs(self._trim_bucket, self._trim_from, budget)
            self._trim_from += seen - gone
            budget -= seen
            if budget <= 0:
                return
            self._trim_from = 0  # this bucket's end: on to the next
            self._trim_bucket = (self._trim_bucket + 1) % store.BUCKETS

    def drain(self) -> None:
        """Warm shutdown: runs waiting warm suspend at once (streaming turns finish first)."""
        self.draining = True
        for local in list(self.runs.values()):
            local.wake.set()
        log.info("worker %s: shutting down; suspending warm-waiting runs", self.worker_id)


def cooperative_broker_reconnects() -> None:
    """Under gevent, make kombu's reconnect back-off sleep cooperatively.

    ``celery -P gevent`` monkey-patches ``time`` only after ``kombu.utils.functional`` was
    imported (through ``celery.concurrency``), so that module's ``from time import sleep`` keeps
    the blocking sleep. While the broker was down, every reconnect back-off (2 s, 4 s, ... up
    to 30 s) froze the whole worker: streaming turns, lease renewals, this mailbox. So a Redis
    restart (when Redis is the broker) stalled every run and made all their leases lapse. The
    back-off is kombu's own, shared by every transport, so a RabbitMQ broker's outage is made
    cooperative the same way.
    """
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if not monkey.is_module_patched("time"):
        return
    from kombu.utils import functional

    if getattr(functional, "sleep", None) is not time.sleep:
        setattr(functional, "sleep", time.sleep)  # noqa: B010 - the patched, cooperative sleep


cooperative_broker_reconnects()

_mailbox: Mailbox | None = None
_mailbox_pid: int | None = None


def get_mailbox() -> Mailbox:
    """This process's mailbox (a forked child gets its own)."""
    global _mailbox, _mailbox_pid
    if _mailbox is None or _mailbox_pid != os.getpid():
        _mailbox = Mailbox()
        _mailbox_pid = os.getpid()
    return _mailbox
