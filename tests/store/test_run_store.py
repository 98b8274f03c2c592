"""The run transitions at the store's own API: each is one script, and its guarantees hold
against a real Redis whatever the order of the racing calls."""

from __future__ import annotations

import json

import pytest
import redis

from chatworker.store import keys
from chatworker.store.run_store import LeaseLost, RunStore

WORKER = "host:1:abc"
OTHER = "host:2:def"


def new_run(store: RunStore, run_id: str = "run_a", *, first: str | None = "i0 {}") -> str:
    record = {"task_id": "t", "chat_id": "c", "status": "queued", "turn": 0, "accepted": 1,
              "input_seq": 0, "max_turns": 10, "is_streaming": 0, "initial": "{}"}
    store.create(run_id, task_id="t", chat_id="c", record=record, first_item=first)
    return run_id


def owned(store: RunStore, run_id: str = "run_a", worker: str = WORKER) -> str:
    token = f"{worker}:tok"
    assert store.claim(run_id, token, worker) == ("ok", "queued")
    return token


def test_a_new_run_is_indexed_and_has_a_start_deadline(store: RunStore,
                                                       client: redis.Redis) -> None:
    run_id = new_run(store)
    assert client.zscore(keys.index(keys.RUNS, run_id), run_id) is not None
    due = client.zscore(keys.index(keys.RESUMING, run_id), run_id)
    assert due is not None and due > store.now_ms()
    assert client.lrange(keys.inbox(run_id), 0, -1) == ["i0 {}"]
    assert store.chat_run("t", "c") == run_id


def test_one_claim_wins_and_duplicates_are_refused(store: RunStore) -> None:
    run_id = new_run(store)
    owned(store, run_id)
    assert store.claim(run_id, f"{OTHER}:x", OTHER)[0] == "busy"  # its lease is alive
    store.cancel(run_id, "bye")
    assert store.claim(run_id, f"{OTHER}:y", OTHER) == ("ended", "canceled")


def test_a_message_at_the_instant_of_suspending_is_never_lost(store: RunStore) -> None:
    run_id = new_run(store)
    token = owned(store, run_id)
    assert store.take(run_id, 0, token) is not None
    assert store.send(run_id, "{}")[0] == "ok"  # arrives before the suspend
    assert store.suspend(run_id, token, 60, json.dumps({"turn": 1})) == 0  # refused: a message
    taken = store.take(run_id, 1, token)
    assert taken is not None and taken[0].startswith("i1 ")
    assert store.suspend(run_id, token, 60, "{}") == 1
    verdict, input_id = store.send(run_id, "{}")  # arrives after: flips it to resuming once
    assert (verdict, input_id) == ("resume", "i2")
    assert store.info(run_id).status == "resuming"  # type: ignore[union-attr]
    assert store.send(run_id, "{}")[0] == "ok"


def test_every_owner_write_is_fenced_once_the_run_was_recovered(store: RunStore,
                                                                client: redis.Redis) -> None:
    run_id = new_run(store)
    token = owned(store, run_id)
    assert store.take(run_id, 0, token) is not None
    client.delete(keys.lease(run_id))  # the owner stalled past its lease
    assert store.recover(run_id)
    assert store.info(run_id).status == "resuming"  # type: ignore[union-attr]
    with pytest.raises(LeaseLost):
        store.take(run_id, 0, token)
    with pytest.raises(LeaseLost):
        store.marker(run_id, token, marker="{}", checkpoint="{}", input_id="i0",
                     hook_pending=False)
    with pytest.raises(LeaseLost):
        store.hook_done(run_id, token)
    with pytest.raises(LeaseLost):
        store.owner_set(run_id, token, {"status": "waiting"})
    assert store.suspend(run_id, token, 60, "{}") == -1
    assert store.end(run_id, token, "failed", "x") is False
    assert store.info(run_id).status == "resuming"  # type: ignore[union-attr]
    assert client.lrange(keys.inbox(run_id), 0, -1) == ["i0 {}"]  # back for the next owner


def test_a_lapsed_lease_nobody_took_over_is_taken_back(store: RunStore,
                                                       client: redis.Redis) -> None:
    run_id = new_run(store)
    token = owned(store, run_id)
    client.delete(keys.lease(run_id))  # lost in a Redis restart; no sweep recovered the run
    assert store.take(run_id, 0, token) is not None
    assert client.get(keys.lease(run_id)) == token
    assert store.recover(run_id) is False  # the lease is alive again


def test_stops_are_kept_per_input(store: RunStore, client: redis.Redis) -> None:
    run_id = new_run(store)
    token = owned(store, run_id)
    store.take(run_id, 0, token)
    first = store.send(run_id, "{}")[1]
    second = store.send(run_id, "{}")[1]
    assert store.stop(run_id, "a", first) == "queued"
    assert store.stop(run_id, "b", second) == "queued"
    assert store.stop(run_id, "c", "i9") == "idle"  # never sent
    store.marker(run_id, token, marker="{}", checkpoint="{}", input_id="i0", hook_pending=False)
    assert store.take(run_id, 1, token) == (f"{first} {{}}", "a")
    assert store.take(run_id, 2, token) == (f"{second} {{}}", "b")


