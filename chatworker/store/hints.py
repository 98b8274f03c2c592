"""The bucketed global indexes as hints for the sweeps, repaired by the sweeps themselves.

A run's scripts touch only its own slot, so an index (``deadlines``, ``resuming``, ``active``)
can no longer change in the same atomic step as the run: the run record holds the truth
(``deadline``, ``start_due``, the lease's TTL) and the index only says which runs a sweep should
look at, and when. So:

- a hint a transition needs is written **before** it (a process dying in between leaves a hint
  too many, never a run nobody looks at again);
- a hint a transition makes useless is dropped after it, only up to the score it could have had
  (:func:`drop`), so a hint written meanwhile for a later transition of the same run stays;
- a sweep that finds a stale hint (the run's script says ``gone``) drops exactly the hint it saw
  (:func:`drop` with the score it read), and one that is early moves it to the run's own time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from . import keys
from .scripts import registered, run_in_order, run_many

#: The score bound of a drop that takes the hint whatever its score.
ANY = 2**53


def add(client: redis.Redis[str], index: str, run_ids: Iterable[str], delay_ms: int, *,
        only_new: bool = False) -> int:
    """Hint ``run_ids`` in ``index`` at Redis's time plus ``delay_ms`` (one script call per
    bucket, in one pipeline); returns that score (of the last bucket written: buckets written in
    one call differ by microseconds). ``only_new`` keeps the hints that exist and returns 0 when
    none was added."""
    by_bucket: dict[str, list[str]] = {}
    for run_id in run_ids:
        by_bucket.setdefault(keys.index(index, run_id), []).append(run_id)
    flag = "1" if only_new else "0"
    calls = [([key], [delay_ms, flag, *members]) for key, members in by_bucket.items()]
    if len(calls) == 1:
        replies: list[Any] = [registered(client)["hint"](keys=calls[0][0], args=calls[0][1])]
    else:
        replies = run_many(client, "hint", calls)
    score = 0
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
        if int(reply[1]) or not only_new:
            score = int(reply[0])
    return score


def add_then(client: redis.Redis[str], index: str, run_id: str, delay_ms: int,
             call: tuple[str, Sequence[str], Sequence[Any]]) -> tuple[int, Any]:
    """:func:`add` (``only_new``) of one run's hint, then the script ``call``, in one pipeline
    on one server (which runs them in this order); returns the hint's score (0: it existed)
    and the script's reply (raised if an error)."""
    hint = ("hint", [keys.index(index, run_id)], [delay_ms, "1", run_id])
    hinted, reply = run_in_order(client, [hint, call])
    for result in (hinted, reply):
        if isinstance(result, Exception):
            raise result
    return (int(hinted[0]) if int(hinted[1]) else 0), reply


def move(client: redis.Redis[str], index: str, run_id: str, score: int) -> None:
    """Move an existing hint to ``score`` (the run's own time); a dropped hint stays dropped."""
    client.zadd(keys.index(index, run_id), {run_id: score}, xx=True)


def drop(client: redis.Redis[str], index: str, run_id: str, upto: int = ANY) -> None:
    """Drop the hint of ``run_id`` if its score is at most ``upto``."""
    registered(client)["unhint"](keys=[keys.index(index, run_id)], args=[run_id, upto])


def drop_all(client: redis.Redis[str], run_id: str, indexes: Sequence[str]) -> None:
    """Drop the run's hints in ``indexes`` whatever their score (the run ended)."""
    pipe = client.pipeline(transaction=False)
    for index in indexes:
        pipe.zrem(keys.index(index, run_id), run_id)
    pipe.execute()


def due(client: redis.Redis[str], index: str, now: int, count: int) -> list[tuple[str, int]]:
    """Up to ``count`` hints of ``index`` due by ``now``, earliest first, from every bucket:
    ``(member, score)``."""
    pipe = client.pipeline(transaction=False)
    for key in keys.index_buckets(index):
        pipe.zrangebyscore(key, "-inf", now, start=0, num=count, withscores=True)
    merged = heapq.merge(*([(str(m), int(s)) for m, s in rows] for rows in pipe.execute()),
                         key=_order)
    return list(merged)[:count]


def _order(pair: tuple[str, float]) -> tuple[float, str]:
    """A sorted set's own order: by score, then by member."""
    return pair[1], pair[0]


def sizes(client: redis.Redis[str], index: str, upto: int | None = None) -> int:
    """How many hints ``index`` holds (scored at most ``upto`` when given), over its buckets."""
    pipe = client.pipeline(transaction=False)
    for key in keys.index_buckets(index):
        if upto is None:
            pipe.zcard(key)
        else:
            pipe.zcount(key, "-inf", upto)
    return sum(int(n) for n in pipe.execute())


def first(client: redis.Redis[str], index: str, count: int, *,
          newest: bool = False) -> list[tuple[str, float]]:
    """The ``count`` lowest-scored members of ``index`` (highest with ``newest``), merged over
    its buckets: ``(member, score)``."""
    if count <= 0:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys.index_buckets(index):
        if newest:
            pipe.zrevrange(key, 0, count - 1, withscores=True)
        else:
            pipe.zrange(key, 0, count - 1, withscores=True)
    rows = ([(str(m), float(s)) for m, s in part] for part in pipe.execute())
    return list(heapq.merge(*rows, key=_order, reverse=newest))[:count]
