"""Inside a task a task tool sent: the call it answers, and its result sent back to the turn.

A task tool sends its Celery task with the call's id in the message header ``chatworker_call``.
In the task, :func:`current_task_call` finds that call (through Celery's ``current_task``), so
``chat.stream.write_data(...)`` streams ``data-*`` parts into the calling turn and
``chat.is_stopped()`` tells the task that the turn no longer waits (stopped, canceled, timed
out). Celery signal handlers, connected when chatworker is imported in the task's worker, send
the task's return value (or its error) back; so the worker running the task must import
chatworker (the module defining the task usually does, to stream progress).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

from celery import current_task
from celery.signals import task_failure, task_prerun, task_success

from ..config import get_redis
from ..store.task_calls import OPEN, CallClosed, TaskCallChannel

log = logging.getLogger("chatworker.task_tool")

#: The Celery message header carrying the call's id.
HEADER = "chatworker_call"
#: The Celery message header carrying the model's id of the tool call (``toolCallId``).
TOOL_CALL_HEADER = "chatworker_tool_call"


class TaskCall:
    """The task tool call the running Celery task answers."""

    def __init__(self, call_id: str, tool_call_id: str | None = None) -> None:
        self.call_id = call_id
        #: The ``toolCallId`` of the call in the chat (to tie progress to its tool part).
        self.tool_call_id = tool_call_id
        self.channel = TaskCallChannel(get_redis(), call_id)

    def write(self, chunk: dict[str, Any]) -> None:
        """Send a ``data-*`` chunk into the calling turn; :class:`CallClosed` once it ended."""
        kind = str(chunk.get("type", "")) if isinstance(chunk, dict) else ""
        if not kind.startswith("data-") or len(kind) <= len("data-"):
            raise ValueError(
                f"a task tool's task can stream only data-* parts, not {kind or chunk!r}"
            )
        self.channel.send({"kind": "chunk", "chunk": chunk})

    def write_data(self, name: str, data: Any, *, id: str | None = None,
                   transient: bool = False) -> None:
        """Send a ``data-<name>`` part (see ``chat.stream.write_data``)."""
        chunk: dict[str, Any] = {"type": f"data-{name}", "data": data}
        if id is not None:
            chunk["id"] = id
        if transient:
            chunk["transient"] = True
        self.write(chunk)

    def is_cancelled(self) -> bool:
        """True once the calling turn no longer waits: stopped, canceled, timed out or gone."""
        return self.channel.state() != OPEN


def current_task_call() -> TaskCall | None:
    """The call the Celery task running here answers, or None outside such a task."""
    task = current_task
    if task is None:
        return None
    call_id = _call_id(task.request)
    return TaskCall(call_id, _call_id(task.request, TOOL_CALL_HEADER)) if call_id else None


def _call_id(request: Any, name: str = HEADER) -> str | None:
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, dict):
            value = headers.get(name)
    return str(value) if value else None


def _send(sender: Any, entry: dict[str, Any]) -> None:
    call_id = _call_id(getattr(sender, "request", None))
    if not call_id:
        return
    try:
        TaskCallChannel(get_redis(), call_id).send(entry)
    except CallClosed:
        log.info("task tool call %s: the turn no longer waits; %s dropped", call_id,
                 entry["kind"])
    except Exception:
        log.exception("task tool call %s: could not send the task's %s", call_id, entry["kind"])


def _on_prerun(sender: Any = None, **_: Any) -> None:
    host = getattr(getattr(sender, "request", None), "hostname", None) or socket.gethostname()
    _send(sender, {"kind": "started", "hostname": host, "pid": os.getpid()})


def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    try:
        value = json.loads(json.dumps(_dumped(result)))
    except (TypeError, ValueError) as exc:
        _send(sender, {"kind": "error", "message": (
            f"the task returned a {type(result).__name__}, which is not JSON-serialisable "
            f"({exc}); return JSON data (a dict, list, string, number, bool or None)"
        )})
        return
    _send(sender, {"kind": "result", "value": value})


def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    text = str(exception).strip() if exception is not None else ""
    name = type(exception).__name__ if exception is not None else "error"
    _send(sender, {"kind": "error", "message": f"{name}: {text}" if text else name})


def _dumped(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


# Connected weakly by default; these module-level functions live as long as the process.
task_prerun.connect(_on_prerun)
task_success.connect(_on_success)
task_failure.connect(_on_failure)
