"""Drive runs from Python: trigger, send, stop, cancel, inspect, read. The gateway uses this too.

Everything here talks to Redis only (plus the Celery broker to start or resume a run), so any
process that can reach Redis can drive any run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis

from .config import get_redis
from .engine.dispatch import enqueue
from .engine.payload import ChatWirePayload, parse_payload
from .engine.policy import INTERRUPTED, resolve
from .engine.registry import get_task
from .engine.start import TriggerResult, start_run
from .engine.start import redis_unavailable as _guard
from .errors import RunBusy, RunEnded, RunNotFound
from .store import streams
from .store.records import ENDED, RunInfo
from .store.run_store import RunStore
from .tracing import stamp

log = logging.getLogger("chatworker.runs")

__all__ = [
    "RunBusy",
    "RunInfo",
    "Sent",
    "TriggerResult",
    "cancel",
    "find_chat_run",
    "list_runs",
    "read_stream",
    "send",
    "send_message",
    "status",
    "stop",
    "tail_id",
    "task_of",
    "trigger",
    "wait_steered",
]


def _client() -> redis.Redis[str]:
    return get_redis()


def _store() -> RunStore:
    return RunStore(get_redis())


def trigger(
    task_id: str,
    payload: dict[str, Any] | ChatWirePayload,
    *,
    idempotency_key: str | None = None,
    principal: str | None = None,
) -> TriggerResult:
    """Start a run of ``task_id`` answering ``payload`` (a wire payload with the full history).

    ``principal`` is who the run belongs to (:attr:`chatworker.tokens.Claims.principal` of the
    token that asked for it, or ``tokens.subject_principal(user_id)``): only that principal
    reaches it through the ``/ui`` routes. With ``idempotency_key``, a retried call by the same
    principal returns the run the first call created; the same key from another principal is
    another request, and starts a run of its own. Raises :class:`InvalidPayload` (nothing is
    written) for a payload the run could not read: a schema failure, a lone surrogate in a
    string, nesting deeper than ``payload.MAX_DEPTH``.

    A client may ask for a shorter ``warmTimeoutInSeconds`` than the task's, never a longer one:
    the value is capped by the task's setting, so no client can hold a worker slot longer than
    the task allows.
    """
    return start_run(get_task(task_id), payload, idempotency_key=idempotency_key,
                     principal=principal)


def principal_of(run_id: str) -> str | None:
    """Who run ``run_id`` belongs to (``""`` when nobody was named); None when it is gone."""
    try:
        task_id, principal = _store().fields(run_id, "task_id", "principal")
    except redis.RedisError as exc:
        raise _guard(exc) from exc
    return None if task_id is None else str(principal or "")


#: run id → task id, for runs this process has sent to. A run's task never changes, so a
#: message costs one round trip (the send script), not two; emptied when it grows too large.
_task_ids: dict[str, str] = {}
_TASK_IDS_MAX = 10_000


def task_of(run_id: str) -> str:
    """The id of the task a run belongs to; :class:`RunNotFound` when Redis has no such run."""
    task_id = _task_ids.get(run_id)
    if task_id is not None:
        return task_id
    try:
        value = _store().fields(run_id, "task_id")[0]
    except redis.RedisError as exc:
        raise _guard(exc) from exc
    if value is None:
        raise RunNotFound(f"no run {run_id!r} (it never existed or has expired)")
    if len(_task_ids) >= _TASK_IDS_MAX:
        _task_ids.clear()  # a cache: refilled one lookup per run (clear is atomic across threads)
    task_id = _task_ids[run_id] = str(value)
    return task_id


Outcome = Literal["queued", "interrupted", "steering", "steered", "turn"]


@dataclass(frozen=True)
class Sent:
    """What :func:`send` did with a message.

    ``outcome``: ``queued`` (answered in its turn: no turn was streaming, or the policy was
    ``queue``), ``interrupted`` (the streaming turn is being stopped; this message is answered
    next), ``steering`` (it waits for the streaming turn's next step boundary; see
    :func:`wait_steered`), and after :func:`wait_steered`, ``steered`` (it joined that turn) or
    ``turn`` (the turn ended first: it is answered as a turn of its own).
    """

    input_id: str
    outcome: Outcome
    message_id: str | None = None  # the id of the (last) message sent


def send_message(run_id: str, payload: dict[str, Any] | ChatWirePayload) -> str:
    """Queue a message for the run; returns its ``inputId``.

    What it does while a turn of the run is streaming is its ``whileStreaming`` (or its task's
    ``while_streaming``) policy: see :func:`send`. Raises :class:`RunBusy` (nothing queued) for
    a ``reject`` while a turn streams, :class:`RunEnded` when the run will not answer it (ended,
    or ``max_turns`` reached counting messages already queued): start a continuation run
    instead, and :class:`InvalidPayload` (nothing is queued) for a payload the run could not read
    or a ``whileStreaming`` its task does not accept.
    """
    return send(run_id, payload).input_id


def send(run_id: str, payload: dict[str, Any] | ChatWirePayload) -> Sent:
    """:func:`send_message`, saying what the message's ``whileStreaming`` policy did
    (:class:`Sent`). A ``steer`` needs a ``submit-message`` ending with a user message; any
    other message is queued."""
    try:
        task_id = task_of(run_id)
        task = get_task(task_id)
        parsed = parse_payload(payload, task)
        policy = resolve(task, parsed.while_streaming)
        last = parsed.messages[-1] if parsed.messages else None
        if policy == "steer" and (parsed.trigger != "submit-message" or last is None
                                  or last.role != "user"):
            policy = "queue"
        wire = stamp(parsed.to_wire_json())  # with the sender's trace context, if traced
        verdict, detail, applied = _store().deliver(run_id, wire, policy, INTERRUPTED)
    except redis.RedisError as exc:
        raise _guard(exc) from exc
    if verdict == "missing":
        raise RunNotFound(f"no run {run_id!r} (it never existed or has expired)")
    if verdict == "busy":
        raise RunBusy(
            f"run {run_id} is answering another message ({detail}) and this message's "
            "whileStreaming policy is 'reject': nothing was queued; send it again once the "
            "reply is complete, or with another whileStreaming policy"
        )
    if verdict == "ended":
        raise RunEnded(
            f"run {run_id} has {detail}; trigger a continuation run with the full history"
        )
    if verdict == "full":
        raise RunEnded(
            f"run {run_id} reached its limit of {detail} turns; trigger a continuation run"
        )
    input_id = detail
    if verdict == "resume":
        log.info("run %s: resuming for %s", run_id, input_id)
        enqueue(run_id, str(task_id))
    outcomes: dict[str, Outcome] = {"interrupt": "interrupted", "steer": "steering"}
    return Sent(input_id, outcomes.get(applied, "queued"), last.id if last else None)


#: How often :func:`wait_steered` looks at the run record.
STEER_POLL_SECONDS = 0.05


def wait_steered(run_id: str, input_id: str, timeout: float) -> Outcome:
    """Wait until a message :func:`send` answered ``steering`` for is ``steered`` (it joined the
    streaming turn) or a ``turn`` of its own; ``steering`` still after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    store = _store()
    while True:
        try:
            found, run_status = store.fields(run_id, f"steer:{input_id}", "status")
        except redis.RedisError as exc:
            raise _guard(exc) from exc
        if found in ("delivered", "turn"):
            return "steered" if found == "delivered" else "turn"
        if found is None and run_status is not None:
            return "turn"  # it was not steered (no turn was streaming): it has a turn of its own
        if run_status is None or run_status in ENDED or time.monotonic() >= deadline:
            return "steering"
        time.sleep(STEER_POLL_SECONDS)


