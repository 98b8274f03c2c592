"""Every append to an output stream is published on the stream's channel, after it is in the
stream: fenced or not, alone or batched with other runs' chunks."""

from __future__ import annotations

import threading
import time

import redis

from chatworker.store import keys, published, streams
from chatworker.store.run_store import RunStore

from .test_run_store import new_run, owned


def received(pubsub: redis.client.PubSub, count: int) -> list[tuple[str, str]]:
    """The next ``count`` messages, as ``(channel, data)``."""
    out: list[tuple[str, str]] = []
    deadline = time.monotonic() + 10
    while len(out) < count and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            out.append((str(message["channel"]), str(message["data"])))
    return out


def test_appends_are_published_with_their_ids(store: RunStore, client: redis.Redis) -> None:
    runs = [new_run(store, f"run_pub_{i}") for i in range(4)]
    pubsub = client.pubsub()
    pubsub.subscribe(*(published.channel_of(r) for r in runs))
    try:
        while pubsub.get_message(timeout=0.2) is not None:  # the subscribe confirmations
            pass
        loose = streams.OutputStream(client, runs[0]).write_many(
            [{"type": "data-x", "data": n} for n in range(3)]
        )
        fenced = [streams.OutputStream(client, r, token=owned(store, r)) for r in runs[1:]]
        ids: dict[str, list[str]] = {runs[0]: loose}
        start = threading.Barrier(len(fenced))

        def write(n: int) -> None:  # concurrent: batched into append_batch calls
            start.wait()
            out = fenced[n]
            ids[runs[n + 1]] = [out.write({"type": "data-y", "data": k}) for k in range(5)]

        threads = [threading.Thread(target=write, args=(n,)) for n in range(len(fenced))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        got = received(pubsub, 3 + 5 * len(fenced))
    finally:
        pubsub.close()
    for run_id in runs:
        channel = published.channel_of(run_id)
        mine = [published.parse(data) for ch, data in got if ch == channel]
        stored = [(str(i), f["c"]) for i, f in client.xrange(keys.output(run_id))]
        assert mine == stored
        assert [i for i, _ in mine] == ids[run_id]
