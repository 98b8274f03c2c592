"""The run record: its statuses, the snapshot users see, and what a queued message looks like.

A run is a hash (``keys.run``) plus an inbox list, a processing list, an output stream, a
checkpoint and a lease. Statuses: queued → running ⇄ waiting → suspended → resuming → running …
→ completed | canceled | failed. ``is_streaming`` is 1 from the moment a turn takes its input
until its marker is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from . import keys

ENDED = ("completed", "canceled", "failed")
STATUSES = ("queued", "running", "waiting", "suspended", "resuming", *ENDED)


@dataclass
class RunInfo:
    """A snapshot of a run record, as ``GET /runs/<id>`` and ``chatworker runs`` show it."""

    run_id: str
    task_id: str
    chat_id: str
    status: str
    turn: int
    is_streaming: bool
    last_event_id: str | None
    turn_start_id: str | None
    owner: str | None
    created_at: float
    updated_at: float
    reason: str | None
    previous_run_id: str | None
    pending_inputs: int = 0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @classmethod
    def from_hash(cls, run_id: str, data: dict[str, Any]) -> RunInfo:
        def opt(name: str) -> str | None:
            value = data.get(name)
            return str(value) if value else None

        return cls(
            run_id=run_id,
            task_id=str(data.get("task_id", "")),
            chat_id=str(data.get("chat_id", "")),
            status=str(data.get("status", "")),
            turn=int(data.get("turn", 0) or 0),
            is_streaming=data.get("is_streaming") == "1",
            last_event_id=opt("last_event_id"),
            turn_start_id=opt("turn_start_id") if data.get("is_streaming") == "1" else None,
            owner=opt("owner"),
            created_at=int(data.get("created_at", 0) or 0) / 1000,
            updated_at=int(data.get("updated_at", 0) or 0) / 1000,
            reason=opt("reason"),
            previous_run_id=opt("previous_run_id"),
        )

    def to_json(self) -> dict[str, Any]:
        """The camelCase shape of ``GET /runs/<runId>``."""
        body: dict[str, Any] = {
            "runId": self.run_id,
            "taskId": self.task_id,
            "chatId": self.chat_id,
            "status": self.status,
            "turn": self.turn,
            "isStreaming": self.is_streaming,
            "lastEventId": self.last_event_id,
            "turnStartId": self.turn_start_id,
            "pendingInputs": self.pending_inputs,
        }
        if self.reason:
            body["reason"] = self.reason
        return body


def load_info(
    client: redis.Redis[str], run_id: str, *, with_pending: bool = False
) -> RunInfo | None:
    """The run's record, or None if there is no such run; ``with_pending`` also counts the
    messages accepted but not yet taken by a turn."""
    if not with_pending:
        data = client.hgetall(keys.run(run_id))
        return RunInfo.from_hash(run_id, data) if data else None
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(keys.run(run_id))
    pipe.llen(keys.inbox(run_id))
    data, pending = pipe.execute()
    if not data:
        return None
    info = RunInfo.from_hash(run_id, data)
    info.pending_inputs = int(pending)
    return info


def split_item(item: str) -> tuple[str, str]:
    """``"i3 {json}"`` → ``("i3", "{json}")``: an inbox entry is the input id and the payload."""
    input_id, _, body = item.partition(" ")
    return input_id, body
