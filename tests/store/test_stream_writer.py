"""Group commit of output-stream appends, against a real Redis: many runs' chunks share a
round trip and a script call, each stays in order, and each run is fenced on its own."""

from __future__ import annotations

import threading

import pytest
import redis

from chatworker.config import is_cluster
from chatworker.store import keys, stream_writer, streams
from chatworker.store.run_store import LeaseLost, RunStore

from .test_run_store import new_run, owned


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


@pytest.fixture
def writer(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> stream_writer.Writer:
    w = stream_writer.writer_for(client)
    monkeypatch.setattr(w, "linger", 0.05)  # wide enough that concurrent appends meet
    return w


def test_the_chunks_of_many_runs_share_script_calls_and_each_stays_in_order(
    store: RunStore, client: redis.Redis, writer: stream_writer.Writer
) -> None:
    # On a cluster a script takes one run's keys, so runs' appends are not merged there: only
    # the order (and nothing lost) is checked; on one server, the sharing too.
    merged = not is_cluster(client)
    runs = [new_run(store, f"run_{i}") for i in range(20)]
    outs = [streams.OutputStream(client, r, token=owned(store, r)) for r in runs]
    ids: dict[int, list[str]] = {}
    start = threading.Barrier(len(outs))

    def stream(n: int) -> None:
        start.wait()
        ids[n] = [outs[n].write({"type": "text-delta", "id": "t", "delta": f"{n}:{k}"})
                  for k in range(10)]

    before_eval = _calls(client, "evalsha") if merged else 0
    before_xadd = _calls(client, "xadd") if merged else 0
    threads = [threading.Thread(target=stream, args=(n,)) for n in range(len(outs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if merged:
        assert _calls(client, "xadd") - before_xadd == 200
        assert _calls(client, "evalsha") - before_eval < 100  # batched: far fewer calls than chunks
    for n, run_id in enumerate(runs):
        entries = streams.read(client, run_id)
        assert [e[1]["delta"] for e in entries] == [f"{n}:{k}" for k in range(10)]
        assert [e[0] for e in entries] == ids[n]


def test_a_run_that_lost_its_lease_is_refused_alone_within_a_shared_batch(
    store: RunStore, client: redis.Redis, writer: stream_writer.Writer
) -> None:
    kept, lost = new_run(store, "run_kept"), new_run(store, "run_lost")
    out_kept = streams.OutputStream(client, kept, token=owned(store, kept))
    token = owned(store, lost)
    out_lost = streams.OutputStream(client, lost, token=token)
    assert store.take(lost, 0, token) is not None  # its turn is running
    client.delete(keys.lease(lost))  # then its worker stalled past the lease
    assert store.recover(lost)  # recovery handed the run on: its old owner must write nothing
    chunk = {"type": "text-delta", "id": "t", "delta": "x"}
    items = [stream_writer.Append(out_kept._command(chunk)),
             stream_writer.Append(out_lost._command(chunk)),
             stream_writer.Append(out_kept._command(chunk))]
    writer.submit(items)
    assert items[0].result(writer) and items[2].result(writer)
    with pytest.raises(redis.ResponseError, match="LEASE_LOST"):
        items[1].result(writer)
    with pytest.raises(LeaseLost):
        out_lost.write(chunk)
    assert len(streams.read(client, kept)) == 2
    assert all(e[1]["type"] != "text-delta" for e in streams.read(client, lost))


def test_batches_survive_redis_forgetting_the_scripts(
    store: RunStore, client: redis.Redis, writer: stream_writer.Writer
) -> None:
    runs = [new_run(store, f"run_{i}") for i in range(3)]
    outs = [streams.OutputStream(client, r, token=owned(store, r)) for r in runs]
    client.script_flush()  # as after a Redis restart
    items = [stream_writer.Append(o._command({"type": "text-delta", "id": "t", "delta": "x"}))
             for o in outs]
    writer.submit(items)
    assert all(item.result(writer) for item in items)
    assert all(len(streams.read(client, r)) == 1 for r in runs)
