"""Run state transitions: each Lua script behind a typed method that owns its KEYS and ARGV.

Client-side transitions (create, send, stop, cancel) can come from any process; owner-side ones
(take, suspend, marker, ...) are fenced by the owner's lease token and raise
:class:`~chatworker.store.scripts.LeaseLost` once another worker has taken the run over; sweeps
(expire, recover, requeue) can run on any worker, any number at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis
from redis.commands.core import Script

from ..config import is_cluster, lease_seconds, requeue_seconds, retention_seconds, stream_maxlen
from . import hints, keys
from .keys import ACTIVE, DEADLINES, RESUMING, RUNS, WORKERS
from .records import RunInfo, load_info
from .scripts import LeaseLost, raise_if_lease_lost, redis_now_ms, registered, run_many

__all__ = ["LeaseLost", "RunStore"]

#: The longest wait between two re-sends of an overdue run's start message.
REQUEUE_MAX_MS = 60_000
#: How long a chat's recorded tool results are kept after the last one was written.
TOOL_RECORD_SECONDS = 30 * 86_400
#: The statuses of a run waiting for a worker to start it (the start hint keeps them found).
STARTING = ("queued", "resuming")
#: How long an ``Idempotency-Key`` remembers the run it created.
IDEMPOTENCY_SECONDS = 86_400


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _pairs(fields: Mapping[str, str | int]) -> list[str | int]:
    return [item for pair in fields.items() for item in pair]


#: Runs renewed per script call on one server (a bound on how long one call holds Redis).
RENEW_BATCH = 500


class RunStore:
    """The run records of one Redis (one per client; cheap to make)."""

    #: How many buckets each global index has (the sweeps walk them all).
    BUCKETS = keys.BUCKETS

    def __init__(self, client: redis.Redis[str]) -> None:
        self.client = client
        self._scripts = registered(client)
        self._sharded = is_cluster(client)

    def _run(self, name: str, run_keys: Sequence[str], args: Sequence[Any]) -> Any:
        script: Script = self._scripts[name]
        return script(keys=list(run_keys), args=list(args))

    def _fenced(self, name: str, run_keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self._run(name, run_keys, args)
        except redis.ResponseError as exc:
            raise_if_lease_lost(exc)
            raise

    @staticmethod
    def wake_channel(worker_id: str) -> str:
        """The Pub/Sub channel a worker process hears its runs' notices on (a sharded channel
        on a cluster)."""
        return keys.wake_channel(worker_id)

    def _notify(self, owner: str, notices: Sequence[Any]) -> None:
        """Publish ``notices`` to the owner's wake channel (``SPUBLISH`` on a cluster). After
        the script, not in it: the channel hashes to another slot. A notice lost to a crash in
        between is caught up by the mailbox's periodic re-check."""
        if not owner:
            return
        channel = keys.wake_channel(owner)
        for notice in notices:
            if self._sharded:
                self.client.execute_command("SPUBLISH", channel, str(notice))
            else:
                self.client.publish(channel, str(notice))

    def now_ms(self) -> int:
        """Redis's clock, the one every deadline and lease expiry is on."""
        return redis_now_ms(self.client)

    # -- client side: any process ---------------------------------------------------------
    def create(self, run_id: str, *, task_id: str, chat_id: str, record: Mapping[str, str | int],
               first_item: str | None) -> None:
        """A new ``queued`` run: its record, first message, the runs index, the chat's latest
        run, and a start deadline (a lost Celery message is noticed and sent again)."""
        requeue_ms = _ms(requeue_seconds())
        hints.add(self.client, RESUMING, [run_id], requeue_ms)  # before: see store/hints.py
        created = int(self._run("create", [keys.run(run_id), keys.inbox(run_id)],
                                [*_pairs(record), first_item or "", requeue_ms]))
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(keys.index(RUNS, run_id), {run_id: created})
        pipe.set(keys.chat_run(task_id, chat_id), run_id, ex=int(retention_seconds()) + 86400)
        pipe.execute()

    def remember_idempotency(self, task_id: str, principal: str, key: str,
                             run_id: str) -> str | None:
        """Bind ``key`` (for this principal) to ``run_id``; the run it names already, if any."""
        name = keys.idempotency(task_id, principal, key)
        if self.client.set(name, run_id, nx=True, ex=IDEMPOTENCY_SECONDS):
            return None
        return str(self.client.get(name))

    def forget_idempotency(self, task_id: str, principal: str, key: str) -> None:
        self.client.delete(keys.idempotency(task_id, principal, key))

    def send(self, run_id: str, item: str) -> tuple[str, str]:
        """Queue ``item`` (a wire payload): ``(verdict, detail)`` — ``ok``/``resume`` with the
        new input id, ``ended`` with the status, ``full`` with the turn limit, or ``missing``."""
        verdict, detail, _ = self.deliver(run_id, item)
        return verdict, detail

    def deliver(self, run_id: str, item: str, policy: str = "queue",
                stop_reason: str = "interrupted") -> tuple[str, str, str]:
        """Queue ``item`` (a wire payload): ``(verdict, detail, applied policy)``.

        ``policy`` (``queue``, ``interrupt``, ``steer``, ``reject``) applies only while a turn
        of the run streams (``applied`` is then that policy, else ``queue``). Verdicts: ``ok``/
        ``resume`` with the new input id; ``busy`` with the streaming input (a ``reject``:
        nothing written); ``ended`` with the status; ``full`` with the turn limit; ``missing``.
        """
        requeue_ms = _ms(requeue_seconds())
        # Before the send: if it resumes a suspended run, that run is found even should this
        # process die before the resume is enqueued. A hint the run already has is kept (a queued
        # run's), and the one added here is dropped again unless the send resumed the run.
        send_keys = [keys.run(run_id), keys.inbox(run_id)]
        send_args = [item, run_id, requeue_ms, policy, stop_reason]
        if self._sharded:
            hinted = hints.add(self.client, RESUMING, [run_id], requeue_ms, only_new=True)
            result = self._run("send", send_keys, send_args)
        else:  # one server runs a pipeline in order: the hint still goes first, one round trip
            hinted, result = hints.add_then(self.client, RESUMING, run_id, requeue_ms,
                                            ("send", send_keys, send_args))
        values = [str(v) for v in result] + ["", ""]
        starting = values[0] == "resume" or (values[0] == "ok" and values[4] in STARTING)
        if values[0] == "ok":  # the owner first: it is waiting for this message
            self._notify(values[3], values[5:-2])
        if hinted and not starting and values[0] != "full":
            hints.drop(self.client, RESUMING, run_id, hinted)
        return values[0], values[1], values[2] or "queue"

    def stop(self, run_id: str, reason: str, input_id: str | None) -> str:
        """Record a stop (``ok``, ``queued`` for a message not yet taken, ``idle``, ``missing``)."""
        result = [str(v) for v in self._run("stop", [keys.run(run_id)],
                                            [reason, run_id, input_id or ""])]
        if result[0] == "ok":
            self._notify(result[1], result[2:])
        return result[0]

    def cancel(self, run_id: str, reason: str) -> str:
        """``ended-now`` (nobody ran it), ``ok`` (its owner is told), ``ended`` or ``missing``."""
        result = [str(v) for v in self._run("cancel", keys.run_keys(run_id),
                                            [reason, stream_maxlen(), run_id,
                                             int(retention_seconds())])]
        if result[0] == "ended-now":
            hints.drop_all(self.client, run_id, (DEADLINES, RESUMING, ACTIVE))
        elif result[0] == "ok":
            self._notify(result[1], result[2:])
        return result[0]

    # -- reading ----------------------------------------------------------------------------
    def info(self, run_id: str, *, with_pending: bool = False) -> RunInfo | None:
        return load_info(self.client, run_id, with_pending=with_pending)

    def fields(self, run_id: str, *names: str) -> list[str | None]:
        """Some fields of the run record (None for a missing field or run)."""
        return [None if v is None else str(v)
                for v in self.client.hmget(keys.run(run_id), list(names))]

    def record(self, run_id: str) -> dict[str, str]:
        """The whole run record (empty when there is no such run)."""
        return dict(self.client.hgetall(keys.run(run_id)))

    def checkpoint(self, run_id: str) -> dict[str, Any] | None:
        raw = self.client.get(keys.checkpoint(run_id))
        return json.loads(raw) if raw else None

    def record_and_checkpoint(self, run_id: str) -> tuple[dict[str, str], dict[str, Any] | None]:
        """:meth:`record` and :meth:`checkpoint` in one round trip (a run starting or resuming
        reads both before its first turn)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.run(run_id))
        pipe.get(keys.checkpoint(run_id))
        record, raw = pipe.execute()
        return dict(record), (json.loads(raw) if raw else None)

    def chat_run(self, task_id: str, chat_id: str) -> str | None:
        """The latest run started for a chat of a task, if Redis still remembers it."""
        value = self.client.get(keys.chat_run(task_id, chat_id))
        return str(value) if value else None

    def recent_run_ids(self, limit: int) -> list[str]:
        return [run_id for run_id, _ in hints.first(self.client, RUNS, limit, newest=True)]

    def exists(self, run_ids: Sequence[str]) -> list[bool]:
        """Whether each run's record still exists, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.exists(keys.run(run_id))
        return [bool(found) for found in pipe.execute()]

    def follow_states(self, run_ids: Sequence[str]) -> list[tuple[bool, bool]]:
        """For each run, in one round trip: whether its record still exists, and whether it is
        stalled: a turn in flight whose owner's lease has lapsed (its worker died, and no worker
        has taken the run over yet)."""
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.exists(keys.run(run_id))
            pipe.hget(keys.run(run_id), "is_streaming")
            pipe.exists(keys.lease(run_id))
        replies = pipe.execute()
        return [(bool(found), bool(found and streaming == "1" and not leased))
                for found, streaming, leased in zip(replies[::3], replies[1::3], replies[2::3],
                                                    strict=True)]

    # -- owner side: fenced by the lease ---------------------------------------------------
    def claim(self, run_id: str, token: str, owner: str) -> tuple[str, str]:
        """Take the lease of a queued or resuming run: ``("ok", previous status)`` or why not."""
        lease_ms = _ms(lease_seconds())
        hints.add(self.client, ACTIVE, [run_id], lease_ms)  # before: an owner that dies is found
        result = self._run("claim", [keys.run(run_id), keys.lease(run_id)],
                           [token, lease_ms, owner])
        if result[0] == "ok":  # no more re-sends of its start (a later one's hint stays)
            hints.drop(self.client, RESUMING, run_id, int(result[2]) + _ms(requeue_seconds()))
        return str(result[0]), str(result[1]) if len(result) > 1 else ""

    def take(self, run_id: str, turn: int, token: str) -> tuple[str, str] | None:
        """Move the next message to processing for turn ``turn``: ``(item, stop reason)``; then
        :meth:`turn_start` writes the turn's first chunk."""
        result = self._fenced("take",
                              [keys.run(run_id), keys.inbox(run_id), keys.processing(run_id),
                               keys.output(run_id), keys.lease(run_id)],
                              [turn, stream_maxlen(), token, _ms(lease_seconds())])
        if not result:
            return None
        return str(result[0]), str(result[1] or "")

    def turn_start(self, run_id: str, token: str, chunk: str) -> str:
        """Write the ``__turn_start`` of the turn :meth:`take` began; return its entry id."""
        return str(self._fenced("turn_start",
                                [keys.run(run_id), keys.output(run_id), keys.lease(run_id)],
                                [chunk, stream_maxlen(), token, _ms(lease_seconds())]))

    def steer_take(self, run_id: str, token: str, input_id: str) -> list[str]:
        """At a step boundary of the turn answering ``input_id``: the messages steered into it,
        moved from the inbox to the processing list (they are answered with that input)."""
        result = self._fenced("steer_take",
                              [keys.run(run_id), keys.inbox(run_id), keys.processing(run_id),
                               keys.lease(run_id)],
                              [token, _ms(lease_seconds()), input_id])
        return [str(item) for item in result or []]

    def suspend(self, run_id: str, token: str, timeout: float, checkpoint: str) -> int:
        """Save the checkpoint; suspend unless a message waits (1), or not (0); -1: not ours."""
        lease_ms = _ms(lease_seconds())
        hinted = hints.add(self.client, DEADLINES, [run_id], _ms(timeout))  # before: see hints
        result = self._run("suspend",
                           [keys.run(run_id), keys.inbox(run_id), keys.lease(run_id),
                            keys.checkpoint(run_id)],
                           [token, lease_ms, _ms(timeout), checkpoint])
        verdict = int(result[0])
        if verdict == 1:  # no owner: its lease hint is useless (a later claim's stays)
            hints.drop(self.client, ACTIVE, run_id, int(result[1]) + lease_ms)
        else:
            hints.drop(self.client, DEADLINES, run_id, hinted)
        return verdict

    def marker(self, run_id: str, token: str, *, marker: str, checkpoint: str, input_id: str,
               hook_pending: bool) -> str:
        """The end of a turn: its marker, the checkpoint and the hook-pending flag together."""
        return str(self._fenced("marker",
                                [keys.run(run_id), keys.output(run_id), keys.checkpoint(run_id),
                                 keys.processing(run_id), keys.lease(run_id)],
                                [marker, checkpoint, stream_maxlen(),
                                 input_id if hook_pending else "", token, _ms(lease_seconds()),
                                 input_id]))

    def recorded_tool(self, task_id: str, chat_id: str, approval_id: str) -> str | None:
        """The recorded result (JSON) of the approved tool call ``approval_id`` of a chat."""
        value = self.client.hget(keys.tool_outputs(task_id, chat_id), approval_id)
        return None if value is None else str(value)

    def record_tool(self, run_id: str, token: str, *, task_id: str, chat_id: str,
                    approval_id: str, result: str) -> str:
        """Record an executed approved call's result (JSON) unless one is recorded already;
        returns the one kept. Fenced: a worker that lost the run records nothing."""
        # The chat's results are in another slot than the run: the fence is checked first, then
        # the first write wins (a worker that lost the run in between records the result of a
        # call it did execute, which still keeps the call from executing twice).
        self._fenced("fence", [keys.run(run_id), keys.lease(run_id)],
                     [token, _ms(lease_seconds())])
        name = keys.tool_outputs(task_id, chat_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(name, approval_id, result)
        pipe.expire(name, TOOL_RECORD_SECONDS)
        pipe.hget(name, approval_id)
        return str(pipe.execute()[-1])

    def hook_done(self, run_id: str, token: str) -> None:
        """``on_turn_complete`` returned: the answered message leaves the processing list."""
        self._fenced("hook_done", [keys.run(run_id), keys.processing(run_id), keys.lease(run_id)],
                     [token, _ms(lease_seconds())])

    def owner_set(self, run_id: str, token: str, fields: Mapping[str, str | int]) -> None:
        """Set fields of the run record that only its owner writes."""
        self._fenced("owner_set", [keys.run(run_id), keys.lease(run_id)],
                     [token, _ms(lease_seconds()), *_pairs(fields)])

    def end(self, run_id: str, token: str, status: str, reason: str) -> bool:
        """End the run (``__run_end``, retention set); False when it is not ours to end."""
        ended = bool(self._run("end", keys.run_keys(run_id),
                               [status, reason, stream_maxlen(), token,
                                int(retention_seconds())]))
        if ended:
            hints.drop_all(self.client, run_id, (DEADLINES, RESUMING, ACTIVE))
        return ended

    def renew(self, worker_id: str, owned: Sequence[tuple[str, str]]) -> set[str]:
        """Beat for the worker and renew the leases of ``(run_id, token)``; the run ids lost."""
        self.client.zadd(keys.index(WORKERS, worker_id), {worker_id: time.time()})
        if not owned:
            return set()
        lease_ms = _ms(lease_seconds())
        if self._sharded:
            # One script per run (each in its run's slot), all in one pipeline.
            replies = run_many(self.client, "renew",
                               [([keys.lease(r), keys.run(r)], [t, lease_ms]) for r, t in owned])
        else:  # one server: a few script calls for all of them
            replies = []
            for batch in (owned[i:i + RENEW_BATCH] for i in range(0, len(owned), RENEW_BATCH)):
                run_keys = [k for r, _ in batch for k in (keys.lease(r), keys.run(r))]
                [reply] = run_many(self.client, "renew_all",
                                   [(run_keys, [lease_ms, *(t for _, t in batch)])])
                replies += reply if isinstance(reply, list) else [reply] * len(batch)
        for reply in replies:
            if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
                raise reply
        kept = [run_id for (run_id, _), reply in zip(owned, replies, strict=True) if reply == 1]
        hints.add(self.client, ACTIVE, kept, lease_ms)
        return {run_id for (run_id, _), reply in zip(owned, replies, strict=True) if reply != 1}

    def news(self, owned: Iterable[tuple[str, str]]) -> list[tuple[int, bool, str | None]]:
        """For each ``(run_id, input being answered)``: messages waiting, canceled, and the
        stop recorded for that input — in one round trip (missed notices are caught up)."""
        owned = list(owned)
        pipe = self.client.pipeline(transaction=False)
        for run_id, input_id in owned:
            pipe.llen(keys.inbox(run_id))
            pipe.hmget(keys.run(run_id), "cancel", f"stop:{input_id}")
        results = pipe.execute()
        out: list[tuple[int, bool, str | None]] = []
        for i in range(len(owned)):
            waiting, (cancel, stop_reason) = results[2 * i], results[2 * i + 1]
            out.append((int(waiting), cancel == "1", stop_reason or None))
        return out

    # -- sweeps: any worker ------------------------------------------------------------------
    def due_deadlines(self, now: int, count: int) -> list[tuple[str, int]]:
        """Suspended runs whose turn timeout passed by ``now`` (Redis time), from every bucket
        of the deadlines index: ``(run id, hint score)``."""
        return hints.due(self.client, DEADLINES, now, count)

    def lapsed_leases(self, now: int, count: int) -> list[tuple[str, int]]:
        """Owned runs whose lease should have been renewed by ``now``."""
        return hints.due(self.client, ACTIVE, now, count)

    def overdue_starts(self, now: int, count: int) -> list[tuple[str, int]]:
        """Queued or resuming runs that no worker claimed by their start deadline."""
        return hints.due(self.client, RESUMING, now, count)

    def _repair(self, index: str, run_id: str, verdict: Any, seen: int | None) -> None:
        """After a sweep's script: drop the stale hint it saw, or move an early one."""
        if verdict == "gone":
            hints.drop(self.client, index, run_id, hints.ANY if seen is None else seen)
        elif isinstance(verdict, list) and verdict and verdict[0] == "later":
            hints.move(self.client, index, run_id, int(verdict[1]))

    def expire(self, run_id: str, seen: int | None = None) -> bool:
        """End a suspended run whose turn timeout passed, unless a message arrived (``seen``:
        the score of the deadlines hint the sweep found)."""
        verdict = self._run("expire", keys.run_keys(run_id),
                            [stream_maxlen(), int(retention_seconds())])
        if verdict == 1:
            hints.drop_all(self.client, run_id, (DEADLINES,))
            return True
        self._repair(DEADLINES, run_id, verdict, seen)
        return False

    def recover(self, run_id: str, seen: int | None = None) -> bool:
        """For a lapsed lease: re-queue the interrupted message, close the partial with
        ``abort``, mark the run resuming. True when it did (the caller enqueues it)."""
        requeue_ms = _ms(requeue_seconds())
        # Before: a sweeper dying right after recovering leaves the run found by the next one.
        hinted = hints.add(self.client, RESUMING, [run_id], requeue_ms)
        verdict = self._run("recover",
                            [keys.run(run_id), keys.lease(run_id), keys.processing(run_id),
                             keys.inbox(run_id), keys.output(run_id)],
                            [stream_maxlen(), requeue_ms])
        if isinstance(verdict, list) and verdict and verdict[0] == 1:
            hints.drop(self.client, ACTIVE, run_id, int(verdict[1]))
            return True
        hints.drop(self.client, RESUMING, run_id, hinted)
        self._repair(ACTIVE, run_id, verdict, seen)
        return False

    def requeue(self, run_id: str, seen: int | None = None) -> bool:
        """True for the one sweeper that should send an overdue run's start message again."""
        verdict = self._run("requeue", [keys.run(run_id)],
                            [_ms(requeue_seconds()), REQUEUE_MAX_MS])
        if isinstance(verdict, list) and verdict and verdict[0] == "send":
            hints.move(self.client, RESUMING, run_id, int(verdict[1]))
            return True
        self._repair(RESUMING, run_id, verdict, seen)
        return False

    def trim_runs(self, bucket: int, start: int, count: int) -> tuple[int, int]:
        """Drop runs whose keys expired from a window of bucket ``bucket`` (of
        :data:`~.keys.BUCKETS`) of the runs index: ``(seen, dropped)``."""
        key = keys.index_buckets(RUNS)[bucket % keys.BUCKETS]
        ids = [str(v) for v in self.client.zrange(key, start, start + count - 1)]
        if not ids:
            return 0, 0
        gone = [run_id for run_id, alive in zip(ids, self.exists(ids), strict=True) if not alive]
        if gone:
            self.client.zrem(key, *gone)
        return len(ids), len(gone)

    def workers(self) -> list[str]:
        """Ids (``host:pid:nonce``) of the worker processes that have beaten, oldest beat first;
        a dead one stays until forgotten."""
        return [worker for worker, _ in hints.first(self.client, WORKERS, 2**31)]

    def forget_workers(self, before: float) -> None:
        """Drop workers whose last heartbeat is older than ``before`` (a Unix time)."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys.index_buckets(WORKERS):
            pipe.zremrangebyscore(key, "-inf", before)
        pipe.execute()
