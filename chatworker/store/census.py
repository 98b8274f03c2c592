"""How many runs are in each live state, from the store's indexes (a few ``ZCARD``/``ZCOUNT``
per call, whatever the number of runs: never a scan over runs).

Ended runs are not indexed by status (their keys expire), so they are not counted here; the
workers' ``chatworker_turns_total`` and the run-state log lines count those.
"""

from __future__ import annotations

import redis

from . import keys

#: The states :func:`run_counts` reports.
STATES = ("owned", "lapsed", "pending", "suspended")


def run_counts(client: redis.Redis[str]) -> dict[str, int]:
    """Runs by live state: ``owned`` (a live worker holds it: streaming or waiting warm),
    ``lapsed`` (its owner stopped renewing the lease and no sweep has recovered it yet),
    ``pending`` (queued or resuming: waiting for a worker to claim it), ``suspended`` (no
    worker held; resumes on its next message), and ``known`` (every run still indexed)."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.ACTIVE)
    pipe.zcount(keys.ACTIVE, "-inf", now_ms)
    pipe.zcard(keys.RESUMING)
    pipe.zcard(keys.DEADLINES)
    pipe.zcard(keys.RUNS)
    active, lapsed, pending, suspended, known = (int(v) for v in pipe.execute())
    return {"owned": active - lapsed, "lapsed": lapsed, "pending": pending,
            "suspended": suspended, "known": known}
