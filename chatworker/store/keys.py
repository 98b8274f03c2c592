"""Every Redis key and channel chatworker uses, in one place.

All keys share the ``cw:`` prefix (``CHATWORKER_KEY_PREFIX`` changes it) so that one Redis
can serve several deployments and an operator can find everything with ``SCAN cw:*``.
"""

from __future__ import annotations

import hashlib
import os

PREFIX = os.environ.get("CHATWORKER_KEY_PREFIX", "cw")


def run(run_id: str) -> str:
    """Hash: the run record (task, chat, status, turn, owner, overrides...)."""
    return f"{PREFIX}:run:{run_id}"


def checkpoint(run_id: str) -> str:
    """String (JSON): the state a run needs to resume on another worker."""
    return f"{PREFIX}:run:{run_id}:state"


def output(run_id: str) -> str:
    """Stream: the UI message chunks and control chunks of the run, one field ``c``."""
    return f"{PREFIX}:run:{run_id}:out"


def output_channel(run_id: str) -> str:
    """Pub/Sub channel: every entry appended to the run's output stream, published as
    ``<entry id>\n<chunk json>`` by the append itself (``xadd()`` in ``lua/prelude.lua``, which
    publishes on the name of the stream it appends to).

    Named exactly like the stream: channels are a namespace of their own (not keys, and shared
    by every database of a server; the run id in the name keeps runs apart), and in a Redis
    Cluster a sharded channel (``SPUBLISH``) of this name lands in the stream key's slot. This is
    the one place the Python side derives it; the scripts use the stream key they were given.
    """
    return output(run_id)


def inbox(run_id: str) -> str:
    """List: wire payloads sent to the run and not yet taken by a turn."""
    return f"{PREFIX}:run:{run_id}:in"


def processing(run_id: str) -> str:
    """List: the payload the current turn is answering (reliable-queue move target)."""
    return f"{PREFIX}:run:{run_id}:processing"


def lease(run_id: str) -> str:
    """String with TTL: which worker owns the run right now."""
    return f"{PREFIX}:run:{run_id}:lease"


def run_keys(run_id: str) -> list[str]:
    """Every key of one run, in the order the ending scripts take them: run, inbox,
    processing, output, checkpoint, lease (an ended run's keys expire together)."""
    return [run(run_id), inbox(run_id), processing(run_id), output(run_id), checkpoint(run_id),
            lease(run_id)]


def idempotency(task_id: str, principal: str, key: str) -> str:
    """String: the run id a trigger by ``principal`` created with this ``Idempotency-Key``.

    The principal is hashed, so that neither it nor the key (both may contain ``:``) can make
    two principals' keys collide.
    """
    who = hashlib.sha256(principal.encode()).hexdigest()[:32]
    return f"{PREFIX}:idem:{task_id}:{who}:{key}"


def token_use(jti: str) -> str:
    """String with TTL: marks a one-time trigger token as spent."""
    return f"{PREFIX}:jti:{jti}"


def wake_channel(worker_id: str) -> str:
    """Pub/Sub channel: tells one worker process that a run it owns has news."""
    return f"{PREFIX}:wake:{worker_id}"


def hub_wake(hub_id: str) -> str:
    """Pub/Sub channel: wakes one gateway process's hub reader (``hub_id`` is random per
    process), which listens on the same connection as for :func:`output_channel`."""
    return f"{PREFIX}:hub:{hub_id}"


#: Sorted set: suspended runs scored by the time their turn timeout ends them.
DEADLINES = f"{PREFIX}:deadlines"
#: Sorted set: runs ``queued`` or ``resuming`` until a worker claims them, scored by when their
#: start is overdue (a lost Celery message is then sent again).
RESUMING = f"{PREFIX}:resuming"
#: Sorted set: runs with a live owner, scored by when the owner's lease runs out.
ACTIVE = f"{PREFIX}:active"
#: Sorted set: every known run scored by creation time (for ``chatworker runs``).
RUNS = f"{PREFIX}:runs"
#: Sorted set: live worker processes scored by their last heartbeat.
WORKERS = f"{PREFIX}:workers"
#: String: the signing secret generated in dev mode, shared by workers and gateways.
DEV_SECRET = f"{PREFIX}:dev-secret"


def queue_slots(name: str) -> str:
    """Sorted set: run ids holding a slot of a concurrency-limited queue, scored by lease expiry."""
    return f"{PREFIX}:queue:{name}:slots"


def queue_waiting(name: str) -> str:
    """List: run ids waiting for a slot of a concurrency-limited queue, oldest first."""
    return f"{PREFIX}:queue:{name}:waiting"


def chat_run(task_id: str, chat_id: str) -> str:
    """String: the latest run of a chat (used by the AI SDK compatible ``/ui`` routes)."""
    return f"{PREFIX}:chat:{task_id}:{chat_id}"


def tool_outputs(task_id: str, chat_id: str) -> str:
    """Hash: approval id → the recorded result of that approved tool call, for one chat of a
    task (kept across its runs, so that no approved call executes twice)."""
    return f"{PREFIX}:chat:{task_id}:{chat_id}:tools"


#: Hash: concurrency-limited queue name → its limit.
QUEUES = f"{PREFIX}:queues"


def queue_kick(name: str) -> str:
    """String with a short TTL: debounces re-enqueueing the head of a queue's waiting line."""
    return f"{PREFIX}:queue:{name}:kick"


def task_call(call_id: str) -> str:
    """Hash with TTL: one task tool call: its run, the run's lease token, its state
    (``open`` while the turn waits for it, then ``done`` or ``cancelled``)."""
    return f"{PREFIX}:call:{call_id}"


def task_call_output(call_id: str) -> str:
    """Stream with TTL: what a task tool call's task sent back: progress chunks, its result."""
    return f"{PREFIX}:call:{call_id}:out"
