"""The operator's view of the runs: pages of the runs index, live counts, workers, timelines.

Every read here costs work in proportion to what it returns, never to how many runs Redis
holds: a page walks the runs index (newest first) a window at a time, reading only the fields it
shows in one pipeline per window, and gives up after a fixed budget of runs examined (a filtered
page that found too few runs says where to go on; the index is split into buckets, each read down
to the page's position and merged); the counts are the sizes of the sorted sets the engine keeps
anyway.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import redis

from . import hints, keys

#: Runs examined at most by one page request (so a rare filter cannot make a request slow).
SCAN_BUDGET = 2000
#: Runs read per pipeline while walking the index.
WINDOW = 200
#: The fields of the run record a row of the runs list shows.
ROW_FIELDS = ("task_id", "chat_id", "status", "turn", "owner", "is_streaming", "created_at",
              "updated_at", "suspended_at", "recoveries", "reason")
#: Output entries examined at most when deriving a run's timeline.
TIMELINE_ENTRIES = 20_000
#: The stream chunks a timeline shows.
CONTROL_TYPES = ("__turn_start", "__turn_complete", "__run_end", "abort", "error")


@dataclass
class RunsPage:
    """A page of the runs list: its rows, where the next page starts (None: the index ends),
    and how many runs of the index it examined."""

    rows: list[dict[str, Any]]
    next_offset: int | None
    scanned: int


def _row(run_id: str, values: list[Any]) -> dict[str, Any] | None:
    data = dict(zip(ROW_FIELDS, values, strict=True))
    if not data.get("status"):
        return None  # expired since it was indexed
    status = str(data["status"])
    created = int(data.get("created_at") or 0)
    updated = int(data.get("updated_at") or 0)
    suspended = int(data.get("suspended_at") or 0)
    if status == "suspended":
        waiting_since: int | None = suspended or updated
    elif status in ("waiting", "queued", "resuming"):
        waiting_since = updated or created
    else:
        waiting_since = None
    return {
        "runId": run_id,
        "taskId": str(data.get("task_id") or ""),
        "chatId": str(data.get("chat_id") or ""),
        "status": status,
        "turn": int(data.get("turn") or 0),
        "isStreaming": data.get("is_streaming") == "1",
        "owner": str(data.get("owner") or "") or None,
        "createdAt": created,
        "updatedAt": updated,
        "waitingSince": waiting_since,
        "recoveries": int(data.get("recoveries") or 0),
        "reason": str(data.get("reason") or "") or None,
    }


class RunIndex:
    """Read-only views of one Redis's runs for the dashboard."""

    def __init__(self, client: redis.Redis[str]) -> None:
        self.client = client

    def counts(self) -> dict[str, int]:
        """Runs indexed, owned by a live worker, suspended, waiting for a worker to start them,
        and workers that have beaten — five sizes in one round trip."""
        total, owned, suspended, starting, workers = (
            hints.sizes(self.client, name)
            for name in (keys.RUNS, keys.ACTIVE, keys.DEADLINES, keys.RESUMING, keys.WORKERS))
        return {"total": total, "owned": owned, "suspended": suspended, "starting": starting,
                "workers": workers}

    def page(self, offset: int, limit: int, *, statuses: Collection[str] = (),
             task_id: str | None = None, budget: int = SCAN_BUDGET) -> RunsPage:
        """Up to ``limit`` runs from position ``offset`` of the index (newest first) that match
        the filters (``statuses`` may name ``active`` for every run not ended), examining at
        most ``budget`` runs."""
        wanted = set(statuses)
        if "active" in wanted:
            wanted.discard("active")
            wanted.update(s for s in ("queued", "running", "waiting", "suspended", "resuming"))
        rows: list[dict[str, Any]] = []
        position = offset
        # The merged index down to the page's depth: one read per bucket, read again deeper
        # only if expired runs left an unfiltered page short.
        newest: list[str] = []
        depth = offset + (budget if (wanted or task_id) else limit)
        while len(rows) < limit and position - offset < budget:
            size = min(WINDOW if (wanted or task_id) else limit - len(rows),
                       budget - (position - offset))
            if position + size > len(newest) and (not newest or len(newest) >= depth):
                depth = max(depth, position + size)
                newest = self._newest(0, depth)
            ids = newest[position:position + size]
            if not ids:
                return RunsPage(rows, None, position - offset)
            pipe = self.client.pipeline(transaction=False)
            for run_id in ids:
                pipe.hmget(keys.run(run_id), list(ROW_FIELDS))
            for index, (run_id, values) in enumerate(zip(ids, pipe.execute(), strict=True)):
                row = _row(run_id, values)
                if row is None or (wanted and row["status"] not in wanted):
                    continue
                if task_id and row["taskId"] != task_id:
                    continue
                rows.append(row)
                if len(rows) == limit:
                    position += index + 1
                    break
            else:
                position += len(ids)
        more = position < hints.sizes(self.client, keys.RUNS)
        return RunsPage(rows, position if more else None, position - offset)

    def _newest(self, position: int, size: int) -> list[str]:
        """Run ids at positions ``position`` .. ``position + size - 1`` of the runs index, newest
        first, merged over its buckets (each bucket read up to that depth)."""
        merged = hints.first(self.client, keys.RUNS, position + size, newest=True)
        return [run_id for run_id, _ in merged[position:position + size]]

    def workers(self) -> list[tuple[str, float]]:
        """``(worker id, last heartbeat as a Unix time)``, most recent beat first."""
        return hints.first(self.client, keys.WORKERS, 2**31, newest=True)

    def owned(self, limit: int) -> list[tuple[str, str, str]]:
        """Up to ``limit`` runs with a live owner: ``(run id, owner worker, status)``."""
        ids = [run_id for run_id, _ in hints.first(self.client, keys.ACTIVE, limit)]
        pipe = self.client.pipeline(transaction=False)
        for run_id in ids:
            pipe.hmget(keys.run(run_id), ["owner", "status"])
        return [(run_id, str(owner or ""), str(status or ""))
                for run_id, (owner, status) in zip(ids, pipe.execute(), strict=True)]

    def control_chunks(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The run's control chunks (turn starts and ends, aborts, errors, its end) with their
        entry ids, oldest first; at most :data:`TIMELINE_ENTRIES` entries are examined."""
        out: list[tuple[str, dict[str, Any]]] = []
        start, seen = "-", 0
        while seen < TIMELINE_ENTRIES:
            batch = self.client.xrange(keys.output(run_id), start, "+", count=1000)
            if not batch:
                break
            seen += len(batch)
            for entry_id, fields in batch:
                raw = str(fields.get("c", ""))
                if not any(f'"{kind}"' in raw for kind in CONTROL_TYPES):
                    continue
                try:
                    chunk = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(chunk, dict) and chunk.get("type") in CONTROL_TYPES:
                    out.append((str(entry_id), chunk))
            start = "(" + str(batch[-1][0])
        return out
