"""Carrying out a task tool call from the turn that made it.

The turn opens a call channel in Redis (``chatworker.store.task_calls``), sends the Celery task
with the call's id in a message header, and waits on the channel: a short blocking read at a
time, so under gevent the greenlet yields and the worker's other runs go on, and a stop is seen
within a fraction of a second. Progress chunks the task sends are written into the turn (so
they reach clients and the captured response); the task's result is the tool's output.

A stop or cancel of the run (or the tool's own abort signal, or its timeout) closes the call, so
the task's further sends are refused and ``chat.is_stopped()`` turns true inside it, and revokes
the Celery task without ``terminate``: a task still queued never starts, one already running is
left to notice and return (a shared worker process is never killed). The call then ends the way
any tool does when its turn stops.
"""

from __future__ import annotations

import logging
import time
import uuid
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

#: The longest a wait on the call's channel blocks before looking at the stop signal again.
POLL_MS = 200
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
    channel = TaskCallChannel(get_redis(), uuid.uuid4().hex)
    fence = getattr(scope.output.stream, "fence", None)
    channel.open(scope.driver.run_id, fence.token if fence is not None else "", _ttl())
    send = {"queue": call.queue} if call.queue else {}
    headers = {HEADER: channel.call_id, TOOL_CALL_HEADER: options.tool_call_id}
    sent = call.task.apply_async(kwargs=call.task_kwargs(args), headers=headers,
                                 **send, **call.send_options)
    log.info("run %s: tool call %s sent task %s (%s)", scope.driver.run_id,
             options.tool_call_id, sent.id, call.task.name)
    outcome = CANCELLED
    try:
        value = _wait(call, channel, scope, signal)
        outcome = DONE
        return value
    finally:
        channel.close(outcome)
        if outcome == CANCELLED:
            # Never terminate: the worker process may be running other tasks.
            call.task.app.control.revoke(sent.id)
            log.info("run %s: task %s revoked", scope.driver.run_id, sent.id)


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
        for entry_id, entry in channel.read(after, POLL_MS):
            after = entry_id
            kind = entry.get("kind")
            if kind == "chunk":
                if not signal.aborted:
                    scope.output.write(entry["chunk"])
            elif kind == "result":
                return entry.get("value")
            elif kind == "error":
                raise TaskToolError(str(entry.get("message") or "the task failed"))
            elif kind == "started":
                log.info("task %s started on %s (pid %s)", channel.call_id,
                         entry.get("hostname"), entry.get("pid"))


def _ttl() -> float:
    return max(TTL_SECONDS, lease_seconds() * 3)


install_task_runner(run_task_call)