def stop(run_id: str, message: str | None = None, *, input_id: str | None = None) -> bool:
    """Stop the generation in progress (the run stays alive); False if nothing was stopped.

    With ``input_id`` (what :func:`send_message` returned) only that message's turn is stopped:
    now if it is streaming, or the moment it starts if it is still queued.
    """
    try:
        verdict = _store().stop(run_id, message or "stopped", input_id)
    except redis.RedisError as exc:
        raise _guard(exc) from exc
    if verdict == "missing":
        raise RunNotFound(f"no run {run_id!r}")
    return verdict in {"ok", "queued"}


def cancel(run_id: str, reason: str = "canceled") -> None:
    """End the run; its stream gets ``__run_end{status:"canceled"}``."""
    try:
        verdict = _store().cancel(run_id, reason)
    except redis.RedisError as exc:
        raise _guard(exc) from exc
    if verdict == "missing":
        raise RunNotFound(f"no run {run_id!r}")
    if verdict == "ended-now":
        log.info("run %s: canceled", run_id)


def status(run_id: str) -> RunInfo:
    """The run's current record."""
    try:
        info = _store().info(run_id, with_pending=True)
    except redis.RedisError as exc:
        raise _guard(exc) from exc
    if info is None:
        raise RunNotFound(f"no run {run_id!r}")
    return info


def read_stream(
    run_id: str, after: str | None = None, count: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Output entries ``(id, chunk)`` strictly after ``after`` (from the start when None).

    Raises :class:`StreamTrimmed` when entries after ``after`` were trimmed away (the stream
    keeps about ``CHATWORKER_STREAM_MAXLEN`` entries), :class:`StreamIdAhead` when ``after`` is
    beyond the stream's end, ``ValueError`` when it is not a stream id.
    """
    try:
        return streams.read(_client(), run_id, after, count)
    except redis.RedisError as exc:
        raise _guard(exc) from exc


def tail_id(run_id: str) -> str:
    """The id of the run's last output entry (``"0-0"`` when there is none)."""
    return streams.tail_id(_client(), run_id)


def find_chat_run(task_id: str, chat_id: str) -> str | None:
    """The latest run started for this chat of this task, if Redis still remembers it."""
    return _store().chat_run(task_id, chat_id)


def list_runs(limit: int = 50, *, include_ended: bool = True) -> list[RunInfo]:
    """The most recent runs, newest first."""
    store = _store()
    out = []
    for run_id in store.recent_run_ids(limit):
        info = store.info(run_id)
        if info is not None and (include_ended or info.status not in ENDED):
            out.append(info)
    return out
