"""Who may reach what, and what a client may ask for, through real gunicorn gateways and real
celery workers: idempotent triggers, ``/ui`` chats, client timeouts, clock skew, the signing
secret, and the request sizes gunicorn refuses before the app runs.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis

from chatworker import config, tokens
from chatworker.store import keys

from ..conftest import SECRET, worker_env
from ..support import Worker, user_message, wait_for
from .conftest_helpers import (
    Gunicorn,
    SSEClient,
    call,
    db_url,
    gateway_env,
    live_gateway,
)

__all__ = ["live_gateway"]

pytestmark = pytest.mark.integration

#: Redis databases of the dedicated stacks below (no other test module uses them).
PIN_DB = 15
DEV_DB = 2


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def multi(task: str = "echo") -> str:
    """A multiple-use trigger token with no subject: its principal is the token itself."""
    return tokens.create_trigger_token(task, multiple_use=True)


def read_turn(gw: Gunicorn, run_id: str, token: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The run's chunks through its SSE stream, up to its first ``__turn_complete``."""
    path = f"/api/chat/runs/{run_id}/stream?timeout={timeout:g}"
    chunks: list[dict[str, Any]] = []
    with SSEClient(gw.url, path, headers=bearer(token), timeout=timeout + 10) as stream:
        assert stream.status == 200, stream.resp.read()
        for event in stream.events():
            chunks.append(event.json())
            if chunks[-1]["type"] in ("__turn_complete", "__run_end"):
                return chunks
    raise AssertionError(f"the stream closed before the turn completed: {chunks[-5:]}")


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c.get("delta", "") for c in chunks if c["type"] == "text-delta").strip()


