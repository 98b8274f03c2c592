"""Carrying out a task tool call from the turn that made it.

The turn opens a call channel in Redis (``chatworker.store.task_calls``), sends the Celery task
with the call's id in a message header, and polls the channel: a non-blocking read, then a wait
on the stop signal for :data:`POLL_SECONDS` (so under gevent the greenlet yields and the
worker's other runs go on, no pooled Redis connection is held while waiting, and a stop is seen
at once). Progress chunks the task sends are written into the turn (so they reach clients and
the captured response); the task's result is the tool's output.

A stop or cancel of the run (or the tool's own abort signal, or its timeout) closes the call, so
the task's further sends are refused and ``chat.is_stopped()`` turns true inside it, and revokes
the Celery task without ``terminate``: a task still queued never starts, one already running is
left to notice and return (a shared worker process is never killed). The call then ends the way
any tool does when its turn stops.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..ai.task_tool import TaskToolCall, install_task_runner
from ..ai.tools import ToolCallOptions
from ..config import get_redis, lease_seconds
from ..errors import AbortError
from ..signals import AbortSignal, any_signal
from ..store.task_calls import CANCELLED, DONE, TaskCallChannel
from .task_context import HEADER, TOOL_CALL_HEADER
from .turns import TurnScope, current_scope

log = logging.getLogger("chatworker.task_tool")

#: How often the waiting turn reads the call's channel (a stop interrupts the wait at once).
POLL_SECONDS = 0.1
#: A call's keys outlive the waiting turn by this much when nobody renews them (a dead worker).
TTL_SECONDS = 60.0


class TaskToolError(Exception):
    """The task behind a task tool failed (raised, or returned something not JSON)."""


class TaskToolTimeout(TaskToolError):
    """The task did not answer within the tool's ``timeout``; it was revoked."""


def run_task_call(call: TaskToolCall, args: Any, options: ToolCallOptions) -> Any:
    """Send ``call.task`` with ``args``, relay its progress, and return its result."""
    scope = current_scope.get()
    if scope is None:
        raise RuntimeError("a task tool runs only while a chat turn is being answered")
    signal = any_signal([scope.signal, options.abort_signal])
    channel = TaskCallChannel.new(get_redis(), scope.driver.run_id)
    fence = getattr(scope.output.stream, "fence", None)
    channel.open(scope.driver.run_id, fence.token if fence is not None else "", _ttl())
    send = {"queue": call.queue} if call.queue else {}
    headers = {HEADER: channel.call_id, TOOL_CALL_HEADER: options.tool_call_id}
    task_id: str | None = None
    outcome = CANCELLED
    try:
        task_id = call.task.apply_async(kwargs=call.task_kwargs(args), headers=headers,
                                        **send, **call.send_options).id
        log.info("run %s: tool call %s sent task %s (%s)", scope.driver.run_id,
                 options.tool_call_id, task_id, call.task.name)
        try:
            value = _wait(call, channel, scope, signal)
        except TaskToolTimeout:
            raise
        except TaskToolError:
            outcome = DONE  # the task answered (with its error): nothing left to revoke
            raise
        outcome = DONE
        return value
    finally:
        _end(call, channel, outcome, task_id)


def _end(call: TaskToolCall, channel: TaskCallChannel, outcome: str, task_id: str | None) -> None:
    """Close the call (the task can send nothing more); revoke a task the turn gave up on."""
    try:
        channel.close(outcome)
    except Exception:
        log.exception("task tool call %s: could not close it", channel.call_id)
    if outcome != CANCELLED or task_id is None:
        return
    try:
        # Never terminate: the worker process may be running other tasks. Revoked, a task
        # still queued never starts; a running one sees chat.is_stopped() and returns.
        call.task.app.control.revoke(task_id)
        log.info("task tool call %s: task %s revoked", channel.call_id, task_id)
    except Exception:
        log.exception("task tool call %s: could not revoke task %s", channel.call_id, task_id)


def _wait(call: TaskToolCall, channel: TaskCallChannel, scope: TurnScope,
          signal: AbortSignal) -> Any:
    deadline = None if call.timeout is None else time.monotonic() + call.timeout
    renew_at = time.monotonic() + _ttl() / 3
    after = "0-0"
    while True:
        if signal.aborted:
            raise AbortError(str(signal.reason or "stopped"))
        if deadline is not None and time.monotonic() >= deadline:
            raise TaskToolTimeout(f"the task did not answer within {call.timeout:g}s")
        if time.monotonic() >= renew_at:
            channel.renew(_ttl())
            renew_at = time.monotonic() + _ttl() / 3
        entries = channel.read(after)
        if not entries:
            signal.wait(POLL_SECONDS)
        for entry_id, entry in entries:
            after = entry_id
            kind = entry.get("kind")
            if kind == "chunk":
                chunk = entry.get("chunk")
                if not signal.aborted and _is_data(chunk):
                    scope.output.write(chunk)
            elif kind == "result":
                return entry.get("value")
            elif kind == "error":
                raise TaskToolError(str(entry.get("message") or "the task failed"))
            elif kind == "started":
                log.info("task %s started on %s (pid %s)", channel.call_id,
                         entry.get("hostname"), entry.get("pid"))


def _is_data(chunk: Any) -> bool:
    kind = chunk.get("type") if isinstance(chunk, dict) else None
    return isinstance(kind, str) and kind.startswith("data-") and len(kind) > len("data-")


def _ttl() -> float:
    return max(TTL_SECONDS, lease_seconds() * 3)


install_task_runner(run_task_call)
