"""The channel of one task tool call: the turn that called a Celery task and the task, in Redis.

The turn opens the call (a hash naming its run and the run's lease token) and reads the call's
stream; the task, on any worker, appends to that stream (progress chunks, then its result or
error) through the ``call_send`` script, which refuses once the call is no longer ``open``
(the turn ended, was stopped, or gave up) or the run's owner lost its lease. Both keys carry a
TTL the waiting turn keeps renewing, so a call whose turn died closes by itself.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from ..config import lease_seconds
from . import keys
from .entry_ids import Entry
from .scripts import LEASE_LOST, registered
from .streams import decode_entries, encode

#: Entries kept in a call's stream (progress beyond that is trimmed before the turn reads it
#: only if the turn falls that far behind).
CALL_MAXLEN = 10_000
#: How long a closed call's keys stay (the task may still ask whether it was cancelled).
CLOSED_TTL_SECONDS = 600

OPEN, DONE, CANCELLED = "open", "done", "cancelled"


class CallClosed(Exception):
    """The turn that called this task no longer waits for it: nothing more can be sent."""


class TaskCallChannel:
    """One call's keys: opened and read by the turn, written by the task."""

    def __init__(self, client: redis.Redis[str], call_id: str) -> None:
        self.client = client
        self.call_id = call_id
        self.key = keys.task_call(call_id)
        self.output = keys.task_call_output(call_id)

    @classmethod
    def new(cls, client: redis.Redis[str], run_id: str) -> TaskCallChannel:
        """A new call of a turn of ``run_id`` (its keys share the run's slot)."""
        return cls(client, keys.new_call_id(run_id, uuid.uuid4().hex))

    # -- the turn's side -----------------------------------------------------------------------
    def open(self, run_id: str, token: str, ttl_seconds: float) -> None:
        """Open the call for ``run_id`` (its owner's lease ``token`` fences what the task sends)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key, mapping={"run": run_id, "token": token, "state": OPEN})
        pipe.pexpire(self.key, int(ttl_seconds * 1000))
        pipe.execute()

    def renew(self, ttl_seconds: float) -> None:
        """Keep an open call (and what it received) alive for ``ttl_seconds`` more."""
        ttl_ms = int(ttl_seconds * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.pexpire(self.key, ttl_ms)
        pipe.pexpire(self.output, ttl_ms)
        pipe.execute()

    def close(self, state: str) -> None:
        """End the call as ``done`` or ``cancelled``: the task can send nothing more."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key, "state", state)
        pipe.expire(self.key, CLOSED_TTL_SECONDS)
        pipe.expire(self.output, CLOSED_TTL_SECONDS)
        pipe.execute()

    def read(self, after: str) -> list[Entry]:
        """Entries after ``after`` (none yet: an empty list, at once)."""
        raw = self.client.xread({self.output: after}, count=500)
        out: list[Entry] = []
        for _stream, entries in raw or []:
            out.extend(decode_entries(entries))
        return out

    # -- the task's side -----------------------------------------------------------------------
    def state(self) -> str | None:
        """``open``, ``done``, ``cancelled``, or None once the call's keys are gone."""
        value = self.client.hget(self.key, "state")
        return str(value) if value is not None else None

    def send(self, entry: dict[str, Any]) -> str:
        """Append ``entry`` for the waiting turn; :class:`CallClosed` once it waits no more."""
        run_id = self.client.hget(self.key, "run")
        if run_id is None:
            raise CallClosed("the chat turn that called this task has ended")
        try:
            entry_id = registered(self.client)["call_send"](
                keys=[self.key, self.output, keys.lease(str(run_id)), keys.run(str(run_id))],
                args=[int(lease_seconds() * 1000), CALL_MAXLEN, encode(entry)],
            )
        except redis.ResponseError as exc:
            text = str(exc)
            if text.startswith("CALL_CLOSED") or text.startswith(LEASE_LOST):
                raise CallClosed(text.split(" ", 1)[-1]) from exc
            raise
        return str(entry_id)

