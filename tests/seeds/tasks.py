"""Every seed-example task, sync and async: the test worker loads this module (CHATWORKER_TASKS)."""

from . import backend_async, backend_sync, levels_async, levels_sync

__all__ = ["backend_async", "backend_sync", "levels_async", "levels_sync"]
