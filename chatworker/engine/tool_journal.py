"""The record of a chat's executed approved tool calls (``stream_text``'s ``ToolJournal``).

An approved call's result is written to Redis before the model is called with it, so a turn
re-run after a crash, an answer sent twice, or a continuation run that finds the approval in
its history uses the recorded result instead of executing the tool again.
"""

from __future__ import annotations

import json
from typing import Any

from ..store.run_store import RunStore

__all__ = ["RunToolJournal"]


class RunToolJournal:
    """The tool journal of one chat of a task, written by the run that owns it (fenced)."""

    def __init__(self, store: RunStore, run_id: str, token: str, task_id: str,
                 chat_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.token = token
        self.task_id = task_id
        self.chat_id = chat_id

    def recorded(self, key: str) -> dict[str, Any] | None:
        """The recorded entry of approval ``key``, if its call was executed."""
        raw = self.store.recorded_tool(self.task_id, self.chat_id, key)
        return _load(raw) if raw is not None else None

    def record(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Record ``entry`` unless approval ``key`` has one already; the entry kept."""
        kept = self.store.record_tool(self.run_id, self.token, task_id=self.task_id,
                                      chat_id=self.chat_id, approval_id=key,
                                      result=json.dumps(entry, separators=(",", ":")))
        return _load(kept) or entry


def _load(raw: str) -> dict[str, Any] | None:
    value = json.loads(raw)
    return value if isinstance(value, dict) else None