def test_every_way_of_ending_sets_the_retention(store: RunStore, client: redis.Redis) -> None:
    def ttls(run_id: str) -> list[int]:
        return [int(client.ttl(k)) for k in keys.run_keys(run_id) if client.exists(k)]

    queued = new_run(store, "run_q")
    assert store.cancel(queued, "bye") == "ended-now"
    live = new_run(store, "run_l")
    token = owned(store, live)
    store.take(live, 0, token)
    assert store.end(live, token, "completed", "done")
    timed = new_run(store, "run_t")
    token = owned(store, timed, OTHER)
    store.take(timed, 0, token)
    store.marker(timed, token, marker="{}", checkpoint="{}", input_id="i0", hook_pending=False)
    assert store.suspend(timed, token, 0, "{}") == 1
    assert store.expire(timed)
    for run_id in (queued, live, timed):
        assert ttls(run_id) and all(ttl > 0 for ttl in ttls(run_id)), run_id


def test_an_overdue_start_is_sent_again_by_one_sweeper_then_backs_off(
    store: RunStore, client: redis.Redis
) -> None:
    run_id = new_run(store)
    client.hset(keys.run(run_id), "start_due", 0)  # its start message was lost long ago
    hint = keys.index(keys.RESUMING, run_id)
    client.zadd(hint, {run_id: 0})
    assert store.overdue_starts(store.now_ms(), 10) == [(run_id, 0)]
    first, second = RunStore(client), RunStore(client)  # two workers sweeping at once
    assert [first.requeue(run_id, 0), second.requeue(run_id, 0)].count(True) == 1
    due = client.zscore(hint, run_id)
    assert due is not None and due > store.now_ms()
    owned(store, run_id)
    assert client.zscore(hint, run_id) is None  # claimed: no more re-sends


def test_the_runs_index_forgets_expired_runs(store: RunStore, client: redis.Redis) -> None:
    kept, gone = new_run(store, "run_k"), new_run(store, "run_g")
    client.delete(keys.run(gone))
    walked = [store.trim_runs(bucket, 0, 100) for bucket in range(keys.BUCKETS)]
    assert (sum(s for s, _ in walked), sum(d for _, d in walked)) == (2, 1)
    assert [m for key in keys.index_buckets(keys.RUNS) for m in client.zrange(key, 0, -1)] == [
        kept]


def test_renewing_keeps_the_leases_still_owned_and_names_the_lost_ones(
    store: RunStore, client: redis.Redis
) -> None:
    kept, lost = new_run(store, "run_kept"), new_run(store, "run_lost")
    kept_token, lost_token = owned(store, kept), owned(store, lost)
    store.take(kept, 0, kept_token)
    store.take(lost, 0, lost_token)
    client.pexpire(keys.lease(kept), 50)  # about to lapse: the renewal extends it
    client.delete(keys.lease(lost))
    assert store.recover(lost)  # another worker's sweep handed it on
    assert store.renew(WORKER, [(kept, kept_token), (lost, lost_token)]) == {lost}
    assert client.pttl(keys.lease(kept)) > 1000
    assert client.zscore(keys.index(keys.ACTIVE, kept), kept) is not None


def test_only_a_run_waiting_to_start_has_a_start_hint(store: RunStore, client: redis.Redis) -> None:
    run_id = new_run(store)
    hint = keys.index(keys.RESUMING, run_id)
    queued_at = client.zscore(hint, run_id)
    assert store.send(run_id, "{}")[0] == "ok"  # still queued: its hint stays as it was
    assert client.zscore(hint, run_id) == queued_at
    token = owned(store, run_id)
    assert client.zscore(hint, run_id) is None  # claimed
    store.take(run_id, 0, token)
    assert store.send(run_id, "{}")[0] == "ok"  # a live run: no start hint left behind
    assert client.zscore(hint, run_id) is None
    store.take(run_id, 1, token)
    store.take(run_id, 2, token)  # the inbox is empty again
    assert store.suspend(run_id, token, 60, "{}") == 1
    assert store.send(run_id, "{}")[0] == "resume"  # found by the sweep should its start be lost
    assert client.zscore(hint, run_id) is not None


@pytest.mark.parametrize("client", ["server"], indirect=True)
def test_one_server_renews_many_leases_in_one_script_call(
    store: RunStore, client: redis.Redis
) -> None:
    """A worker beat with many warm runs is a few script calls on one server, not one per run
    (a cluster renews run by run, each in its slot: the test above covers both)."""
    runs = [new_run(store, f"run_{i}") for i in range(50)]
    owned_runs = [(r, owned(store, r)) for r in runs]
    calls = int(client.info("commandstats")["cmdstat_evalsha"]["calls"])
    assert store.renew(WORKER, owned_runs) == set()
    # one renew_all call, then the active-index hints (one call per bucket touched)
    made = int(client.info("commandstats")["cmdstat_evalsha"]["calls"]) - calls
    assert made <= 1 + len({keys.index(keys.ACTIVE, r) for r in runs})
    assert all(client.pttl(keys.lease(r)) > 1000 for r in runs)
