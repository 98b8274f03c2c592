"""SSE through real gunicorn gevent gateways: resume, live turns, two gateways, slow clients,
heartbeats, timeouts, idle streams and many open streams."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatworker import tokens

from ..support import user_message
from .conftest_helpers import (
    Gunicorn,
    SSEClient,
    call,
    finished_turn,
    gateway_db,
    gateway_env,
    gateway_redis,
    xadd_chunks,
)

__all__ = ["gateway_db", "gateway_redis"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateways(gateway_db: str) -> Iterator[tuple[Gunicorn, Gunicorn]]:
    env = gateway_env(gateway_db, CHATWORKER_SSE_HEARTBEAT="0.5", CHATWORKER_SSE_QUEUE="1000")
    a, b = Gunicorn(env, name="a"), Gunicorn(env, name="b")
    a.start()
    try:
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
    for gw in (a, b):
        assert "Traceback" not in gw.log(), gw.log()[-3000:]


def new_run(gw: Gunicorn) -> tuple[str, str]:
    """A run created through the gateway (no worker runs it: its output is ours to write)."""
    token = tokens.create_trigger_token("echo", multiple_use=True)
    body = {"chatId": "chat-sse", "messages": [user_message("hi")]}
    status, data, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body, token=token)
    assert status == 201, data
    return data["runId"], data["publicAccessToken"]


def stream_path(run_id: str, token: str, **query: Any) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"/api/chat/runs/{run_id}/stream?token={token}{extra}"


RUN_END = {"type": "__run_end", "status": "completed", "reason": "test"}


def test_headers_and_first_comment_arrive_at_once(
    gateways: tuple[Gunicorn, Gunicorn], gateway_redis: redis.Redis
) -> None:
    gw, _ = gateways
    run_id, token = new_run(gw)
    start = time.monotonic()
    with SSEClient(gw.url, stream_path(run_id, token, timeout=5)) as client:
        assert client.status == 200
        assert client.headers["Content-Type"] == "text/event-stream"
        assert client.headers["Cache-Control"] == "no-cache"
        assert client.headers["X-Accel-Buffering"] == "no"
        first = next(iter(client))
        assert first.comment is not None
        assert time.monotonic() - start < 1.0


def test_resume_from_every_position_of_a_finished_turn(
    gateways: tuple[Gunicorn, Gunicorn], gateway_redis: redis.Redis
) -> None:
    gw_a, gw_b = gateways
    run_id, token = new_run(gw_a)
    chunks = [*finished_turn(0, words=6), *finished_turn(1, words=3, input_id="i1"), RUN_END]
    ids = xadd_chunks(gateway_redis, run_id, chunks)
    stored = {i: c for i, c in zip(ids, chunks, strict=True)}
    for n, position in enumerate([None, *ids[:-1]]):
        gw = gw_a if n % 2 else gw_b
        if position is None:
            client = SSEClient(gw.url, stream_path(run_id, token))
        elif n % 3:
            client = SSEClient(gw.url, stream_path(run_id, token, lastEventId=position))
        else:
            client = SSEClient(
                gw.url, stream_path(run_id, token), headers={"Last-Event-ID": position}
            )
        with client:
            got = client.read_all()  # closes by itself after __run_end
        expected = ids if position is None else ids[ids.index(position) + 1 :]
        assert [e.id for e in got] == expected
        assert all(e.json() == stored[e.id] for e in got if e.id)
    # After the last entry there is nothing to read; with a short timeout it closes empty.
    with SSEClient(gw_a.url, stream_path(run_id, token, lastEventId=ids[-1], timeout=1)) as c:
        assert c.read_all() == []


def test_resume_during_a_turn_in_flight_on_two_gateways(
    gateways: tuple[Gunicorn, Gunicorn], gateway_redis: redis.Redis
) -> None:
    run_id, token = new_run(gateways[0])
    chunks = finished_turn(0, words=120)
    written: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        for chunk in chunks:
            [entry_id] = xadd_chunks(gateway_redis, run_id, [chunk])
            with lock:
                written.append(entry_id)
            time.sleep(0.01)

    results: dict[int, tuple[str | None, list[str]]] = {}

    def reader(n: int) -> None:
        time.sleep(0.1 * n)
        with lock:
            after = written[len(written) // 2] if written and n % 2 else None
        gw = gateways[n % 2]
        headers = {"Last-Event-ID": after} if after else {}
        got: list[str] = []
        with SSEClient(gw.url, stream_path(run_id, token, timeout=10), headers=headers) as client:
            for event in client.events():
                got.append(event.id or "")
                if event.json()["type"] == "__turn_complete":
                    break
        results[n] = (after, got)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 10
    for after, got in results.values():
        expected = written if after is None else written[written.index(after) + 1 :]
        assert got == expected


def test_slow_client_does_not_slow_another(
    gateways: tuple[Gunicorn, Gunicorn], gateway_redis: redis.Redis
) -> None:
    gw, _ = gateways
    run_id, token = new_run(gw)
    slow = socket.create_connection(("127.0.0.1", gw.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(f"GET {stream_path(run_id, token)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        time.sleep(0.5)  # the slow client is subscribed; it never reads from now on
        padding = "x" * 4000
        chunks = [{"type": "data-big", "data": {"n": n, "pad": padding}} for n in range(3000)]
        done = threading.Event()
        got: list[str] = []
        with SSEClient(gw.url, stream_path(run_id, token, timeout=10)) as fast:
            first = next(iter(fast))
            assert first.comment is not None

            def read() -> None:
                for event in fast.events():
                    got.append(event.id or "")
                    if event.json()["data"]["n"] == 2999:
                        done.set()
                        return

            thread = threading.Thread(target=read)
            thread.start()
            ids: list[str] = []
            for n in range(0, 3000, 100):
                ids += xadd_chunks(gateway_redis, run_id, chunks[n : n + 100])
            # Blocked behind the slow client it would never finish; the bound is only generous.
            assert done.wait(90), f"fast client got {len(got)} of 3000"
            thread.join(5)
        assert got == ids
        deadline = time.monotonic() + 5
        while "dropped a slow client" not in gw.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "dropped a slow client" in gw.log()
    finally:
        slow.close()


def test_heartbeats_then_timeout_closes(
    gateways: tuple[Gunicorn, Gunicorn], gateway_redis: redis.Redis
) -> None:
    gw, _ = gateways
    run_id, token = new_run(gw)
    start = time.monotonic()
    with SSEClient(gw.url, stream_path(run_id, token, timeout=2.5)) as client:
        seen = list(client)
    elapsed = time.monotonic() - start
    assert 2.4 < elapsed < 5, elapsed
    beats = [e for e in seen if e.comment == "keep-alive"]
    assert len(beats) >= 3 and all(e.comment for e in seen)
    # A new entry resets the inactivity timer.
    timer = threading.Timer(1.5, xadd_chunks, args=(gateway_redis, run_id, [{"type": "x"}]))
    timer.start()
    start = time.monotonic()
    with SSEClient(gw.url, stream_path(run_id, token, timeout=2)) as client:
        events = client.read_all()
    assert [e.json() for e in events] == [{"type": "x"}]
    assert 3.3 < time.monotonic() - start < 6


def test_idle_stream_longer_than_five_seconds(
    gateways: tuple[Gunicorn, Gunicorn], gateway_redis: redis.Redis
) -> None:
    gw, _ = gateways
    run_id, token = new_run(gw)
    timer = threading.Timer(6.5, xadd_chunks, args=(gateway_redis, run_id, [RUN_END]))
    timer.start()
    with SSEClient(gw.url, stream_path(run_id, token, timeout=30)) as client:
        events = client.read_all()
    timer.join()
    assert [e.json()["type"] for e in events] == ["__run_end"]


def test_a_thousand_open_streams_use_a_handful_of_connections(
    gateway_db: str, gateway_redis: redis.Redis
) -> None:
    with Gunicorn(gateway_env(gateway_db), name="many") as gw:
        runs = [new_run(gw) for _ in range(50)]
        before = len(gateway_redis.client_list())
        blocked_before = blocked_readers(gateway_redis)
        sockets: list[tuple[socket.socket, str]] = []
        try:
            received: dict[socket.socket, bytes] = {}
            # Opened 25 at a time, so that at most 25 requests run short Redis commands at once.
            for wave in range(40):
                for n in range(wave * 25, wave * 25 + 25):
                    run_id, token = runs[n % 50]
                    sock = socket.create_connection(("127.0.0.1", gw.port))
                    request = f"GET {stream_path(run_id, token)} HTTP/1.1\r\nHost: x\r\n\r\n"
                    sock.sendall(request.encode())
                    sockets.append((sock, run_id))
                    received[sock] = b""
                _wait_for_all(received, b"stream open", timeout=60)
                time.sleep(0.02)
            # Connections do not grow with open streams: one blocking XREAD serves them all; the
            # rest is redis-py's pool of short commands, sized by concurrent requests (<= 25 here).
            assert len(gateway_redis.client_list()) - before <= 25 + 4
            assert blocked_readers(gateway_redis) - blocked_before <= 1
            ids = {
                run_id: xadd_chunks(gateway_redis, run_id, [{"type": "ping"}])[0]
                for run_id, _ in runs
            }
            for sock, _ in sockets:
                received[sock] = b""
            _wait_for_all(received, b'data: {"type":"ping"}', timeout=30)
            for sock, run_id in sockets:
                assert f"id: {ids[run_id]}".encode() in received[sock]
            assert len(gateway_redis.client_list()) - before <= 25 + 4
        finally:
            for sock, _ in sockets:
                sock.close()


def blocked_readers(r: redis.Redis) -> int:
    return sum(1 for c in r.client_list() if "b" in c["flags"] and c["cmd"] == "xread")


def _wait_for_all(received: dict[socket.socket, bytes], marker: bytes, timeout: float) -> None:
    pending = {s for s, data in received.items() if marker not in data}
    deadline = time.monotonic() + timeout
    poller = selectors.DefaultSelector()  # epoll: select() fails on descriptors above 1024
    for sock in pending:
        poller.register(sock, selectors.EVENT_READ)
    while pending:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(pending)} streams never got {marker!r}"
        for key, _ in poller.select(min(left, 1)):
            sock = key.fileobj  # type: ignore[assignment]
            data = sock.recv(65536)
            assert data, "a stream closed early"
            received[sock] += data
            if marker in received[sock]:
                pending.discard(sock)
                poller.unregister(sock)
    poller.close()


def test_chunked_oversized_body_is_413(gateways: tuple[Gunicorn, Gunicorn]) -> None:
    gw, _ = gateways
    token = tokens.create_trigger_token("echo", multiple_use=True)
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    piece = b" " * 65536

    def body() -> Iterator[bytes]:
        yield b'{"chatId": "c", "messages": [], "pad": "'
        for _ in range(20):
            yield piece
        yield b'"}'

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(
        "POST", "/api/chat/tasks/echo/runs", body=body(), headers=headers, encode_chunked=True
    )
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    assert resp.status == 413 and data["error"] == "payload_too_large"


def test_json_errors_through_gunicorn(gateways: tuple[Gunicorn, Gunicorn]) -> None:
    gw, _ = gateways
    status, data, _ = call(gw.url, "GET", "/api/chat/runs/run_nope/stream")
    assert status == 401 and data["error"] == "invalid_token"
    status, data, headers = call(gw.url, "GET", "/api/chat/tasks/echo/runs")
    assert status == 405 and data["error"] == "method_not_allowed" and "POST" in headers["Allow"]
    status, data, _ = call(gw.url, "POST", "/api/chat/nowhere", {})
    assert status == 404 and data["error"] == "not_found"
    status, text, _ = call(gw.url, "GET", "/")
    assert status == 200 and "chatworker" in text
