"""Where chat tasks are registered by id, and how ``CHATWORKER_TASKS`` modules are loaded."""

from __future__ import annotations

import importlib
import logging
import os

from ..errors import TaskNotFound
from ..types import TaskDefinition

#: Any registered task: a chat task or a manual task.
AnyTask = TaskDefinition

log = logging.getLogger("chatworker.registry")

_tasks: dict[str, AnyTask] = {}


def register(task: AnyTask) -> None:
    """Record ``task`` under its id; a second task with the same id replaces the first."""
    if task.id in _tasks and _tasks[task.id] is not task:
        log.warning("chat task %r defined twice; the later definition wins", task.id)
    _tasks[task.id] = task


def get_task(task_id: str) -> AnyTask:
    """The task registered as ``task_id``; :class:`TaskNotFound` names the loaded ones."""
    try:
        return _tasks[task_id]
    except KeyError:
        known = ", ".join(sorted(_tasks)) or "none"
        raise TaskNotFound(
            f"no chat task {task_id!r} (loaded: {known}; set CHATWORKER_TASKS to the modules "
            "that define your tasks)"
        ) from None


def all_tasks() -> dict[str, AnyTask]:
    """Every registered task by id."""
    return dict(_tasks)


def load_tasks(modules: str | None = None) -> dict[str, AnyTask]:
    """Import the comma-separated ``modules`` (default ``CHATWORKER_TASKS``); return all tasks."""
    spec = os.environ.get("CHATWORKER_TASKS", "") if modules is None else modules
    for name in (m.strip() for m in spec.split(",")):
        if name:
            importlib.import_module(name)
    return all_tasks()
