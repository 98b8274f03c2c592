"""Every route of the gateway blueprint and every error it answers (in-process, real Redis)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from chatworker import InvalidPayload, config, runs, tokens
from chatworker.flask import chat_blueprint
from chatworker.store import keys
from web.app import create_app

from ..conftest import SECRET
from ..support import user_message
from .conftest_helpers import finished_turn, gateway_db, gateway_redis, xadd_chunks

__all__ = ["gateway_db", "gateway_redis"]


@pytest.fixture(scope="module")
def app(gateway_db: str) -> Flask:
    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def trigger_token(task: str = "echo", **options: Any) -> str:
    return tokens.create_trigger_token(task, multiple_use=options.pop("multiple_use", True))


def body(chat_id: str = "chat-api", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"chatId": chat_id, "messages": [user_message(text)], **extra}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_run(client: FlaskClient, **extra: Any) -> tuple[str, str]:
    resp = client.post(
        "/api/chat/tasks/echo/runs", json=body(**extra), headers=auth(trigger_token())
    )
    data = resp.get_json()
    assert resp.status_code == 201, data
    return data["runId"], data["publicAccessToken"]


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.data[:300])
    assert resp.mimetype == "application/json", resp.data[:300]
    data = resp.get_json()
    assert set(data) == {"error", "message"} and data["message"], data
    if code is not None:
        assert data["error"] == code, data
    return data


def forged(claims: dict[str, Any], key: str = SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    full = {"iss": "chatworker", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(full, key, algorithm=alg)


def none_alg(claims: dict[str, Any]) -> str:
    def b64(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    full = {"iss": "chatworker", "iat": now, "exp": now + 600, **claims}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(full)}."


def tampered(token: str, scopes: list[str]) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scopes"] = scopes
    new = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{new}.{sig}"


# -- trigger -----------------------------------------------------------------------------------


def test_trigger_creates_a_run_and_returns_its_token(client: FlaskClient) -> None:
    resp = client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(trigger_token()))
    assert resp.status_code == 201
    data = resp.get_json()
    assert set(data) == {"runId", "publicAccessToken"}
    claims = tokens.verify(data["publicAccessToken"])
    assert f"read:runs:{data['runId']}" in claims.scopes
    assert f"write:inputStreams:{data['runId']}" in claims.scopes
    info = client.get(f"/api/chat/runs/{data['runId']}", headers=auth(data["publicAccessToken"]))
    assert info.status_code == 200
    assert info.get_json() == {
        "runId": data["runId"],
        "taskId": "echo",
        "chatId": "chat-api",
        "status": "queued",
        "turn": 0,
        "isStreaming": False,
        "lastEventId": None,
        "turnStartId": None,
        "pendingInputs": 1,  # the trigger's own message, not yet taken by a worker
    }


def test_idempotency_key_returns_the_same_run(client: FlaskClient) -> None:
    token = trigger_token()
    headers = {**auth(token), "Idempotency-Key": "key-1"}
    first = client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers)
    again = client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers)
    other = client.post(
        "/api/chat/tasks/echo/runs", json=body(), headers={**auth(token), "Idempotency-Key": "k2"}
    )
    assert first.status_code == again.status_code == other.status_code == 201
    assert first.get_json()["runId"] == again.get_json()["runId"] != other.get_json()["runId"]


def test_a_one_time_token_is_spent_by_an_idempotent_retry_too(client: FlaskClient) -> None:
    token = tokens.create_trigger_token("echo", subject="retrier")
    headers = {**auth(token), "Idempotency-Key": "otu-retry"}
    first = client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers)
    assert first.status_code == 201
    again = client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers)
    assert "already used" in assert_error(again, 401, "invalid_token")["message"]
    # A fresh one-time token of the same subject retries the same request: the same run.
    fresh = tokens.create_trigger_token("echo", subject="retrier")
    retry = client.post("/api/chat/tasks/echo/runs", json=body(),
                        headers={**auth(fresh), "Idempotency-Key": "otu-retry"})  # fmt: skip
    assert retry.status_code == 201 and retry.get_json()["runId"] == first.get_json()["runId"]
    assert_error(client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(fresh)), 401)


def test_an_idempotency_key_is_scoped_to_the_caller(client: FlaskClient) -> None:
    def trigger(token: str) -> str:
        headers = {**auth(token), "Idempotency-Key": "everyones-key"}
        resp = client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers)
        assert resp.status_code == 201
        return str(resp.get_json()["runId"])

    alice = trigger_token()
    first = trigger(alice)
    assert trigger(alice) == first
    assert trigger(trigger_token()) != first  # another token without a subject
    assert trigger(tokens.create_trigger_token("echo", multiple_use=True, subject="x")) != first


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "é"])
def test_bad_idempotency_key_is_400(client: FlaskClient, key: str) -> None:
    headers = {**auth(trigger_token()), "Idempotency-Key": key}
    assert_error(client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers), 400)


def test_one_time_token_is_spent_only_on_success(client: FlaskClient) -> None:
    token = tokens.create_trigger_token("echo")
    bad = client.post("/api/chat/tasks/echo/runs", json={"chatId": 5}, headers=auth(token))
    assert_error(bad, 422, "invalid_payload")
    ok = client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(token))
    assert ok.status_code == 201
    reused = client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(token))
    assert "already used" in assert_error(reused, 401, "invalid_token")["message"]


def test_unknown_task_is_404(client: FlaskClient) -> None:
    resp = client.post(
        "/api/chat/tasks/nope/runs", json=body(), headers=auth(trigger_token("nope"))
    )
    assert_error(resp, 404, "task_not_found")


def expired_token(scopes: list[str]) -> str:
    now = int(time.time())  # expired for longer than the clock-skew leeway
    return jwt.encode(
        {"iss": "chatworker", "iat": now - 200, "exp": now - 100, "scopes": scopes}, SECRET
    )


BAD_TOKENS: dict[str, Any] = {
    "missing": lambda scopes: None,
    "garbage": lambda scopes: "not-a-jwt",
    "expired": expired_token,
    "none-alg": lambda scopes: none_alg({"scopes": scopes}),
    "wrong-key": lambda scopes: forged({"scopes": scopes}, key="other" * 8),
    "tampered": lambda scopes: tampered(tokens.create_trigger_token("other"), scopes),
    "no-scopes": lambda scopes: forged({}),
    "wrong-issuer": lambda scopes: jwt.encode(
        {"iss": "x", "iat": 1, "exp": int(time.time()) + 60, "scopes": scopes}, SECRET
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_are_401_on_every_route(client: FlaskClient, kind: str) -> None:
    run_id, _ = start_run(client)
    scopes = ["trigger:tasks:echo", f"read:runs:{run_id}", f"write:inputStreams:{run_id}"]
    token = BAD_TOKENS[kind](scopes)
    headers = auth(token) if token else {}
    calls = [
        client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers),
        client.get(f"/api/chat/runs/{run_id}", headers=headers),
        client.post(f"/api/chat/runs/{run_id}/input/messages", json=body(), headers=headers),
        client.post(f"/api/chat/runs/{run_id}/input/stop", json={"stop": True}, headers=headers),
        client.post(f"/api/chat/runs/{run_id}/cancel", headers=headers),
        client.get(f"/api/chat/runs/{run_id}/stream", headers=headers),
        client.post(f"/api/chat/runs/{run_id}/token", headers=headers),
    ]
    for resp in calls:
        data = assert_error(resp, 401, "invalid_token")
        if kind == "expired":
            assert "expired" in data["message"]
    assert runs.status(run_id).status == "queued"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ", "token abc"])
def test_malformed_authorization_header_is_401(client: FlaskClient, header: str) -> None:
    resp = client.post("/api/chat/tasks/echo/runs", json=body(), headers={"Authorization": header})
    assert_error(resp, 401, "invalid_token")


def test_token_of_another_task_or_run_is_403(client: FlaskClient) -> None:
    run_a, token_a = start_run(client)
    _, token_b = start_run(client)
    other_task = trigger_token("sleepy")
    assert_error(
        client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(other_task)), 403
    )
    assert_error(client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(token_a)), 403)
    calls = [
        client.get(f"/api/chat/runs/{run_a}", headers=auth(token_b)),
        client.post(f"/api/chat/runs/{run_a}/input/messages", json=body(), headers=auth(token_b)),
        client.post(f"/api/chat/runs/{run_a}/input/stop", headers=auth(token_b)),
        client.post(f"/api/chat/runs/{run_a}/cancel", headers=auth(token_b)),
        client.get(f"/api/chat/runs/{run_a}/stream?token={token_b}"),
        client.get(f"/api/chat/runs/{run_a}", headers=auth(trigger_token())),
        client.post(f"/api/chat/runs/{run_a}/token", headers=auth(token_a)),
        client.post(f"/api/chat/runs/{run_a}/token", headers=auth(other_task)),
    ]
    for resp in calls:
        assert_error(resp, 403, "forbidden")
    assert runs.status(run_a).status == "queued"


def test_read_only_token_cannot_write(client: FlaskClient) -> None:
    run_id, _ = start_run(client)
    reader = forged({"scopes": [f"read:runs:{run_id}"]})
    assert client.get(f"/api/chat/runs/{run_id}", headers=auth(reader)).status_code == 200
    resp = client.post(f"/api/chat/runs/{run_id}/cancel", headers=auth(reader))
    assert_error(resp, 403, "forbidden")


def test_unknown_run_is_404(client: FlaskClient) -> None:
    token = tokens.create_run_token("run_missing")
    for resp in [
        client.get("/api/chat/runs/run_missing", headers=auth(token)),
        client.post("/api/chat/runs/run_missing/input/messages", json=body(), headers=auth(token)),
        client.post("/api/chat/runs/run_missing/input/stop", headers=auth(token)),
        client.post("/api/chat/runs/run_missing/cancel", headers=auth(token)),
        client.get("/api/chat/runs/run_missing/stream", headers=auth(token)),
        client.post("/api/chat/runs/run_missing/token", headers=auth(trigger_token())),
    ]:
        assert_error(resp, 404, "run_not_found")


def test_message_to_a_run_that_expired_since_the_last_one_is_404(
    client: FlaskClient, gateway_redis: redis.Redis
) -> None:
    run_id, token = start_run(client, chatId="chat-expired")
    url = f"/api/chat/runs/{run_id}/input/messages"
    assert client.post(url, json=body("chat-expired"), headers=auth(token)).status_code == 202
    gateway_redis.delete(keys.run(run_id))  # its retention ran out
    assert_error(client.post(url, json=body("chat-expired"), headers=auth(token)), 404,
                 "run_not_found")  # fmt: skip


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{bad", "application/json", 400, "malformed_json"),
        (b'{"chatId": "c", "messages": [] ', "application/json", 400, "malformed_json"),
        (b'{"chatId": NaN, "messages": []}', "application/json", 400, "malformed_json"),
        (b"\xff\xfe{}", "application/json", 400, "malformed_json"),
        (b"[" * 100000 + b"]" * 100000, "application/json", 422, "invalid_payload"),
        (b'{"chatId": "c", "messages": [], "x": ' + b"[" * 250 + b"]" * 250 + b"}",
         "application/json", 422, "invalid_payload"),
        (b'{"chatId": "c", "messages": [], "x": "\\ud800"}', "application/json", 422,
         "invalid_payload"),
        (b"", "application/json", 400, "empty_body"),
        (b"chatId=c", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"chatId": "c"}', "text/plain", 415, "unsupported_media_type"),
        (b"[]", "application/json", 422, "invalid_payload"),
        (b'"text"', "application/json", 422, "invalid_payload"),
        (b'{"chatId": 5, "messages": []}', "application/json", 422, "invalid_payload"),
        (b'{"chatId": "c", "messages": "x"}', "application/json", 422, "invalid_payload"),
        (b'{"chatId": "c", "messages": [{"role": "user"}]}', "application/json", 422, None),
        (b'{"chatId": "c", "messages": [], "trigger": "nope"}', "application/json", 422, None),
        (b'{"chatId": "c", "messages": [], "metadata": {"delay": "slow"}}', None, 422, None),
    ],
)
def test_bad_trigger_bodies(
    client: FlaskClient, raw: bytes, content_type: str | None, status: int, code: str | None
) -> None:
    headers = auth(trigger_token())
    if content_type:
        headers["Content-Type"] = content_type
    resp = client.post("/api/chat/tasks/echo/runs", data=raw, headers=headers)
    data = assert_error(resp, status, code)
    if status == 422 and b"metadata" in raw:
        assert "metadata" in data["message"]


def nested(arrays: int) -> Any:
    value: Any = 0
    for _ in range(arrays):
        value = [value]
    return value


#: Values ``json.loads`` and python-mode validation accept that the worker's JSON parser (which
#: reads every queued message) refuses: each one used to be queued, then fail the whole run.
UNREADABLE = {
    "lone surrogate": ("\ud800", "contains an invalid unicode escape (a lone surrogate)"),
    "lone low surrogate": ("x\udc00", "contains an invalid unicode escape (a lone surrogate)"),
    "201 levels": (nested(200), "nests deeper than 200 levels"),
    "260 levels": (nested(259), "nests deeper than 200 levels"),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_what_the_worker_could_not_read_is_422_and_nothing_is_enqueued(
    client: FlaskClient, gateway_redis: redis.Redis, case: str
) -> None:
    value, says = UNREADABLE[case]
    slug = case.replace(" ", "-")
    run_id, token = start_run(client, chat_id=f"unreadable-{slug}")
    before = runs.status(run_id).pending_inputs
    resp = client.post(f"/api/chat/runs/{run_id}/input/messages",
                       json=body(chat_id=f"unreadable-{slug}", note=value), headers=auth(token))
    data = assert_error(resp, 422, "invalid_payload")
    assert says in data["message"] and "line 1 column" in data["message"], data
    caller = trigger_token()
    trigger = client.post("/api/chat/tasks/echo/runs", json=body(chat_id="never", note=value),
                          headers={**auth(caller), "Idempotency-Key": f"k-{slug}"})
    assert says in assert_error(trigger, 422, "invalid_payload")["message"]
    principal = tokens.verify(caller).principal
    assert gateway_redis.get(keys.idempotency("echo", principal, f"k-{slug}")) is None
    # The Python API refuses it the same way, before writing anything.
    with pytest.raises(InvalidPayload, match=re.escape(says)):
        runs.send_message(run_id, body(chat_id=f"unreadable-{slug}", note=value))
    with pytest.raises(InvalidPayload, match="the payload"):
        runs.trigger("echo", body(chat_id="never", note=value), idempotency_key=f"p-{slug}")
    assert gateway_redis.get(keys.idempotency("echo", "", f"p-{slug}")) is None
    assert runs.find_chat_run("echo", "never") is None
    assert runs.status(run_id).pending_inputs == before
    # A stop's message is read with the same parser (a lone surrogate there was a 500).
    stop = client.post(f"/api/chat/runs/{run_id}/input/stop",
                       json={"stop": True, "message": value}, headers=auth(token))
    assert says in assert_error(stop, 422, "invalid_payload")["message"]


def test_oversized_bodies_are_413(client: FlaskClient) -> None:
    big = json.dumps(body(text="x" * (1024 * 1024)))
    resp = client.post(
        "/api/chat/tasks/echo/runs",
        data=big,
        headers={**auth(trigger_token()), "Content-Type": "application/json"},
    )
    assert_error(resp, 413, "payload_too_large")
    run_id, token = start_run(client)
    resp = client.post(
        f"/api/chat/runs/{run_id}/input/messages",
        data=big,
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert_error(resp, 413, "payload_too_large")


def test_body_limit_is_configurable(gateway_db: str) -> None:
    app = Flask("limited")
    app.register_blueprint(chat_blueprint(max_body_bytes=200))
    client = app.test_client()
    resp = client.post(
        "/api/chat/tasks/echo/runs", json=body(text="x" * 300), headers=auth(trigger_token())
    )
    assert_error(resp, 413)
    ok = client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(trigger_token()))
    assert ok.status_code == 201


# -- run routes --------------------------------------------------------------------------------


def test_send_stop_cancel_then_message_to_ended_run_is_409(client: FlaskClient) -> None:
    run_id, token = start_run(client)
    sent = client.post(
        f"/api/chat/runs/{run_id}/input/messages", json=body(text="more"), headers=auth(token)
    )
    assert sent.status_code == 202 and set(sent.get_json()) == {"inputId", "outcome"}
    assert sent.get_json()["outcome"] == "queued"  # no turn was streaming
    again = client.post(
        f"/api/chat/runs/{run_id}/input/messages", json=body(text="more"), headers=auth(token)
    )
    assert again.get_json()["inputId"] != sent.get_json()["inputId"]
    bad = client.post(
        f"/api/chat/runs/{run_id}/input/messages", json={"chatId": []}, headers=auth(token)
    )
    assert_error(bad, 422, "invalid_payload")
    stop = client.post(
        f"/api/chat/runs/{run_id}/input/stop",
        json={"stop": True, "message": "enough"},
        headers=auth(token),
    )
    assert stop.status_code == 202 and stop.get_json()["ok"] is True
    assert (
        client.post(f"/api/chat/runs/{run_id}/input/stop", headers=auth(token)).status_code == 202
    )
    cancel = client.post(f"/api/chat/runs/{run_id}/cancel", headers=auth(token))
    assert cancel.status_code == 202
    assert runs.status(run_id).status == "canceled"
    late = client.post(
        f"/api/chat/runs/{run_id}/input/messages", json=body(text="late"), headers=auth(token)
    )
    assert_error(late, 409, "run_ended")
    stream = client.get(f"/api/chat/runs/{run_id}/stream?token={token}")
    text = stream.get_data(as_text=True)
    assert stream.status_code == 200 and '"__run_end"' in text and '"canceled"' in text


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"stop": false}', 422),
        (b'{"stop": true, "message": 5}', 422),
        (b'{"stop": true, "inputId": 3}', 422),
        (b'{"stop": true, "inputId": "../x"}', 422),
        (b"[true]", 422),
        (b"{", 400),
    ],
)
def test_bad_stop_bodies(client: FlaskClient, raw: bytes, status: int) -> None:
    run_id, token = start_run(client)
    resp = client.post(
        f"/api/chat/runs/{run_id}/input/stop",
        data=raw,
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert_error(resp, status)


def test_token_route_mints_a_fresh_run_token(client: FlaskClient) -> None:
    run_id, _ = start_run(client)
    resp = client.post(f"/api/chat/runs/{run_id}/token", headers=auth(trigger_token()))
    assert resp.status_code == 200 and set(resp.get_json()) == {"publicAccessToken"}
    fresh = resp.get_json()["publicAccessToken"]
    assert client.get(f"/api/chat/runs/{run_id}", headers=auth(fresh)).status_code == 200
    one_time = tokens.create_trigger_token("echo")
    assert client.post(f"/api/chat/runs/{run_id}/token", headers=auth(one_time)).status_code == 200
    assert_error(client.post(f"/api/chat/runs/{run_id}/token", headers=auth(one_time)), 401)


def test_stream_route_arguments_are_validated(client: FlaskClient) -> None:
    run_id, token = start_run(client)
    base = f"/api/chat/runs/{run_id}/stream?token={token}"
    for query in [
        "&lastEventId=abc",
        "&lastEventId=1-2-3",
        "&lastEventId=-1",
        "&timeout=abc",
        "&timeout=0",
        "&timeout=-5",
        "&timeout=nan",
        "&timeout=inf",
    ]:
        assert_error(client.get(base + query), 400, "bad_request")
    resp = client.get(base, headers={"Last-Event-ID": "garbage"})
    assert_error(resp, 400, "bad_request")


def test_stream_of_a_finished_run(client: FlaskClient, gateway_redis: redis.Redis) -> None:
    run_id, token = start_run(client)
    chunks = [*finished_turn(0), {"type": "__run_end", "status": "completed", "reason": "done"}]
    ids = xadd_chunks(gateway_redis, run_id, chunks)
    resp = client.get(f"/api/chat/runs/{run_id}/stream?token={token}&timeout=5")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    text = resp.get_data(as_text=True)
    assert text.startswith(": ")
    got = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
    assert got == ids
    numeric = client.get(f"/api/chat/runs/{run_id}/stream?token={token}&lastEventId=0")
    assert [
        line[4:] for line in numeric.get_data(as_text=True).splitlines() if line.startswith("id: ")
    ] == ids


# -- routing and server errors -------------------------------------------------------------------


def test_unknown_paths_and_methods_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/api/chat/nothing/here"), 404, "not_found")
    assert_error(client.get("/api/chat"), 404)
    resp = client.get("/api/chat/tasks/echo/runs")
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    assert_error(client.delete("/api/chat/runs/run_x"), 405, "method_not_allowed")
    assert_error(client.put("/api/chat/ui/echo"), 405)
    assert client.get("/healthz").get_json() == {"ok": True, "redis": "ok"}
    assert b"chatworker" in client.get("/").data


def test_bug_is_a_json_500(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, token = start_run(client)

    def broken(run_id: str) -> Any:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(runs, "status", broken)
    assert_error(client.get(f"/api/chat/runs/{run_id}", headers=auth(token)), 500, "internal_error")


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from ..support import free_port

    monkeypatch.setenv("CHATWORKER_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    config.reset_redis()
    yield
    monkeypatch.undo()
    config.reset_redis()


def test_redis_down_is_503(client: FlaskClient, redis_down: None) -> None:
    run_token = tokens.create_run_token("run_x")
    ui_body = {"id": "c", "messages": [user_message("x")]}
    for resp in [
        client.get("/api/chat/runs/run_x", headers=auth(run_token)),
        client.post("/api/chat/tasks/echo/runs", json=body(), headers=auth(trigger_token())),
        client.post("/api/chat/runs/run_x/input/messages", json=body(), headers=auth(run_token)),
        client.get("/api/chat/runs/run_x/stream", headers=auth(run_token)),
        client.post("/api/chat/ui/echo", json=ui_body, headers=auth(trigger_token())),
        client.get("/healthz"),
    ]:
        data = assert_error(resp, 503, "redis_unavailable")
        assert "Redis" in data["message"]


def test_blueprint_in_a_host_app_with_its_own_prefix_and_tasks(gateway_db: str) -> None:
    from .. import tasks as test_tasks

    app = Flask("host")
    app.register_blueprint(chat_blueprint([test_tasks.echo], url_prefix="/chat"))

    @app.get("/")
    def home() -> str:
        return "home"

    client = app.test_client()
    ok = client.post("/chat/tasks/echo/runs", json=body(), headers=auth(trigger_token()))
    assert ok.status_code == 201
    other = client.post(
        "/chat/tasks/sleepy/runs", json=body(), headers=auth(trigger_token("sleepy"))
    )
    assert_error(other, 404, "task_not_found")
    assert_error(client.get("/chat/zzz"), 404)
    assert client.get("/zzz").status_code == 404 and client.get("/zzz").mimetype == "text/html"
    assert client.get("/").data == b"home"


def test_no_input_produces_html_or_500(client: FlaskClient) -> None:
    run_id, token = start_run(client)
    paths = [
        "/api/chat/tasks/echo/runs",
        f"/api/chat/runs/{run_id}",
        "/api/chat/ui/echo",
        f"/api/chat/runs/{run_id}/input/messages",
        f"/api/chat/runs/{run_id}/token",
        "/api/chat/tasks/%00/runs",
        "/api/chat/runs/..%2F..",
        "/api/chat/ui/echo/x/stream",
        "/api/chat/tasks/" + "a" * 5000 + "/runs",
        "/api/chat/runs/r%20r/stream",
    ]
    bodies: list[Any] = [
        None,
        b"null",
        b"{}",
        b"[]",
        b"1",
        b'{"chatId": ""}',
        b"\x00\x01",
        b'{"chatId": "c", "messages": [{"id": 1, "role": "user", "parts": 3}]}',
        b'{"id": "c", "messages": null, "trigger": 5}',
    ]
    for path in paths:
        for method in ("GET", "POST", "DELETE"):
            for raw in bodies:
                for token_header in ({}, auth(token), auth(trigger_token())):
                    resp = client.open(
                        path,
                        method=method,
                        data=raw,
                        headers={**token_header, "Content-Type": "application/json"},
                    )
                    if resp.status_code >= 300:
                        assert resp.mimetype == "application/json", (path, method, raw)
                    assert resp.status_code < 500, (path, method, raw, resp.data[:200])
                    resp.close()


def test_keys_used_by_idempotency(gateway_redis: redis.Redis, client: FlaskClient) -> None:
    token = trigger_token()
    headers = {**auth(token), "Idempotency-Key": "stored"}
    resp = client.post("/api/chat/tasks/echo/runs", json=body(), headers=headers)
    key = keys.idempotency("echo", tokens.verify(token).principal, "stored")
    assert gateway_redis.get(key) == resp.get_json()["runId"]
    assert 0 < gateway_redis.ttl(key) <= 86400


@pytest.mark.parametrize(("asked", "kept"), [(86400, 10), (10, 10), (2.5, 2.5), (0, 0)])
def test_a_client_warm_timeout_is_capped_by_the_tasks(
    client: FlaskClient, gateway_redis: redis.Redis, asked: float, kept: float
) -> None:
    preload = {"chatId": "warm", "messages": [], "trigger": "preload"}
    resp = client.post(
        "/api/chat/tasks/echo/runs",  # echo waits warm 10 s
        json={**preload, "warmTimeoutInSeconds": asked},
        headers=auth(trigger_token()),
    )
    assert resp.status_code == 201
    initial = json.loads(gateway_redis.hget(keys.run(resp.get_json()["runId"]), "initial") or "")
    assert initial["warmTimeoutInSeconds"] == kept
