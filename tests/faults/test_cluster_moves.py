"""A run's slot moves to another node of the Redis Cluster while its turn streams (what a
resharding or a failover does to a slot): the worker, the gateway's SSE reader and the client
carry on as after a Redis restart on one server: nothing lost, nothing repeated, and the run
answers its next message on its new node."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from chatworker.store import keys

from ..gateway.conftest_helpers import SSEClient, call, cluster_gateway
from ..support import Backend, RedisClusterServers, pointed_at_backend, user_message, wait_for
from .helpers import trigger_token

__all__ = ["cluster_gateway"]

pytestmark = pytest.mark.integration


def _nodes(cluster: RedisClusterServers) -> dict[int, tuple[str, redis.Redis]]:
    """Each node's port → (its node id, a client of it)."""
    out = {}
    for port in cluster.ports:
        client = redis.Redis(port=port, decode_responses=True)
        out[port] = (str(client.execute_command("CLUSTER", "MYID")), client)
    return out


def _owner(node: redis.Redis, slot: int) -> int:
    for start, end, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"slot {slot} has no owner")


def move_slot(cluster: RedisClusterServers, slot: int) -> int:
    """Move ``slot`` with its keys to another master, as ``redis-cli --cluster reshard`` does;
    returns the new owner's port."""
    nodes = _nodes(cluster)
    source = _owner(nodes[cluster.ports[0]][1], slot)
    target = next(port for port in cluster.ports if port != source)
    (source_id, src), (target_id, dst) = nodes[source], nodes[target]
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while moving := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *moving)
    for port in (target, source, *(p for p in cluster.ports if p not in (source, target))):
        nodes[port][1].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return target


def test_a_slot_moving_under_a_streaming_turn(redis_cluster: RedisClusterServers,
                                              cluster_backend: Backend, cluster_gateway: Any,
                                              chat_id: str) -> None:
    with pointed_at_backend(cluster_backend):
        gw = cluster_gateway
        body = {"chatId": chat_id, "messages": [user_message("hello")],
                "metadata": {"words": 60, "delay": 0.05}}
        status, started, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body,
                                  token=trigger_token())
        assert status == 201, started
        run_id, token = started["runId"], started["publicAccessToken"]
        slot = key_slot(keys.run(run_id).encode())
        events: list[dict[str, Any]] = []
        ids: list[str] = []

        def read() -> None:
            path = f"/api/chat/runs/{run_id}/stream?token={token}&timeout=60"
            with SSEClient(gw.url, path) as client:
                for event in client.events():
                    ids.append(str(event.id))
                    events.append(event.json())
                    if events[-1]["type"] == "__turn_complete":
                        return

        reader = threading.Thread(target=read)
        reader.start()
        wait_for(lambda: sum(e["type"] == "text-delta" for e in events) >= 5)
        before = _owner(redis.Redis(port=redis_cluster.ports[0]), slot)
        after = move_slot(redis_cluster, slot)
        assert after != before
        reader.join(60)
        assert not reader.is_alive(), events[-5:]

        assert len(ids) == len(set(ids)) and ids == sorted(ids, key=lambda i: tuple(
            int(part) for part in i.split("-")))  # nothing repeated, in order
        kinds = [e["type"] for e in events]
        assert kinds.count("__turn_complete") == 1 and kinds[-1] == "__turn_complete"
        start = len(kinds) - 1 - kinds[::-1].index("start")  # the last attempt of the turn
        text = "".join(e.get("delta", "") for e in events[start:] if e["type"] == "text-delta")
        assert text.startswith("echo: hello (turn 0)"), text
        # The run lives on its new node now, and answers there.
        client = cluster_backend.client()
        assert _owner(redis.Redis(port=redis_cluster.ports[0]), slot) == after
        assert client.hget(keys.run(run_id), "status") in ("waiting", "suspended")
        status, _, _ = call(gw.url, "POST", f"/api/chat/runs/{run_id}/input/messages",
                            {"chatId": chat_id, "messages": [user_message("again")]},
                            token=token)
        assert status in (200, 202), status
        path = f"/api/chat/runs/{run_id}/stream?token={token}&timeout=30"
        with SSEClient(gw.url, path, headers={"Last-Event-ID": ids[-1]}) as sse:
            second = []
            for event in sse.events():
                second.append(event.json())
                if second[-1]["type"] == "__turn_complete":
                    break
        assert "".join(e.get("delta", "") for e in second
                       if e["type"] == "text-delta").startswith("echo: again (turn 1)")
