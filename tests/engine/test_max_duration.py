"""``max_duration``: the time a run holds a worker is capped; suspended time does not count."""

from __future__ import annotations

import time

import pytest
import redis

from chatworker import runs

from ..support import (
    events,
    payload,
    read_turn,
    read_until,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration

END = {"type": "__run_end", "status": "canceled", "reason": "max_duration"}


def _ended(chunk: dict[str, object]) -> bool:
    return chunk["type"] == "__run_end"


def test_a_streaming_turn_is_cut_at_max_duration(worker: object, r: redis.Redis,
                                                  chat_id: str) -> None:
    started = runs.trigger("capped", payload(chat_id, user_message("go"),
                                             metadata={"words": 200, "delay": 0.05}))
    entries = read_until(r, started.run_id, _ended)
    assert entries[-1][1] == END
    # The reply was closed as a cancel closes it: an abort, and not all 200 words.
    assert "abort" in types_of(entries)
    assert "w199" not in text_of(entries)
    assert runs.status(started.run_id).status == "canceled"


def test_a_warm_run_ends_at_a_max_duration_set_at_runtime(worker: object, r: redis.Redis,
                                                          chat_id: str) -> None:
    # The task waits warm for 60 s; chat.set_max_duration(1.5) in its run ends it sooner.
    started = runs.trigger("capped-at-runtime", payload(chat_id, user_message("hi")))
    turn = read_turn(r, started.run_id)
    assert types_of(turn)[-1] == "__turn_complete"
    entries = read_until(r, started.run_id, _ended, after=turn[-1][0])
    assert [c for _, c in entries] == [END]


def test_suspended_time_is_not_counted_and_held_time_survives_resume(
    worker: object, r: redis.Redis, chat_id: str
) -> None:
    # Cap 4 s. Turn 0 holds the worker about 1.3 s (10 words, then 0.3 s warm), then the run
    # suspends for longer than the whole cap: that time must not count.
    started = runs.trigger("capped", payload(chat_id, user_message("one"),
                                             metadata={"words": 10, "delay": 0.1}))
    first = read_turn(r, started.run_id)
    assert types_of(first)[-1] == "__turn_complete" and "w9" in text_of(first)
    wait_for(lambda: runs.status(started.run_id).status == "suspended")
    time.sleep(4.5)
    # Turn 1 would take 3.5 s: within the cap on its own, beyond what is left of it.
    runs.send_message(started.run_id, payload(chat_id, user_message("two"),
                                               metadata={"words": 35, "delay": 0.1}))
    second = read_until(r, started.run_id, _ended, after=first[-1][0])
    assert second[-1][1] == END
    # Had the suspended time counted, the run would have ended before a word of turn 1; had
    # the held time been lost on resume, turn 1 would have finished.
    assert "(turn 1)" in text_of(second) and "w34" not in text_of(second)
    assert "abort" in types_of(second)


def test_manual_task_max_duration_fires_its_signal(worker: object, r: redis.Redis,
                                                   chat_id: str) -> None:
    started = runs.trigger("manual-capped", payload(chat_id, user_message("go")))
    entries = read_until(r, started.run_id, _ended)
    assert entries[-1][1] == END
    assert "w199" not in text_of(entries)
    seen = wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "manual-capped"])
    assert seen == [{"hook": "manual-capped", "cancel_signal": True, "reason": "max_duration"}]
