"""How many runs are in each live state, from the store's indexes (a ``ZCARD``/``ZCOUNT`` per
index bucket, in one pipeline, whatever the number of runs: never a scan over runs). The
indexes are hints repaired by the sweeps (see :mod:`.hints`), so a count may lag a transition
by a sweep.

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
    for index in (keys.ACTIVE, keys.RESUMING, keys.DEADLINES, keys.RUNS):
        for key in keys.index_buckets(index):
            pipe.zcard(key)
    for key in keys.index_buckets(keys.ACTIVE):
        pipe.zcount(key, "-inf", now_ms)
    sizes = [int(v) for v in pipe.execute()]
    n = keys.BUCKETS
    active, pending, suspended, known, lapsed = (sum(sizes[i * n:(i + 1) * n]) for i in range(5))
    return {"owned": active - lapsed, "lapsed": lapsed, "pending": pending,
            "suspended": suspended, "known": known}
