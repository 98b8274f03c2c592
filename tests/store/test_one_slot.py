"""Every script touches the keys of one slot only (Redis Cluster refuses anything else): the
keys of every script call a run's life makes, recorded as they go out, hash to one slot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.commands.core import Script
from redis.crc import key_slot

from chatworker.store import slots
from chatworker.store.run_store import RunStore
from chatworker.store.streams import OutputStream
from chatworker.store.task_calls import TaskCallChannel

WORKER = "host:1:abc"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[str]]]]:
    """``(script's sha and last line, its keys)`` for every script call made through redis-py."""
    seen: list[tuple[str, list[str]]] = []
    scripts: dict[str, str] = {}
    original_call = Script.__call__

    def call(self: Script, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        scripts[self.sha] = f"{self.sha[:8]} {self.script.splitlines()[-1]}"  # type: ignore
        return original_call(self, keys, args, client)

    def record(command: tuple[Any, ...]) -> None:
        if command and str(command[0]).upper() in ("EVALSHA", "EVAL"):
            n = int(command[2])
            seen.append((scripts.get(str(command[1]), str(command[1])[:8]),
                         [str(k) for k in command[3:3 + n]]))

    for cls in (redis.Redis, redis.client.Pipeline):
        original = cls.execute_command

        def execute(self: Any, *args: Any, _original: Any = original, **options: Any) -> Any:
            record(args)
            return _original(self, *args, **options)

        monkeypatch.setattr(cls, "execute_command", execute)
    monkeypatch.setattr(Script, "__call__", call)
    yield seen


def test_every_script_of_a_run_touches_one_slot(redis_url: str,
                                                calls: list[tuple[str, list[str]]]) -> None:
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/11", decode_responses=True)
    client.flushdb()
    store = RunStore(client)
    run_id = "run_slots"
    record = {"task_id": "t", "chat_id": "c", "status": "queued", "turn": 0, "accepted": 1,
              "input_seq": 0, "max_turns": 10, "is_streaming": 0}
    store.create(run_id, task_id="t", chat_id="c", record=record, first_item="i0 {}")
    token = f"{WORKER}:tok"
    assert store.claim(run_id, token, WORKER)[0] == "ok"
    assert slots.acquire(client, "q", 1, run_id)
    store.take(run_id, 0, token)
    store.turn_start(run_id, token, json.dumps({"type": "__turn_start", "turn": 0}))
    OutputStream(client, run_id, token=token).write({"type": "start"})
    store.deliver(run_id, "{}", "steer")
    store.steer_take(run_id, token, "i0")
    store.stop(run_id, "x", None)
    store.record_tool(run_id, token, task_id="t", chat_id="c", approval_id="a", result="{}")
    channel = TaskCallChannel.new(client, run_id)
    channel.open(run_id, token, 60)
    channel.send({"kind": "chunk"})
    channel.close("done")
    store.marker(run_id, token, marker="{}", checkpoint="{}", input_id="i0", hook_pending=True)
    store.hook_done(run_id, token)
    store.owner_set(run_id, token, {"parked": 1})
    store.renew(WORKER, [(run_id, token)])
    store.take(run_id, 1, token)
    assert store.suspend(run_id, token, 60, "{}") in (0, 1)
    store.send(run_id, "{}")
    store.requeue(run_id)
    store.recover(run_id)
    store.expire(run_id)
    slots.release(client, "q", 1, run_id)
    store.cancel(run_id, "bye")
    store.end(run_id, token, "completed", "done")

    assert len({name[:8] for name, _ in calls}) >= 20, calls  # the scripts a run's life uses
    for name, script_keys in calls:
        assert len({key_slot(key.encode()) for key in script_keys}) == 1, (name, script_keys)
    client.flushdb()
