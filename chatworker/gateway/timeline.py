"""A run's timeline for the dashboard, derived from its control chunks and its record.

The output stream holds each turn's ``__turn_start`` and ``__turn_complete`` (with ``stopped``),
the ``abort`` a recovery writes over a lost worker's partial reply, ``error`` chunks and the
``__run_end``; an entry's id is the millisecond it was written. The record adds when the run
was created and when it last suspended (a turn starting after that is its resume) and how many
recoveries it had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["timeline"]


def _ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0] or 0)


def _event(at: int, kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"at": at, "kind": kind, "text": text, **extra}


def timeline(record: Mapping[str, str],
             chunks: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Events ``{at (ms), kind, text, ...}`` oldest first. Kinds: ``created``, ``turn``,
    ``turn-end``, ``stopped``, ``recovered``, ``error``, ``suspended``, ``resumed``, ``ended``."""
    events: list[dict[str, Any]] = []
    created = int(record.get("created_at") or 0)
    if created:
        events.append(_event(created, "created", f"run created for task {record.get('task_id')}"))
    suspended_at = int(record.get("suspended_at") or 0)
    resumed = False
    for entry_id, chunk in chunks:
        at, kind = _ms(entry_id), chunk.get("type")
        if kind == "__turn_start":
            turn = chunk.get("turn")
            if suspended_at and at > suspended_at and not resumed:
                events.append(_event(suspended_at, "suspended", "suspended (worker slot freed)"))
                events.append(_event(at, "resumed", f"resumed for turn {turn}"))
                resumed = True
            trigger = chunk.get("trigger") or "submit-message"
            events.append(_event(at, "turn", f"turn {turn} started ({trigger})", turn=turn,
                                 entryId=entry_id))
        elif kind == "__turn_complete":
            turn = chunk.get("turn")
            if chunk.get("stopped"):
                events.append(_event(at, "stopped", f"turn {turn} stopped", turn=turn))
            else:
                events.append(_event(at, "turn-end", f"turn {turn} completed", turn=turn))
        elif kind == "abort":
            # a stop's abort is followed by the turn's marker (``stopped``), which says it
            if chunk.get("reason") == "worker lost":
                events.append(_event(at, "recovered",
                                     "worker lost: the turn's message was queued again"))
        elif kind == "error":
            events.append(_event(at, "error", f"error: {chunk.get('errorText', '')}"))
        elif kind == "__run_end":
            end_reason = chunk.get("reason")
            events.append(_event(at, "ended", f"run {chunk.get('status')}"
                                 + (f" ({end_reason})" if end_reason else "")))
    if suspended_at and not resumed and record.get("status") == "suspended":
        events.append(_event(suspended_at, "suspended", "suspended (worker slot freed)"))
    recoveries = int(record.get("recoveries") or 0)
    shown = sum(1 for e in events if e["kind"] == "recovered")
    if recoveries > shown:
        events.append(_event(int(record.get("updated_at") or 0), "recovered",
                             f"{recoveries - shown} recovery(ies) between turns (no partial "
                             "reply to close)"))
    events.sort(key=lambda e: e["at"])
    return events
