"""What the hub does differently on a Redis Cluster (``CHATWORKER_REDIS_CLUSTER=1``).

- Its catch-up read names many streams, and a cluster refuses a command whose keys hash to
  different slots (``CROSSSLOT``), even on one node, while every run's stream has a slot of its
  own: :func:`xread` sends one ``XREAD`` per slot (the streams of that slot together) in one
  pipeline, which the cluster client splits into one round trip per node, sent together.
- Its feed's Pub/Sub connection goes to one node (:func:`pool_of`): an entry a script publishes
  with ``PUBLISH`` is carried by the cluster to every node, so one connection hears them all.

A failover or a slot migration is followed by the cluster client (it refreshes its slot map on
``MOVED``/``ASK`` and retries); a feed connection that breaks reconnects and the hub catches up
every stream, as after a Redis restart on one server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.crc import key_slot

from ..config import is_cluster


def xread(client: redis.Redis[str], cursors: Mapping[str, str], count: int) -> list[Any]:
    """``XREAD COUNT count STREAMS ...`` of ``cursors`` (stream key → read after), as one reply
    of ``[key, entries]`` pairs; on a cluster, one ``XREAD`` per slot in one pipeline."""
    if not is_cluster(client):
        return list(client.xread(dict(cursors), count=count) or [])
    by_slot: dict[int, dict[str, str]] = {}
    for key, cursor in cursors.items():
        by_slot.setdefault(key_slot(key.encode()), {})[key] = cursor
    pipe = client.pipeline(transaction=False)
    for group in by_slot.values():
        pipe.xread(group, count=count)
    out: list[Any] = []
    for reply in pipe.execute():
        out.extend(reply.items() if isinstance(reply, dict) else reply or [])
    return out


def pool_of(client: Any) -> Any:
    """The connection pool a Pub/Sub connection of ``client`` is made from (on a cluster: one
    node's)."""
    if is_cluster(client):
        return client.get_default_node().redis_connection.connection_pool
    return client.connection_pool