def ui_send(gw: Gunicorn, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """``POST /ui/echo``: (200, the streamed chunks up to ``[DONE]``) or (status, JSON error)."""
    with SSEClient(gw.url, "/api/chat/ui/echo?timeout=30", method="POST", body=body,
                   headers=bearer(token), timeout=40) as stream:  # fmt: skip
        if stream.status != 200:
            return stream.status, json.loads(stream.resp.read())
        data = [event.data or "" for event in stream.events()]
    assert data and data[-1] == "[DONE]", data[-5:]
    return 200, [json.loads(d) for d in data[:-1]]


# -- #3: Idempotency-Key belongs to the caller ---------------------------------------------------


def test_another_callers_idempotency_key_never_reaches_the_first_run(
    live_gateway: Gunicorn, chat_id: str
) -> None:
    gw, key = live_gateway, f"shared-{uuid.uuid4().hex[:8]}"
    alice, mallory = multi(), multi()
    path = "/api/chat/tasks/echo/runs"
    body = {"chatId": chat_id, "messages": [user_message("my secret plans")]}
    status, first, _ = call(gw.url, "POST", path, body, token=alice,
                            headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 201, first
    assert text_of(read_turn(gw, first["runId"], first["publicAccessToken"])) == (
        "echo: my secret plans (turn 0)"
    )
    # Another caller who learned the key gets a run of its own, and no token for Alice's run.
    other = {"chatId": "mallory-chat", "messages": [user_message("hello")]}
    status, theirs, _ = call(gw.url, "POST", path, other, token=mallory,
                             headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 201, theirs
    assert theirs["runId"] != first["runId"]
    token = theirs["publicAccessToken"]
    status, refused, _ = call(gw.url, "GET", f"/api/chat/runs/{first['runId']}", token=token)
    assert status == 403 and refused["error"] == "forbidden"
    status, refused, _ = call(
        gw.url,
        "POST",
        f"/api/chat/runs/{first['runId']}/input/messages",
        {"chatId": chat_id, "messages": [user_message("x")]},
        token=token,
    )
    assert status == 403, refused
    assert text_of(read_turn(gw, theirs["runId"], token)) == "echo: hello (turn 0)"
    # Alice's own retry still gets her run back.
    status, again, _ = call(gw.url, "POST", path, body, token=alice,
                            headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 201 and again["runId"] == first["runId"]


def test_a_replay_spends_a_one_time_token(live_gateway: Gunicorn, chat_id: str) -> None:
    gw, key = live_gateway, f"otu-{uuid.uuid4().hex[:8]}"
    once = tokens.create_trigger_token("echo")  # one-time
    body = {"chatId": chat_id, "messages": [user_message("hi")]}
    headers = {"Idempotency-Key": key}
    answers = [
        call(gw.url, "POST", "/api/chat/tasks/echo/runs", body, token=once, headers=headers)
        for _ in range(3)
    ]
    assert [status for status, _, _ in answers] == [201, 401, 401], answers
    assert "already used" in answers[1][1]["message"]


def test_the_same_subject_replays_its_key_with_a_fresh_token(
    live_gateway: Gunicorn, chat_id: str
) -> None:
    gw, key = live_gateway, f"sub-{uuid.uuid4().hex[:8]}"
    body = {"chatId": chat_id, "messages": [user_message("hi")]}
    first_token = tokens.create_trigger_token("echo", subject="alice")
    retry_token = tokens.create_trigger_token("echo", subject="alice")
    status, first, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body,
                            token=first_token, headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 201
    # The response was lost; the client retries with a new one-time token of the same user.
    status, retry, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body,
                            token=retry_token, headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 201 and retry["runId"] == first["runId"]
    status, spent, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body,
                            token=retry_token, headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 401 and "already used" in spent["message"]
    bob = tokens.create_trigger_token("echo", subject="bob")
    status, bobs, _ = call(gw.url, "POST", "/api/chat/tasks/echo/runs", body, token=bob,
                           headers={"Idempotency-Key": key})  # fmt: skip
    assert status == 201 and bobs["runId"] != first["runId"]


# -- #5: a /ui chat belongs to the principal that started it -------------------------------------


def test_a_ui_chat_is_refused_to_another_token(live_gateway: Gunicorn, chat_id: str) -> None:
    gw = live_gateway
    alice, mallory = multi(), multi()
    hello = user_message("my secret plans")
    status, chunks = ui_send(gw, alice, {"id": chat_id, "messages": [hello]})
    assert status == 200 and text_of(chunks) == "echo: my secret plans (turn 0)"

    # Another holder of a trigger token for the task, knowing the chat id: 403 on every route.
    status, data, _ = call(gw.url, "GET", f"/api/chat/ui/echo/{chat_id}/stream", token=mallory)
    assert status == 403 and data["error"] == "forbidden" and "another user" in data["message"]
    status, data, _ = call(gw.url, "POST", f"/api/chat/ui/echo/{chat_id}/stop", token=mallory)
    assert status == 403 and data["error"] == "forbidden"
    status, data = ui_send(gw, mallory, {"id": chat_id, "messages": [hello, user_message("me")]})
    assert status == 403 and data["error"] == "forbidden"

    # Alice's chat never saw Mallory's message: her next message is its turn 1.
    status, data, _ = call(gw.url, "GET", f"/api/chat/ui/echo/{chat_id}/stream", token=alice)
    assert status == 204
    status, chunks = ui_send(gw, alice, {"id": chat_id, "messages": [hello, user_message("go")]})
    assert status == 200 and text_of(chunks) == "echo: go (turn 1)"
    status, data, _ = call(gw.url, "POST", f"/api/chat/ui/echo/{chat_id}/stop", token=alice)
    assert status == 202 and data["ok"] is True


def test_tokens_of_the_same_subject_share_their_ui_chats(
    live_gateway: Gunicorn, chat_id: str
) -> None:
    gw = live_gateway
    morning = tokens.create_trigger_token("echo", multiple_use=True, subject="alice")
    evening = tokens.create_trigger_token("echo", multiple_use=True, subject="alice")
    bob = tokens.create_trigger_token("echo", multiple_use=True, subject="bob")
    first = user_message("one")
    status, chunks = ui_send(gw, morning, {"id": chat_id, "messages": [first]})
    assert status == 200 and text_of(chunks) == "echo: one (turn 0)"
    status, chunks = ui_send(gw, evening, {"id": chat_id, "messages": [first, user_message("two")]})
    assert status == 200 and text_of(chunks) == "echo: two (turn 1)"
    status, data = ui_send(gw, bob, {"id": chat_id, "messages": [first, user_message("three")]})
    assert status == 403 and data["error"] == "forbidden"


# -- #6: a client cannot hold worker slots longer than the task allows --------------------------


@pytest.fixture
def small_stack(redis_url: str) -> Iterator[tuple[Gunicorn, Worker]]:
    """A two-slot worker and a gateway on a database of their own."""
    url = db_url(redis_url, PIN_DB)
    redis.Redis.from_url(url).flushdb()
    worker = Worker(worker_env(url), pool="gevent", concurrency=2, name="pin").start()
    gateway = Gunicorn(gateway_env(url), name="pin")
    try:
        yield gateway.start(), worker
    finally:
        gateway.stop()
        worker.stop()


def test_preloads_asking_for_a_day_of_warm_do_not_pin_the_worker(
    small_stack: tuple[Gunicorn, Worker],
) -> None:
    gw, worker = small_stack
    token = multi("sleepy")  # the task waits warm 0.5 s
    preloads = []
    for i in range(2):  # as many as the worker has slots
        body = {"chatId": f"pin-{i}", "messages": [], "trigger": "preload",
                "warmTimeoutInSeconds": 86400}  # fmt: skip
        status, started, _ = call(gw.url, "POST", "/api/chat/tasks/sleepy/runs", body, token=token)
        assert status == 201, started
        preloads.append(started)

    def suspended(run: dict[str, str]) -> bool:
        status, info, _ = call(gw.url, "GET", f"/api/chat/runs/{run['runId']}",
                               token=run["publicAccessToken"])  # fmt: skip
        return status == 200 and info["status"] == "suspended"

    # A normal chat is answered: the preloaded runs gave their slots back after the task's
    # warm timeout instead of holding them for a day.
    body = {"chatId": "pin-normal", "messages": [user_message("anyone there?")]}
    status, started, _ = call(gw.url, "POST", "/api/chat/tasks/sleepy/runs", body, token=token)
    assert status == 201
    chunks = read_turn(gw, started["runId"], started["publicAccessToken"])
    assert text_of(chunks) == "echo: anyone there? (turn 0)", worker.log()[-3000:]
    wait_for(lambda: all(suspended(run) for run in preloads), timeout=30)


# -- #7a: a little clock skew between token minter and gateway ----------------------------------


def minted_at(iat: int, ttl: int = 600) -> str:
    """A trigger token as another process whose clock reads ``iat`` now would mint it."""
    claims = {"iss": tokens.ISSUER, "iat": iat, "exp": iat + ttl, "jti": uuid.uuid4().hex,
              "scopes": ["trigger:tasks:echo"]}  # fmt: skip
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_token_from_a_clock_a_little_ahead_is_accepted(
    live_gateway: Gunicorn, chat_id: str
) -> None:
    body = {"chatId": chat_id, "messages": [user_message("hi")]}
    now = int(time.time())
    for ahead in (1, 5, 20):
        status, data, _ = call(live_gateway.url, "POST", "/api/chat/tasks/echo/runs", body,
                               token=minted_at(now + ahead))  # fmt: skip
        assert status == 201, (ahead, data)
    status, data, _ = call(live_gateway.url, "POST", "/api/chat/tasks/echo/runs", body,
                           token=minted_at(now + 600))  # fmt: skip
    assert status == 401 and data["error"] == "invalid_token"


# -- #12: the signing secret, and what gunicorn answers itself ----------------------------------


def test_a_worker_without_a_secret_refuses_to_start(redis_url: str) -> None:
    env = worker_env(db_url(redis_url, DEV_DB))
    env.pop("CHATWORKER_SECRET_KEY")
    env.pop("CHATWORKER_DEV", None)
    worker = Worker(env, pool="gevent", concurrency=2, name="nosecret")
    try:
        with pytest.raises(RuntimeError, match="worker exited"):
            worker.start()
    finally:
        worker.stop()
    assert worker.proc is not None and worker.proc.returncode not in (0, None)
    log = worker.log()
    assert "refusing to start" in log and "CHATWORKER_SECRET_KEY is not set" in log, log
    assert "Traceback" not in log, log


DEV_WARNING = "anyone who can read this Redis can mint tokens"


def test_dev_mode_works_and_warns_about_its_secret(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = db_url(redis_url, DEV_DB)
    redis.Redis.from_url(url).flushdb()
    env = worker_env(url, CHATWORKER_DEV="1")
    env.pop("CHATWORKER_SECRET_KEY")
    worker = Worker(env, pool="gevent", concurrency=5, name="dev").start()
    gateway = Gunicorn(gateway_env(url, CHATWORKER_DEV="1"), name="dev")
    gateway.env.pop("CHATWORKER_SECRET_KEY")
    try:
        gateway.start()
        for process in (worker, gateway):
            # The worker logs it as it becomes ready, the gateway as it loads the app.
            log = wait_for(lambda p=process: DEV_WARNING in p.log() and p.log(), timeout=30)
            line = next(x for x in log.splitlines() if DEV_WARNING in x)
            assert "WARNING" in line and "development only" in line.lower(), line
        # `chatworker token` in dev mode mints with the generated secret kept in that Redis.
        monkeypatch.delenv("CHATWORKER_SECRET_KEY")
        monkeypatch.setenv("CHATWORKER_DEV", "1")
        monkeypatch.setenv("CHATWORKER_REDIS_URL", url)
        monkeypatch.setattr(tokens, "_secret_cache", {})
        config.reset_redis()
        token = multi()
        assert redis.Redis.from_url(url).get(keys.DEV_SECRET)
        body = {"chatId": "dev-chat", "messages": [user_message("hi")]}
        status, started, _ = call(gateway.url, "POST", "/api/chat/tasks/echo/runs", body,
                                  token=token)  # fmt: skip
        assert status == 201, started
        chunks = read_turn(gateway, started["runId"], started["publicAccessToken"])
        assert text_of(chunks) == "echo: hi (turn 0)"
    finally:
        gateway.stop()
        worker.stop()
        monkeypatch.undo()
        config.reset_redis()


def raw_request(gw: Gunicorn, path: str, headers: dict[str, str]) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


def test_sizes_gunicorn_refuses_before_the_app_and_what_the_app_answers(
    live_gateway: Gunicorn,
) -> None:
    """As docs/operations.md says: a header line over 8,190 bytes is gunicorn's own 431 and a
    request line over 4,094 bytes its own 414 (small HTML pages); below those the app answers,
    in JSON."""
    path = "/api/chat/runs/run_x"
    status, kind, body = raw_request(live_gateway, path, {"X-Pad": "a" * 8000})
    assert (status, kind) == (401, "application/json"), body
    assert json.loads(body)["error"] == "invalid_token"
    status, kind, _ = raw_request(live_gateway, path, {"X-Pad": "a" * 9000})
    assert (status, kind) == (431, "text/html")
    status, kind, body = raw_request(live_gateway, "/api/chat/runs/" + "a" * 4000, {})
    assert (status, kind) == (404, "application/json"), body
    status, kind, _ = raw_request(live_gateway, "/api/chat/runs/" + "a" * 4100, {})
    assert (status, kind) == (414, "text/html")
