"""What the fault tests share: pointing this process at a Redis, an SSE reader that survives a
dying gateway, and the run's output stream as Redis holds it (the reference clients must match).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from chatworker import config, tokens
from chatworker.engine import celery_app as app_module
from chatworker.gateway.hub import reset_hub
from chatworker.store import keys

from ..gateway.conftest_helpers import call

__all__ = [
    "ALL_TASKS",
    "Event",
    "StreamReader",
    "call",
    "increasing",
    "pointed_at",
    "redis_entries",
    "trigger_token",
]

#: The test task modules a fault worker or gateway loads (``tests.fault_tasks`` adds its own).
ALL_TASKS = "tests.tasks,tests.fault_tasks"


@contextmanager
def pointed_at(url: str, *, flush: bool = True) -> Iterator[str]:
    """Point this process (run state, SSE hub and the Celery broker) at ``url`` for the block,
    so that a worker started on ``url`` sees only this test's runs."""
    old_app = app_module.get_app()
    previous = os.environ["CHATWORKER_REDIS_URL"]
    os.environ["CHATWORKER_REDIS_URL"] = url
    config.reset_redis()
    reset_hub()
    if flush:
        redis.Redis.from_url(url).flushdb()
    app_module.configure(app_module.create_app(broker=url))
    try:
        yield url
    finally:
        os.environ["CHATWORKER_REDIS_URL"] = previous
        config.reset_redis()
        reset_hub()
        app_module.configure(old_app)


def trigger_token(task: str = "echo") -> str:
    """A multiple-use trigger token for ``task``."""
    return tokens.create_trigger_token(task, multiple_use=True)


@dataclass(frozen=True)
class Event:
    """One complete SSE event as a browser's EventSource delivers it."""

    id: str | None
    data: str

    def json(self) -> dict[str, Any]:
        value = json.loads(self.data)
        assert isinstance(value, dict), self.data
        return value

    @property
    def type(self) -> str:
        return str(self.json().get("type", ""))


@dataclass
class StreamReader:
    """Reads ``GET /runs/<id>/stream`` like EventSource: only complete events (a blank line ends
    each) count, and a connection that dies (a killed gateway) just ends the iteration, with
    ``ended_by`` saying why and ``last_id`` the id to resume from."""

    host: str
    port: int
    run_id: str
    token: str
    last_id: str | None = None
    timeout: float = 30
    use_query: bool = False
    ended_by: str | None = None
    comments: int = 0
    status: int | None = None
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    def open(self) -> StreamReader:
        path = f"/api/chat/runs/{self.run_id}/stream?timeout={self.timeout:g}"
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_id and self.use_query:
            path += f"&lastEventId={self.last_id}"
        elif self.last_id:
            headers["Last-Event-ID"] = self.last_id
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout + 10)
        self._conn.request("GET", path, headers=headers)
        resp = self._conn.getresponse()
        self.status = resp.status
        if resp.status != 200:
            body = resp.read().decode(errors="replace")
            self.close()
            raise AssertionError(f"stream answered {resp.status}: {body}")
        self._resp = resp
        return self

    def events(self) -> Iterator[Event]:
        """Complete events until the server closes the stream or the connection dies."""
        resp = self._resp
        event_id: str | None = None
        data: list[str] = []
        while True:
            try:
                line = resp.readline()
            except (OSError, http.client.HTTPException) as exc:
                self.ended_by = f"connection lost ({type(exc).__name__})"
                return
            if not line:
                self.ended_by = "closed"
                return
            if not line.endswith(b"\n"):
                self.ended_by = "connection lost mid-line"
                return  # a torn event is never delivered
            text = line.decode().rstrip("\r\n")
            if text.startswith(":"):
                self.comments += 1
            elif text == "":
                if data:
                    if event_id is not None:
                        self.last_id = event_id
                    yield Event(event_id, "\n".join(data))
                event_id, data = None, []
            else:
                name, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    event_id = value
                elif name == "data":
                    data.append(value)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def redis_entries(client: redis.Redis, run_id: str) -> list[tuple[str, str]]:
    """Every ``(id, chunk JSON)`` of the run's output stream, as Redis holds it."""
    return [
        (str(entry_id), str(fields["c"]))
        for entry_id, fields in client.xrange(keys.output(run_id), "-", "+")
    ]


def increasing(ids: list[str | None]) -> bool:
    """True when every id is a stream id and each is greater than the one before."""
    keys_ = [tuple(int(part) for part in str(i).split("-")) for i in ids]
    return all(i is not None for i in ids) and all(a < b for a, b in itertools.pairwise(keys_))


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``predicate()`` was true; AssertionError after ``timeout``."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - began
