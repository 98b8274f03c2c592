"""The AI SDK compatible /ui routes, in-process, with the run's output written by the test."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis
from flask import Flask, Request
from flask.testing import FlaskClient

from chatworker import runs, tokens
from chatworker.flask import chat_blueprint
from chatworker.store import keys
from web.app import create_app

from ..support import user_message
from .conftest_helpers import finished_turn, gateway_db, gateway_redis, xadd_chunks

__all__ = ["gateway_db", "gateway_redis"]


@pytest.fixture(scope="module")
def app(gateway_db: str) -> Flask:
    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


#: The user these tests act as: every token they make names it, so they all reach its chats.
USER = "ui-tester"


def auth(task: str = "echo", **options: Any) -> dict[str, str]:
    multiple = options.get("multiple_use", True)
    subject = options.get("subject", USER)
    token = tokens.create_trigger_token(task, multiple_use=multiple, subject=subject)
    return {"Authorization": f"Bearer {token}"}


def start(chat_id: str, text: str = "x") -> runs.TriggerResult:
    """A run of the test user's chat, started by the host app's own code."""
    return runs.trigger("echo", {"chatId": chat_id, "messages": [user_message(text)]},
                        principal=tokens.subject_principal(USER))  # fmt: skip


def assistant(text: str, id: str = "a1") -> dict[str, Any]:
    return {"id": id, "role": "assistant", "parts": [{"type": "text", "text": text}]}


def data_lines(body: bytes) -> list[str]:
    return [line[6:] for line in body.decode().splitlines() if line.startswith("data: ")]


def chunks_of(body: bytes) -> tuple[list[dict[str, Any]], bool]:
    lines = data_lines(body)
    done = bool(lines) and lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines if x != "[DONE]"], done


def post_ui(client: FlaskClient, body: dict[str, Any], **kw: Any) -> Any:
    return client.post(
        "/api/chat/ui/echo", json=body, headers=kw.pop("headers", auth()), buffered=False, **kw
    )


def read_body(resp: Any) -> bytes:
    return b"".join(resp.response)


def later(delay: float, fn: Any, *args: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        fn(*args)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_first_message_triggers_a_run_and_streams_turn_zero(
    client: FlaskClient, gateway_redis: redis.Redis
) -> None:
    chat_id = "ui-first"
    resp = post_ui(
        client,
        {"id": chat_id, "messages": [user_message("hi")], "trigger": "submit-message", "extra": 1},
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert resp.headers["X-Accel-Buffering"] == "no"
    run_id = runs.find_chat_run("echo", chat_id)
    assert run_id is not None
    info = runs.status(run_id)
    assert info.chat_id == chat_id
    turn = finished_turn(0)
    later(0.3, xadd_chunks, gateway_redis, run_id, [*turn, *finished_turn(1, input_id="i1")])
    chunks, done = chunks_of(read_body(resp))
    assert done
    assert chunks == turn[1:-1]  # no control chunks; ends at the first marker
    wire = json.loads(gateway_redis.hget(keys.run(run_id), "initial") or "{}")
    assert wire["chatId"] == chat_id and wire["extra"] == 1 and "id" not in wire
    assert wire["continuation"] is False


def test_live_run_gets_only_the_last_message_and_its_own_turn(
    client: FlaskClient, gateway_redis: redis.Redis
) -> None:
    chat_id = "ui-live"
    started = start(chat_id, "one")
    # Turn 0 is still streaming when the second message arrives.
    xadd_chunks(gateway_redis, started.run_id, finished_turn(0)[:4])
    history = [user_message("one", "u1"), assistant("echo one"), user_message("two", "u2")]
    resp = post_ui(client, {"id": chat_id, "messages": history, "trigger": "submit-message"})
    assert resp.status_code == 200
    inbox = gateway_redis.lrange(keys.inbox(started.run_id), 0, -1)
    input_id, _, payload = inbox[-1].partition(" ")
    sent = json.loads(payload)
    assert [m["id"] for m in sent["messages"]] == ["u2"]
    mine = finished_turn(1, words=3, input_id=input_id)
    later(
        0.2,
        xadd_chunks,
        gateway_redis,
        started.run_id,
        [*finished_turn(0)[4:], *mine, *finished_turn(2, input_id="other")],
    )
    chunks, done = chunks_of(read_body(resp))
    assert done and chunks == mine[1:-1]


def test_regenerate_sends_the_full_history(client: FlaskClient, gateway_redis: redis.Redis) -> None:
    chat_id = "ui-regen"
    started = start(chat_id, "one")
    history = [user_message("one", "u1"), assistant("echo one")]
    resp = post_ui(
        client,
        {
            "id": chat_id,
            "messages": history[:1],
            "trigger": "regenerate-message",
            "messageId": "a1",
        },
    )
    inbox = gateway_redis.lrange(keys.inbox(started.run_id), 0, -1)
    input_id, _, payload = inbox[-1].partition(" ")
    sent = json.loads(payload)
    assert sent["trigger"] == "regenerate-message" and sent["messageId"] == "a1"
    assert [m["id"] for m in sent["messages"]] == ["u1"]
    xadd_chunks(gateway_redis, started.run_id, finished_turn(1, input_id=input_id))
    assert chunks_of(read_body(resp))[1]


def test_ended_run_gets_a_continuation_run(client: FlaskClient, gateway_redis: redis.Redis) -> None:
    chat_id = "ui-continue"
    old = start(chat_id, "one")
    runs.cancel(old.run_id)
    history = [user_message("one", "u1"), assistant("echo one"), user_message("two", "u2")]
    resp = post_ui(client, {"id": chat_id, "messages": history, "trigger": "submit-message"})
    new_id = runs.find_chat_run("echo", chat_id)
    assert new_id and new_id != old.run_id
    wire = json.loads(gateway_redis.hget(keys.run(new_id), "initial") or "{}")
    assert wire["continuation"] is True and wire["previousRunId"] == old.run_id
    assert [m["id"] for m in wire["messages"]] == ["u1", "a1", "u2"]
    xadd_chunks(gateway_redis, new_id, finished_turn(0))
    assert chunks_of(read_body(resp))[1]


def test_run_end_mid_turn_ends_with_an_error_chunk(
    client: FlaskClient, gateway_redis: redis.Redis
) -> None:
    chat_id = "ui-dies"
    resp = post_ui(client, {"id": chat_id, "messages": [user_message("hi")]})
    run_id = runs.find_chat_run("echo", chat_id) or ""
    turn = finished_turn(0)
    end = {"type": "__run_end", "status": "failed", "reason": "worker lost"}
    later(0.2, xadd_chunks, gateway_redis, run_id, [*turn[:5], end])
    chunks, done = chunks_of(read_body(resp))
    assert done
    assert chunks[:-1] == turn[1:5]
    assert chunks[-1]["type"] == "error" and "failed" in chunks[-1]["errorText"]


def test_idle_timeout_ends_with_an_error_chunk(client: FlaskClient) -> None:
    resp = client.post(
        "/api/chat/ui/echo?timeout=0.5",
        json={"id": "ui-idle", "messages": [user_message("hi")]},
        headers=auth(),
        buffered=False,
    )
    chunks, done = chunks_of(read_body(resp))
    assert done and chunks[-1]["type"] == "error" and "No output" in chunks[-1]["errorText"]


def test_reconnect_without_a_turn_in_flight_is_204(client: FlaskClient) -> None:
    resp = client.get("/api/chat/ui/echo/never-seen/stream", headers=auth())
    assert resp.status_code == 204 and resp.data == b""
    started = start("ui-queued", "x")
    assert runs.status(started.run_id).is_streaming is False
    assert client.get("/api/chat/ui/echo/ui-queued/stream", headers=auth()).status_code == 204


def test_stop_route(client: FlaskClient) -> None:
    resp = client.post("/api/chat/ui/echo/ui-nothing/stop", headers=auth())
    assert resp.status_code == 404 and resp.get_json()["error"] == "run_not_found"
    start("ui-stop", "x")
    resp = client.post("/api/chat/ui/echo/ui-stop/stop", headers=auth())
    assert resp.status_code == 202 and resp.get_json()["ok"] is True
    bad = client.post("/api/chat/ui/echo/ui-stop/stop", json={"message": 3}, headers=auth())
    assert bad.status_code == 422


def test_ui_authorization(client: FlaskClient) -> None:
    body = {"id": "ui-auth", "messages": [user_message("hi")]}
    none = client.post("/api/chat/ui/echo", json=body)
    assert none.status_code == 401 and none.get_json()["error"] == "invalid_token"
    other = client.post("/api/chat/ui/echo", json=body, headers=auth("sleepy"))
    assert other.status_code == 403
    run_token = {"Authorization": f"Bearer {tokens.create_run_token('run_x')}"}
    assert client.post("/api/chat/ui/echo", json=body, headers=run_token).status_code == 403
    assert client.get("/api/chat/ui/echo/ui-auth/stream").status_code == 401
    assert client.post("/api/chat/ui/echo/ui-auth/stop").status_code == 401
    unknown = client.post("/api/chat/ui/nope", json=body, headers=auth("nope"))
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "task_not_found"


def test_ui_bad_bodies(client: FlaskClient) -> None:
    for raw, status in [
        (b"{", 400),
        (b"[]", 422),
        (b'{"messages": []}', 422),
        (b'{"id": "c", "messages": []}', 422),
        (b'{"id": "c", "messages": [1]}', 422),
        (b'{"id": "c", "messages": [], "trigger": "x"}', 422),
    ]:
        resp = client.post(
            "/api/chat/ui/echo", data=raw, headers={**auth(), "Content-Type": "application/json"}
        )
        assert resp.status_code == status, raw
        assert resp.get_json()["error"]


def test_one_time_token_is_spent_only_when_a_run_starts(
    client: FlaskClient, gateway_redis: redis.Redis
) -> None:
    headers = auth(multiple_use=False)
    first = client.post(
        "/api/chat/ui/echo?timeout=0.3",
        json={"id": "ui-otu", "messages": [user_message("hi")]},
        headers=headers,
    )
    assert first.status_code == 200
    # The run is live: sending to it does not need to spend the token again.
    second = client.post(
        "/api/chat/ui/echo?timeout=0.3",
        json={"id": "ui-otu", "messages": [user_message("again")]},
        headers=headers,
    )
    assert second.status_code == 200
    # A new chat needs a new run: the spent token is refused.
    third = client.post(
        "/api/chat/ui/echo",
        json={"id": "ui-otu-2", "messages": [user_message("hi")]},
        headers=headers,
    )
    assert third.status_code == 401 and "already used" in third.get_json()["message"]


def test_custom_authorize_callback(gateway_db: str) -> None:
    calls: list[str] = []

    def authorize(request: Request, task_id: str) -> bool:
        calls.append(task_id)
        return request.headers.get("X-User") == "alice"

    app = Flask("custom")
    app.register_blueprint(chat_blueprint(authorize_ui=authorize))
    client = app.test_client()
    refused = client.get("/api/chat/ui/echo/c/stream", headers={"X-User": "bob"})
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    assert client.get("/api/chat/ui/echo/c/stream", headers={"X-User": "alice"}).status_code == 204
    assert calls == ["echo", "echo"]


def test_resume_replays_the_turn_in_flight(client: FlaskClient, gateway_redis: redis.Redis) -> None:
    chat_id = "ui-resume"
    started = start(chat_id, "x")
    turn = finished_turn(0, words=8)
    ids = xadd_chunks(gateway_redis, started.run_id, turn[:6])
    # What the engine records while a turn streams (see chatworker/store/lua/take.lua).
    gateway_redis.hset(
        keys.run(started.run_id),
        mapping={"is_streaming": "1", "turn_start_id": ids[0], "status": "running"},
    )
    resp = client.get(f"/api/chat/ui/echo/{chat_id}/stream", headers=auth(), buffered=False)
    assert resp.status_code == 200
    later(0.2, xadd_chunks, gateway_redis, started.run_id, turn[6:])
    chunks, done = chunks_of(read_body(resp))
    assert done and chunks == turn[1:-1]


def test_a_chat_belongs_to_the_subject_that_started_it(client: FlaskClient) -> None:
    chat_id = "ui-owned"
    resp = post_ui(client, {"id": chat_id, "messages": [user_message("hi")]},
                   headers=auth(subject="alice"), query_string={"timeout": "0.3"})  # fmt: skip
    assert resp.status_code == 200
    read_body(resp)
    run_id = runs.find_chat_run("echo", chat_id) or ""
    assert runs.principal_of(run_id) == tokens.subject_principal("alice")
    bob = auth(subject="bob")
    for refused in (
        client.get(f"/api/chat/ui/echo/{chat_id}/stream", headers=bob),
        client.post(f"/api/chat/ui/echo/{chat_id}/stop", headers=bob),
        post_ui(client, {"id": chat_id, "messages": [user_message("mine now")]}, headers=bob),
    ):
        assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    assert runs.status(run_id).pending_inputs == 1  # only Alice's own message
    # Another token of Alice's reaches it.
    assert client.get(f"/api/chat/ui/echo/{chat_id}/stream",
                      headers=auth(subject="alice")).status_code == 204  # fmt: skip
    # A live run the host app started for nobody in particular is nobody's through /ui; once
    # it has ended, its chat continues in a run of whoever sends to it.
    nobodys = runs.trigger("echo", {"chatId": "ui-nobodys", "messages": [user_message("x")]})
    resp = client.post("/api/chat/ui/echo/ui-nobodys/stop", headers=auth())
    assert resp.status_code == 403
    runs.cancel(nobodys.run_id)
    resp = post_ui(client, {"id": "ui-nobodys", "messages": [user_message("y")]},
                   query_string={"timeout": "0.3"})  # fmt: skip
    assert resp.status_code == 200
    read_body(resp)
    taken = runs.find_chat_run("echo", "ui-nobodys") or ""
    assert taken != nobodys.run_id and runs.principal_of(taken) == tokens.subject_principal(USER)


def test_a_host_callback_names_the_user_or_shares_the_chats(gateway_db: str) -> None:
    def as_user(request: Request, task_id: str) -> bool | str:
        return request.headers.get("X-User") or False

    app = Flask("per-user")
    app.register_blueprint(chat_blueprint(authorize_ui=as_user))
    client = app.test_client()
    resp = client.post("/api/chat/ui/echo?timeout=0.3", headers={"X-User": "carol"},
                       json={"id": "ui-carol", "messages": [user_message("hi")]})  # fmt: skip
    assert resp.status_code == 200
    run_id = runs.find_chat_run("echo", "ui-carol") or ""
    # The user the callback names is the principal of tokens with that subject.
    assert runs.principal_of(run_id) == tokens.subject_principal("carol")
    dave = client.post("/api/chat/ui/echo/ui-carol/stop", headers={"X-User": "dave"})
    assert dave.status_code == 403
    carol = client.post("/api/chat/ui/echo/ui-carol/stop", headers={"X-User": "carol"})
    assert carol.status_code == 202
    assert client.post("/api/chat/ui/echo/ui-carol/stop").status_code == 403  # refused: no user

    shared = Flask("shared")
    shared.register_blueprint(chat_blueprint(authorize_ui=lambda request, task_id: True))
    anyone = shared.test_client().post("/api/chat/ui/echo/ui-carol/stop")
    assert anyone.status_code == 202  # True: the host app shares every chat of the task
