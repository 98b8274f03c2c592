"""Resume positions and lost runs through a real gunicorn gateway: a position whose successors
were trimmed away (410 ``stream_trimmed``), a position beyond the stream's end (400
``stream_id_ahead``, never a cursor that holds back other subscribers), and streams of runs that
vanished from Redis (a terminal ``__run_end`` at once, not an idle stream)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatworker import runs, tokens
from chatworker.errors import StreamIdAhead, StreamTrimmed
from chatworker.store import keys, streams

from ..support import RedisServer, user_message
from .conftest_helpers import (
    Gunicorn,
    SSEClient,
    SSEEvent,
    call,
    gateway_db,
    gateway_env,
    gateway_redis,
    xadd_chunks,
)

__all__ = ["gateway_db", "gateway_redis"]

pytestmark = pytest.mark.integration

MAX_ID = "18446744073709551615-18446744073709551615"
RUN_END = {"type": "__run_end", "status": "completed", "reason": "test"}


@pytest.fixture(scope="module")
def gw(gateway_db: str) -> Iterator[Gunicorn]:
    env = gateway_env(gateway_db, CHATWORKER_SSE_HEARTBEAT="0.5")
    with Gunicorn(env, name="resume") as gateway:
        yield gateway
    assert "Traceback" not in gateway.log(), gateway.log()[-3000:]


def new_run(gw: Gunicorn, chat_id: str = "chat-resume") -> tuple[str, str]:
    """A run created through the gateway (no worker runs it: its output is ours to write)."""
    token = tokens.create_trigger_token("echo", multiple_use=True)
    body = {"chatId": chat_id, "messages": [user_message("hi")]}
    status, data, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body, token=token)
    assert status == 201, data
    return data["runId"], data["publicAccessToken"]


def stream_path(run_id: str, token: str, **query: Any) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"/api/chat/runs/{run_id}/stream?token={token}{extra}"


def write_trimmed(
    client: redis.Redis, run_id: str, monkeypatch: pytest.MonkeyPatch, n: int = 1000
) -> list[str]:
    """``n`` chunks and a ``__run_end`` written as the engine writes them, with the stream kept
    to about 100 entries (``CHATWORKER_STREAM_MAXLEN=100``): the oldest ones are trimmed away."""
    monkeypatch.setenv("CHATWORKER_STREAM_MAXLEN", "100")
    out = streams.OutputStream(client, run_id)
    ids = out.write_many({"type": "data-n", "data": i} for i in range(n))
    ids.append(out.write(RUN_END))
    retained = [str(i) for i, _ in client.xrange(keys.output(run_id))]
    assert len(retained) < n and retained == ids[-len(retained) :]
    return ids


def error_of(status: int, data: Any) -> tuple[int, str]:
    return status, data["error"] if isinstance(data, dict) else repr(data)[:200]


def test_resume_past_the_trim_answers_410_before_any_event(
    gw: Gunicorn, gateway_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, token = new_run(gw)
    ids = write_trimmed(gateway_redis, run_id, monkeypatch)
    first = str(gateway_redis.xrange(keys.output(run_id), count=1)[0][0])
    lost = ids[: ids.index(first)]
    for position in (lost[0], lost[len(lost) // 2], "0"):
        for how in ("header", "query"):
            if how == "header":
                status, data, headers = call(
                    gw.url, "GET", stream_path(run_id, token), headers={"Last-Event-ID": position}
                )
            else:
                status, data, headers = call(
                    gw.url, "GET", stream_path(run_id, token, lastEventId=position)
                )
            assert error_of(status, data) == (410, "stream_trimmed"), (position, how)
            assert headers["Content-Type"] == "application/json"
            assert first in data["message"]
    # From a retained entry: everything after it, as before.
    with SSEClient(gw.url, stream_path(run_id, token, lastEventId=first)) as client:
        assert [e.id for e in client.read_all()] == ids[ids.index(first) + 1 :]
    # Without an id the stream starts at its first retained entry (no error: nothing was asked).
    with SSEClient(gw.url, stream_path(run_id, token)) as client:
        assert [e.id for e in client.read_all()] == ids[ids.index(first) :]


def test_read_stream_refuses_a_trimmed_or_future_position(
    gw: Gunicorn, gateway_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = new_run(gw)
    ids = write_trimmed(gateway_redis, run_id, monkeypatch)
    first = str(gateway_redis.xrange(keys.output(run_id), count=1)[0][0])
    with pytest.raises(StreamTrimmed, match=first):
        runs.read_stream(run_id, after=ids[0])
    assert [i for i, _ in runs.read_stream(run_id, after=first)] == ids[ids.index(first) + 1 :]
    assert [i for i, _ in runs.read_stream(run_id)] == ids[ids.index(first) :]
    with pytest.raises(StreamIdAhead):
        runs.read_stream(run_id, after=MAX_ID)
    with pytest.raises(ValueError, match="not a stream id"):
        runs.read_stream(run_id, after="yesterday")


def test_a_future_id_never_holds_back_other_subscribers(
    gw: Gunicorn, gateway_redis: redis.Redis
) -> None:
    run_id, token = new_run(gw)
    [head] = xadd_chunks(gateway_redis, run_id, [{"type": "data-head"}])
    future = f"{int(head.split('-')[0]) + 10**9}-0"
    ahead = SSEClient(gw.url, stream_path(run_id, token, timeout=30),
                      headers={"Last-Event-ID": future})  # fmt: skip
    try:
        if ahead.status == 200:  # (unfixed) wait until it has joined the gateway's reader
            assert next(e for e in ahead if e.comment == "keep-alive")
        got: list[str] = []
        with SSEClient(gw.url, stream_path(run_id, token, timeout=10)) as other:
            events = other.events()
            got.append(next(events).id or "")
            assert next(e for e in other if e.comment == "keep-alive")  # it is live now
            live = xadd_chunks(gateway_redis, run_id, [{"type": "data-live", "data": n}
                                                       for n in range(5)] + [RUN_END])  # fmt: skip
            got += [e.id or "" for e in events]
        assert got == [head, *live]
        assert ahead.status == 400
        assert json.loads(ahead.resp.read())["error"] == "stream_id_ahead"
    finally:
        ahead.close()


def test_an_id_beyond_the_stream_is_400(gw: Gunicorn, gateway_redis: redis.Redis) -> None:
    run_id, token = new_run(gw)
    # No entry yet: only "0" (from the start) is a position of this stream.
    for position in (MAX_ID, "1-0"):
        status, data, _ = call(gw.url, "GET", stream_path(run_id, token, lastEventId=position))
        assert error_of(status, data) == (400, "stream_id_ahead"), position
    ids = xadd_chunks(gateway_redis, run_id, [{"type": "data-x"}, RUN_END])
    for headers, query in (({"Last-Event-ID": MAX_ID}, {}), ({}, {"lastEventId": MAX_ID})):
        status, data, _ = call(gw.url, "GET", stream_path(run_id, token, **query), headers=headers)
        assert error_of(status, data) == (400, "stream_id_ahead")
        assert ids[-1] in data["message"]
    with SSEClient(gw.url, stream_path(run_id, token, lastEventId="0")) as client:
        assert [e.id for e in client.read_all()] == ids
    with SSEClient(gw.url, stream_path(run_id, token, lastEventId=ids[-1], timeout=1)) as client:
        assert client.read_all() == []


def read_until(client: SSEClient, done: Any, deadline: float) -> list[SSEEvent]:
    """Events (comments included) until ``done(event)``; fail at ``deadline``."""
    seen: list[SSEEvent] = []
    for item in client:
        seen.append(item)
        if done(item):
            return seen
        assert time.monotonic() < deadline, f"nothing conclusive: {seen[-5:]}"
    return seen


def is_run_end(item: SSEEvent) -> bool:
    return item.data is not None and item.json().get("type") == "__run_end"


def ui_stream(gw: Gunicorn, chat_id: str) -> SSEClient:
    """``POST /ui/echo`` (the AI SDK transport's send): a run that no worker starts."""
    token = tokens.create_trigger_token("echo", multiple_use=True)
    body = {"id": chat_id, "messages": [user_message("hi")], "trigger": "submit-message"}
    client = SSEClient(gw.url, "/api/chat/ui/echo?timeout=60", method="POST", body=body,
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert client.status == 200
    return client


def assert_lost(run_client: SSEClient, ui_client: SSEClient, deadline: float) -> None:
    seen = read_until(run_client, is_run_end, deadline)
    end = seen[-1].json()
    assert end["status"] == "failed" and "lost" in end["reason"], end
    assert seen[-1].id is None  # not a stream entry
    assert run_client.read_all() == []  # and the stream closes
    seen = read_until(ui_client, lambda e: e.data == "[DONE]", deadline)
    errors = [e.json() for e in seen if e.data and e.data != "[DONE]"]
    assert [e["type"] for e in errors] == ["error"] and "lost" in errors[0]["errorText"], errors


def test_streams_of_runs_lost_in_a_flush_end_at_once(
    gw: Gunicorn, gateway_redis: redis.Redis
) -> None:
    run_id, token = new_run(gw)
    with SSEClient(gw.url, stream_path(run_id, token, timeout=60)) as run_client, \
            ui_stream(gw, "chat-flushed") as ui_client:  # fmt: skip
        for client in (run_client, ui_client):  # both are following their run
            assert next(e for e in client if e.comment == "keep-alive")
        gateway_redis.flushdb()
        assert_lost(run_client, ui_client, time.monotonic() + 20)
    status, data, _ = call(gw.url, "GET", stream_path(run_id, token))
    assert error_of(status, data) == (404, "run_not_found")


def test_streams_of_runs_lost_in_a_restart_without_persistence_end_at_once(
    redis_url: str,
) -> None:
    server = RedisServer().start()
    try:
        with Gunicorn(gateway_env(server.url, CHATWORKER_SSE_HEARTBEAT="0.5"), name="empty") as gw:
            run_id, token = new_run(gw)
            with SSEClient(gw.url, stream_path(run_id, token, timeout=60)) as run_client, \
                    ui_stream(gw, "chat-restarted") as ui_client:  # fmt: skip
                for client in (run_client, ui_client):
                    assert next(e for e in client if e.comment == "keep-alive")
                server.stop()
                server.start()  # the same port, no data
                assert_lost(run_client, ui_client, time.monotonic() + 30)
    finally:
        server.stop()


def test_check_without_redis_7_stream_counters() -> None:
    """Before Redis 7, ``XINFO STREAM`` has no ``entries-added``: a full stream whose first entry
    is after the position counts as trimmed."""
    info = {"length": 20000, "last-generated-id": "9-0", "first-entry": ("5-0", {"c": "{}"})}
    with pytest.raises(StreamTrimmed):
        streams.check_after(info, "3-0")
    streams.check_after(info, "4-18446744073709551615")  # right before the first entry
    streams.check_after({**info, "length": 10}, "3-0")  # never trimmed
    with pytest.raises(StreamIdAhead):
        streams.check_after(info, "9-1")
