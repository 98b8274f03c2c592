"""Every Redis key and channel chatworker uses, in one place.

All keys share the ``cw:`` prefix (``CHATWORKER_KEY_PREFIX`` changes it) so that one Redis
can serve several deployments and an operator can find everything with ``SCAN cw:*``.

Keys are laid out for Redis Cluster, and the same layout serves a single server:

- every key of one run carries the run id as its hash tag (``cw:{<runId>}:...``), so each
  run's scripts touch one slot;
- the global indexes (runs by lease expiry, suspended runs' deadlines, runs waiting to start,
  the runs list, worker heartbeats, concurrency groups) are split into :data:`BUCKETS` hash-tagged
  buckets (``cw:{idx:<n>}:...``), the bucket derived from the member (:func:`bucket`); the
  sweeps walk every bucket. They are hints: the run record holds the truth (see
  docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import zlib

PREFIX = os.environ.get("CHATWORKER_KEY_PREFIX", "cw")

#: How many buckets each global index is split into. Fixed: changing it would orphan entries.
BUCKETS = 16


def bucket(member: str) -> int:
    """The index bucket of ``member`` (a run id, a worker id, a queue name)."""
    return zlib.crc32(member.encode()) % BUCKETS


def _tag(run_id: str) -> str:
    return f"{PREFIX}:{{{run_id}}}"


def run(run_id: str) -> str:
    """Hash: the run record (task, chat, status, turn, owner, overrides...)."""
    return f"{_tag(run_id)}:run"


def checkpoint(run_id: str) -> str:
    """String (JSON): the state a run needs to resume on another worker."""
    return f"{_tag(run_id)}:state"


def output(run_id: str) -> str:
    """Stream: the UI message chunks and control chunks of the run, one field ``c``."""
    return f"{_tag(run_id)}:out"


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
    return f"{_tag(run_id)}:in"


def processing(run_id: str) -> str:
    """List: the payload the current turn is answering (reliable-queue move target)."""
    return f"{_tag(run_id)}:processing"


def lease(run_id: str) -> str:
    """String with TTL: which worker owns the run right now."""
    return f"{_tag(run_id)}:lease"


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


def _index(name: str, member: str) -> str:
    return f"{PREFIX}:{{idx:{bucket(member)}}}:{name}"


def _buckets(name: str) -> list[str]:
    return [f"{PREFIX}:{{idx:{n}}}:{name}" for n in range(BUCKETS)]


#: The global indexes (sorted sets, each split into :data:`BUCKETS` buckets; members are run ids
#: unless said otherwise):
#: ``deadlines``: suspended runs scored by the time their turn timeout ends them;
#: ``resuming``: runs ``queued`` or ``resuming`` until a worker claims them, scored by when their
#: start is overdue (a lost Celery message is then sent again);
#: ``active``: runs with a live owner, scored by when the owner's lease runs out;
#: ``runs``: every known run scored by creation time (for ``chatworker runs``);
#: ``workers``: live worker processes (worker ids) scored by their last heartbeat.
DEADLINES, RESUMING, ACTIVE, RUNS, WORKERS = "deadlines", "resuming", "active", "runs", "workers"
INDEXES = (DEADLINES, RESUMING, ACTIVE, RUNS, WORKERS)


def index(name: str, member: str) -> str:
    """The bucket of index ``name`` (one of :data:`INDEXES`) that holds ``member``."""
    return _index(name, member)


def index_buckets(name: str) -> list[str]:
    """Every bucket of index ``name``, in bucket order."""
    return _buckets(name)


#: String: the signing secret generated in dev mode, shared by workers and gateways.
DEV_SECRET = f"{PREFIX}:dev-secret"


def queue_slots(name: str) -> str:
    """Sorted set: run ids holding a slot of a concurrency-limited queue, scored by lease expiry."""
    return f"{PREFIX}:{{queue:{name}}}:slots"


def queue_waiting(name: str) -> str:
    """List: run ids waiting for a slot of a concurrency-limited queue, oldest first."""
    return f"{PREFIX}:{{queue:{name}}}:waiting"


def chat_run(task_id: str, chat_id: str) -> str:
    """String: the latest run of a chat (used by the AI SDK compatible ``/ui`` routes)."""
    return f"{PREFIX}:{{chat:{task_id}:{chat_id}}}:latest"


def tool_outputs(task_id: str, chat_id: str) -> str:
    """Hash: approval id → the recorded result of that approved tool call, for one chat of a
    task (kept across its runs, so that no approved call executes twice)."""
    return f"{PREFIX}:{{chat:{task_id}:{chat_id}}}:tools"


def queues(name: str) -> str:
    """Hash: concurrency-limited queue name → its limit (the bucket holding ``name``)."""
    return f"{PREFIX}:{{idx:{bucket(name)}}}:queues"


def queue_buckets() -> list[str]:
    """Every bucket of the concurrency-limited queues' hash."""
    return _buckets("queues")


def queue_kick(name: str) -> str:
    """String with a short TTL: debounces re-enqueueing the head of a queue's waiting line."""
    return f"{PREFIX}:{{queue:{name}}}:kick"


def new_call_id(run_id: str, nonce: str) -> str:
    """A task tool call's id: its run's id and a nonce, so that its keys share the run's slot
    (the ``call_send`` script checks the call and the run's lease together)."""
    return f"{run_id}.{nonce}"


def _call_tag(call_id: str) -> str:
    run_id, dot, _ = call_id.rpartition(".")
    return _tag(run_id if dot else call_id)


def task_call(call_id: str) -> str:
    """Hash with TTL: one task tool call: its run, the run's lease token, its state
    (``open`` while the turn waits for it, then ``done`` or ``cancelled``)."""
    return f"{_call_tag(call_id)}:call:{call_id}"


def task_call_output(call_id: str) -> str:
    """Stream with TTL: what a task tool call's task sent back: progress chunks, its result."""
    return f"{_call_tag(call_id)}:call:{call_id}:out"
