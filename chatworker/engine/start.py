"""Starting a run: its record and first message in Redis, then its Celery message.

Both ways of starting a run come here: ``chatworker.runs.trigger`` (and so the gateway) and a
task's own ``trigger`` method.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import redis

from ..config import get_redis
from ..errors import RedisUnavailable
from ..store.run_store import RunStore
from ..tokens import create_run_token
from ..tracing import stamp
from ..types import TaskDefinition
from .payload import ChatWirePayload, parse_payload

log = logging.getLogger("chatworker.runs")


@dataclass(frozen=True)
class TriggerResult:
    """A new (or, for a retried request, the existing) run and a token to read and write it."""

    run_id: str
    public_access_token: str

    def to_json(self) -> dict[str, str]:
        return {"runId": self.run_id, "publicAccessToken": self.public_access_token}


def new_run_id() -> str:
    return "run_" + secrets.token_urlsafe(15).replace("-", "a").replace("_", "b")


def redis_unavailable(exc: redis.RedisError) -> RedisUnavailable:
    """The error callers get when Redis cannot be reached (the gateway answers 503)."""
    return RedisUnavailable(f"Redis is unreachable ({exc}); check CHATWORKER_REDIS_URL")


def start_run(
    task: TaskDefinition,
    payload: dict[str, Any] | ChatWirePayload,
    *,
    idempotency_key: str | None = None,
    principal: str | None = None,
) -> TriggerResult:
    """Create a run of ``task`` answering ``payload`` and send its start message (see
    :func:`chatworker.runs.trigger` for the rules)."""
    parsed = _cap_client_timeouts(task, parse_payload(payload, task))
    initial = parsed.to_wire_json()  # InvalidPayload here, before anything is written
    store = RunStore(get_redis())
    try:
        run_id = new_run_id()
        if idempotency_key:
            existing = store.remember_idempotency(task.id, principal or "", idempotency_key,
                                                  run_id)
            if existing is not None:
                token = create_run_token(existing, task.chat_access_token_ttl)
                return TriggerResult(existing, token)
        try:
            _create(store, task, run_id, parsed, initial, principal or "")
        except BaseException:
            if idempotency_key:  # a retry must not be handed a run that was never created
                store.forget_idempotency(task.id, principal or "", idempotency_key)
            raise
    except redis.RedisError as exc:
        raise redis_unavailable(exc) from exc
    task.enqueue(run_id)
    log.info("run %s: queued (task %s, chat %s)", run_id, task.id, parsed.chat_id)
    return TriggerResult(run_id, create_run_token(run_id, task.chat_access_token_ttl))


def max_warm_seconds(task: TaskDefinition) -> float:
    """The longest warm wait a client may ask of ``task``'s first turn: what it waits unasked
    (``preload_warm_timeout_in_seconds`` when set, else ``warm_timeout_in_seconds``)."""
    preload = getattr(task, "preload_warm_timeout_in_seconds", None)
    if preload is not None:
        return float(preload)
    return float(getattr(task, "warm_timeout_in_seconds", 0) or 0)


def _cap_client_timeouts(task: TaskDefinition, payload: ChatWirePayload) -> ChatWirePayload:
    """``warmTimeoutInSeconds`` capped by the task's own warm timeout."""
    asked = payload.warm_timeout_in_seconds
    if asked is None:
        return payload
    allowed = max_warm_seconds(task)
    if asked <= allowed:
        return payload
    log.info("task %s: warmTimeoutInSeconds %g capped at the task's %g", task.id, asked, allowed)
    return payload.model_copy(update={"warm_timeout_in_seconds": allowed})


def _create(
    store: RunStore,
    task: TaskDefinition,
    run_id: str,
    payload: ChatWirePayload,
    initial: str,
    principal: str = "",
) -> None:
    """The run's record and first message, in one script that also gives the run a start
    deadline: if no worker claims it in time (its Celery message was lost), it is sent again."""
    preload = payload.trigger == "preload"
    record: dict[str, str | int] = {
        "task_id": task.id,
        "chat_id": payload.chat_id,
        "status": "queued",
        "turn": 0,
        "accepted": 0 if preload else 1,
        "input_seq": 0,
        "max_turns": getattr(task, "max_turns", 0) or 0,
        "is_streaming": 0,
        "continuation": int(payload.continuation),
        "previous_run_id": payload.previous_run_id or "",
        "principal": principal,
        "initial": initial,
    }
    store.create(run_id, task_id=task.id, chat_id=payload.chat_id, record=record,
                 first_item=None if preload else "i0 " + stamp(initial))  # + trace context


