"""Durable means durable: no run waits forever for a lost message, every ended run's keys
expire, a worker that lost its lease writes nothing, clocks that disagree change nothing, and
every stop asked for is honoured. Real Redis, real worker processes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from chatworker import runs
from chatworker.engine.driver import RunDriver
from chatworker.engine.mailbox import Mailbox
from chatworker.engine.registry import get_task
from chatworker.store import keys
from chatworker.store.scripts import LeaseLost, redis_now_ms

from ..conftest import worker_env
from ..support import (
    Worker,
    isolated_db,
    payload,
    read_turn,
    running_worker,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration

SKEWED_CLOCK = Path(__file__).parent / "skewed_clock"


def lose_start_messages(r: redis.Redis) -> None:
    """What a worker dying between taking a run's Celery message and claiming the run leaves
    behind: the message is gone from the broker, the run is still waiting to be started."""
    lost = list(r.scan_iter("chat*"))
    assert lost, "no Celery message was waiting in the broker"
    r.delete(*lost)


def run_keys_left(r: redis.Redis, run_id: str) -> dict[str, int]:
    """Every key of the run that Redis still holds, with its TTL in seconds (-1: kept forever)."""
    return {key: int(r.ttl(key)) for key in keys.run_keys(run_id) if r.exists(key)}


def quiet_mailbox() -> Mailbox:
    """A mailbox without its threads: the test plays the worker process and its sweeper."""
    mailbox = Mailbox()
    mailbox._started = True
    return mailbox


# -- 1. no run waits forever --------------------------------------------------------------------
def test_a_queued_run_whose_start_message_was_lost_still_starts(redis_url: str,
                                                                chat_id: str) -> None:
    with isolated_db(redis_url, 13) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        started = runs.trigger("echo", payload(chat_id, user_message("hello")))
        lose_start_messages(r)
        with running_worker(worker_env(url), name="late"):
            entries = read_turn(r, started.run_id, timeout=40)
            assert text_of(entries).strip() == "echo: hello (turn 0)"
            assert types_of(entries).count("__turn_start") == 1


def test_a_resuming_run_whose_message_was_lost_still_resumes(redis_url: str,
                                                             chat_id: str) -> None:
    with isolated_db(redis_url, 13) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        with running_worker(worker_env(url), name="first"):
            started = runs.trigger("instant", payload(chat_id, user_message("one")))
            turn0 = read_turn(r, started.run_id)
            wait_for(lambda: runs.status(started.run_id).status == "suspended")
        runs.send_message(started.run_id, payload(chat_id, user_message("two")))
        assert runs.status(started.run_id).status == "resuming"
        lose_start_messages(r)
        with running_worker(worker_env(url), name="second"):
            turn1 = read_turn(r, started.run_id, after=turn0[-1][0], timeout=40)
            assert text_of(turn1).strip() == "echo: two (turn 1)"
            assert types_of(turn1).count("__turn_start") == 1


# -- 2. every ended run's keys expire -----------------------------------------------------------
def test_every_way_a_run_ends_sets_its_retention(redis_url: str, chat_id: str,
                                                 worker: Worker) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    # Suspended, then no message before the turn timeout (2 s): ended by the sweep.
    timed_out = runs.trigger("brief", payload(chat_id + "-t", user_message("t")))
    # Suspended, then canceled.
    asleep = runs.trigger("instant", payload(chat_id + "-s", user_message("s")))
    read_turn(r, asleep.run_id)
    wait_for(lambda: runs.status(asleep.run_id).status == "suspended")
    runs.cancel(asleep.run_id)
    # Answered to the end by its worker (canceled while waiting warm).
    warm = runs.trigger("echo", payload(chat_id + "-w", user_message("w")))
    read_turn(r, warm.run_id)
    runs.cancel(warm.run_id)
    wait_for(lambda: runs.status(timed_out.run_id).reason == "turn_timeout", timeout=30)
    wait_for(lambda: runs.status(warm.run_id).ended, timeout=10)
    for handle in (timed_out, asleep, warm):
        left = run_keys_left(r, handle.run_id)
        assert keys.run(handle.run_id) in left and keys.output(handle.run_id) in left
        assert all(ttl > 0 for ttl in left.values()), left


def test_canceling_a_queued_run_sets_its_retention(redis_url: str, chat_id: str) -> None:
    with isolated_db(redis_url, 13) as url:  # no worker here: the run stays queued
        r = redis.Redis.from_url(url, decode_responses=True)
        started = runs.trigger("echo", payload(chat_id, user_message("never answered")))
        runs.cancel(started.run_id)
        left = run_keys_left(r, started.run_id)
        assert keys.inbox(started.run_id) in left
        assert all(ttl > 0 for ttl in left.values()), left


def test_the_runs_index_forgets_runs_whose_keys_expired(redis_url: str, chat_id: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATWORKER_RETENTION", "1s")
    with isolated_db(redis_url, 13) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        ended = [runs.trigger("echo", payload(f"{chat_id}-{i}", user_message("x")))
                 for i in range(5)]
        kept = runs.trigger("echo", payload(chat_id + "-kept", user_message("y")))
        for handle in ended:
            runs.cancel(handle.run_id)
        wait_for(lambda: not any(r.exists(keys.run(h.run_id)) for h in ended), timeout=10)
        indexed = keys.index_buckets(keys.RUNS)
        assert sum(r.zcard(key) for key in indexed) == 6
        quiet_mailbox()._trim()
        assert [run_id for key in indexed for run_id in r.zrange(key, 0, -1)] == [kept.run_id]


# -- 7. clocks that disagree ---------------------------------------------------------------------
def test_a_worker_whose_clock_runs_ahead_does_not_end_runs_early(redis_url: str,
                                                                 chat_id: str) -> None:
    with isolated_db(redis_url, 14) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        with running_worker(worker_env(url), name="on-time"):
            started = runs.trigger("instant", payload(chat_id, user_message("hi")))  # 60 s
            read_turn(r, started.run_id)
            wait_for(lambda: runs.status(started.run_id).status == "suspended")
        skewed = worker_env(url, CHATWORKER_TEST_CLOCK_SKEW="90",
                            PYTHONPATH=os.pathsep.join(
                                filter(None, [str(SKEWED_CLOCK), os.environ.get("PYTHONPATH")])))
        with running_worker(skewed, name="ahead") as ahead:
            # The worker's own clock reads 90 s ahead: past the run's 60 s turn timeout.
            wait_for(lambda: "mailbox started" in ahead.log(), timeout=20)
            time.sleep(5)  # it sweeps deadlines every second
            info = runs.status(started.run_id)
            assert info.status == "suspended", info
            due = r.zscore(keys.index(keys.DEADLINES, started.run_id), started.run_id)
            assert due is not None and due > redis_now_ms(r) + 40_000


# -- 8. a worker that lost its lease writes nothing ----------------------------------------------
def test_an_owner_that_lost_its_lease_writes_nothing_more(redis_url: str, chat_id: str) -> None:
    with isolated_db(redis_url, 13) as url:  # no worker: this process plays owner and sweeper
        r = redis.Redis.from_url(url, decode_responses=True)
        started = runs.trigger("echo", payload(chat_id, user_message("hello")))
        owner = quiet_mailbox()
        verdict, local = owner.claim(started.run_id)
        assert verdict == "ok" and local is not None
        driver = RunDriver(get_task("echo"), started.run_id, local)
        item = driver.take()
        assert item is not None and item.input_id == "i0"
        driver.stream.write({"type": "start", "messageId": "m1"})

        # The owner stalls past its lease (a paused process, a stalled Redis); another
        # worker's sweep finds the lease gone and hands the run on.
        r.delete(keys.lease(started.run_id))
        r.zadd(keys.index(keys.ACTIVE, started.run_id), {started.run_id: 0})
        quiet_mailbox()._sweep()
        assert runs.status(started.run_id).status == "resuming"
        before = r.xrange(keys.output(started.run_id))
        assert json.loads(before[-1][1]["c"]) == {"type": "abort", "reason": "worker lost"}

        # The stalled owner wakes up and carries on: every write is refused.
        with pytest.raises(LeaseLost):
            driver.stream.write({"type": "text-delta", "id": "t", "delta": "late"})
        with pytest.raises(LeaseLost):
            driver.stream.write_many([{"type": "text-delta", "id": "t", "delta": "late"}])
        with pytest.raises(LeaseLost):
            driver.write_turn_complete(0, "i0", False, "")
        with pytest.raises(LeaseLost):
            driver.hook_done()
        with pytest.raises(LeaseLost):
            driver.mark_waiting()
        with pytest.raises(LeaseLost):
            driver.take()
        with pytest.raises(LeaseLost):
            driver.suspend(60)
        assert r.xrange(keys.output(started.run_id)) == before
        assert runs.status(started.run_id).status == "resuming"
        assert r.llen(keys.inbox(started.run_id)) == 1  # the message waits for the next owner


def test_an_owner_whose_lease_merely_lapsed_takes_it_back(redis_url: str, chat_id: str) -> None:
    with isolated_db(redis_url, 13) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        started = runs.trigger("echo", payload(chat_id, user_message("hello")))
        verdict, local = quiet_mailbox().claim(started.run_id)
        assert verdict == "ok" and local is not None
        driver = RunDriver(get_task("echo"), started.run_id, local)
        assert driver.take() is not None
        # Redis lost the lease (a restart) but nobody recovered the run: it is still ours.
        r.delete(keys.lease(started.run_id))
        driver.stream.write({"type": "start", "messageId": "m1"})
        assert r.get(keys.lease(started.run_id)) == local.token


def test_a_paused_worker_never_writes_after_its_run_was_recovered(redis_url: str,
                                                                  chat_id: str) -> None:
    with isolated_db(redis_url, 14) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        paused = Worker(worker_env(url), name="paused").start()
        try:
            started = runs.trigger("echo", payload(chat_id, user_message("hello"),
                                                   metadata={"words": 60, "delay": 0.05}))
            wait_for(lambda: len(text_of(runs.read_stream(started.run_id))) > 20)
            os.killpg(paused.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            with running_worker(worker_env(url), name="rescuer3"):
                entries = read_turn(r, started.run_id, timeout=40)
                os.killpg(paused.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
                time.sleep(3)  # the paused worker wakes and tries to carry on its turn
                entries = runs.read_stream(started.run_id)
        finally:
            paused.stop(signal.SIGKILL)
        kinds = [chunk["type"] for _, chunk in entries]
        abort = kinds.index("abort")
        assert entries[abort][1]["reason"] == "worker lost"
        after = kinds[abort + 1:]
        # After the abort: exactly one clean answer from the new owner, nothing from the old.
        assert after[0] == "__turn_start"
        assert after.count("start") == 1 and after.count("finish") == 1
        assert after[-1] == "__turn_complete"
        words = " ".join(f"w{i}" for i in range(60))
        assert text_of(entries[abort:]).strip() == f"echo: hello (turn 0) {words}"


# -- 9. every stop asked for is honoured ----------------------------------------------------------
def test_two_precise_stops_are_both_honoured(redis_url: str, chat_id: str,
                                             worker: Worker) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    slow = {"words": 40, "delay": 0.05}
    started = runs.trigger("echo", payload(chat_id, user_message("zero"), metadata=slow))
    first = runs.send_message(started.run_id, payload(chat_id, user_message("one"), metadata=slow))
    second = runs.send_message(started.run_id,
                               payload(chat_id, user_message("two"), metadata=slow))
    assert runs.stop(started.run_id, input_id=first)
    assert runs.stop(started.run_id, input_id=second)
    assert not runs.stop(started.run_id, input_id="i99")  # no such message: nothing to stop
    after = "0-0"
    stopped = []
    for turn in range(3):
        entries = read_turn(r, started.run_id, after=after, turn=turn, timeout=30)
        stopped.append(entries[-1][1]["stopped"])
        after = entries[-1][0]
    assert stopped == [False, True, True]
