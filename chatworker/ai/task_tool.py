"""``task_tool``: a tool whose execution is a Celery task, run on the task's own queue.

The tool is defined here, with the model-facing parts (description, parameters); how a call is
carried out (dispatch, waiting without holding the worker, relaying the task's progress into the
turn, revoking on a stop) belongs to the chat run and is installed by it
(:func:`install_task_runner`; ``chatworker.engine.task_calls`` does so on import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from chatworker.config import Duration, parse_duration

from .tools import Tool, ToolCallOptions

__all__ = ["TaskToolCall", "install_task_runner", "task_tool"]


@dataclass(frozen=True)
class TaskToolCall:
    """What a task tool sends: the Celery task, where to, and for how long to wait at most.

    Called with the validated arguments as the tool's ``execute``.
    """

    task: Any
    queue: str | None = None
    timeout: float | None = None
    send_options: dict[str, Any] = field(default_factory=dict)

    def task_kwargs(self, args: Any) -> dict[str, Any]:
        """The tool's arguments as the task's keyword arguments (JSON data)."""
        if isinstance(args, BaseModel):
            return args.model_dump(mode="json")
        return dict(args)

    def __call__(self, args: Any, options: ToolCallOptions) -> Any:
        if _runner is None:
            raise RuntimeError(
                "a task tool runs inside a chat run on a chatworker worker (import chatworker)"
            )
        return _runner(self, args, options)


TaskRunner = Callable[[TaskToolCall, Any, ToolCallOptions], Any]
_runner: TaskRunner | None = None


def install_task_runner(runner: TaskRunner) -> None:
    """Set how task tool calls are carried out (done once, by the chat engine)."""
    global _runner
    _runner = runner


def task_tool(
    celery_task: Any,
    *,
    description: str | None = None,
    parameters: type[BaseModel] | dict[str, Any],
    queue: str | None = None,
    timeout: Duration | None = None,
    **send_options: Any,
) -> Tool:
    """A tool whose ``execute`` is ``celery_task``, sent to its queue and awaited.

    The task is called with the validated arguments as keyword arguments (a pydantic model's
    fields, or the JSON object); its return value, which must be JSON-serialisable (a pydantic
    model is dumped), is the tool's output, and an exception it raises is the tool's error.
    ``queue`` overrides the task's routing; other keyword arguments (``priority``, ...) go to
    ``apply_async``. ``timeout`` gives up on (and revokes) a task that has not answered in
    time; without it the call waits as long as the turn does. ``description`` defaults to the
    first line of the task's docstring.
    """
    if description is None:
        doc = (getattr(celery_task, "__doc__", None) or "").strip()
        description = doc.splitlines()[0] if doc else None
    call = TaskToolCall(
        task=celery_task,
        queue=queue,
        timeout=None if timeout is None else parse_duration(timeout),
        send_options=dict(send_options),
    )
    return Tool(description=description, parameters=parameters, execute=call)
