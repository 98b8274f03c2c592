"""Following a chat (``GET /ui/<task>/<chat>/follow``): every turn, whoever sends it, across
the chat's runs and across gateways; real gunicorn gateways and a real celery worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chatworker import tokens

from ..support import user_message
from .conftest_helpers import Gunicorn, SSEClient, SSEEvent, call, gateway_env, live_gateway

__all__ = ["live_gateway"]

pytestmark = pytest.mark.integration

USER = "follow-tester"


def bearer(subject: str = USER) -> dict[str, str]:
    token = tokens.create_trigger_token("echo", multiple_use=True, subject=subject)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def second_gateway(redis_url: str, live_gateway: Gunicorn) -> Iterator[Gunicorn]:
    with Gunicorn(gateway_env(redis_url, CHATWORKER_SSE_HEARTBEAT="1"), name="follow-b") as gw:
        yield gw
    assert "Traceback" not in gw.log(), gw.log()[-3000:]


def send(gw: Gunicorn, chat_id: str, messages: list[dict[str, Any]]) -> str:
    """A message sent the AI SDK way (``POST /ui/<task>``) by another device; its reply's text."""
    body = {"id": chat_id, "messages": messages, "trigger": "submit-message"}
    status, text, _ = call(gw.url, "POST", "/api/chat/ui/echo", body, headers=bearer(),
                           timeout=30)  # fmt: skip
    assert status == 200, text
    chunks = [json.loads(line[6:]) for line in str(text).splitlines()
              if line.startswith("data: {")]  # fmt: skip
    return text_of(chunks)


marker_ids: list[str] = []


def until(events: Iterator[SSEEvent], kind: str) -> list[dict[str, Any]]:
    """The chunks read up to and including the next one of type ``kind``."""
    out: list[dict[str, Any]] = []
    for item in events:
        out.append(item.json())
        if out[-1]["type"] == "__turn_complete" and item.id:
            marker_ids.append(item.id)
        if out[-1]["type"] == kind:
            return out
    raise AssertionError(f"the follow stream closed before {kind}: {out[-8:]}")


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c.get("delta", "") for c in chunks if c["type"] == "text-delta")


def test_a_follower_sees_every_turn_across_a_continuation_run_and_gateways(
    live_gateway: Gunicorn, second_gateway: Gunicorn, chat_id: str
) -> None:
    first, second = user_message("one"), user_message("two")
    path = f"/api/chat/ui/echo/{chat_id}/follow?timeout=30"
    # A viewer opens the chat before it has any run, on another gateway than the sender's.
    with SSEClient(second_gateway.url, path, headers=bearer()) as follower:
        assert follower.status == 200
        events = follower.events()
        assert "echo: one (turn 0)" in send(live_gateway, chat_id, [first])
        turn0 = until(events, "__turn_complete")
        run = turn0[0]
        assert run["type"] == "__chat_run" and run["runId"].startswith("run_")
        start = turn0[1]
        assert start["type"] == "__turn_start" and start["turn"] == 0
        assert start["messages"] == [first] and start["history"] is True
        assert text_of(turn0).strip() == "echo: one (turn 0)"
        reply = next(c for c in turn0 if c["type"] == "start")["messageId"]

        # The run ends; the next message continues the chat in a new run, which is followed too.
        token = run["publicAccessToken"]
        status, _, _ = call(live_gateway.url, "POST", f"/api/chat/runs/{run['runId']}/cancel",
                            token=token)  # fmt: skip
        assert status == 202
        assert until(events, "__run_end")[-1]["status"] == "canceled"
        history = [first, {"id": reply, "role": "assistant",
                           "parts": [{"type": "text", "text": "echo: one (turn 0)"}]}, second]
        assert "echo: two (turn 0)" in send(live_gateway, chat_id, history)
        turn = until(events, "__turn_complete")
        nxt = turn[0]
        assert nxt["type"] == "__chat_run" and nxt["runId"] != run["runId"]
        assert turn[1]["type"] == "__turn_start" and turn[1]["history"] is True
        assert [m["id"] for m in turn[1]["messages"]] == [first["id"], reply, second["id"]]
        assert text_of(turn).strip() == "echo: two (turn 0)"
        # The token that comes with the new run is one for it.
        status, info, _ = call(second_gateway.url, "GET", f"/api/chat/runs/{nxt['runId']}",
                               token=nxt["publicAccessToken"])  # fmt: skip
        assert status == 200 and info["chatId"] == chat_id

    # After a reload: resume by run id and entry id, strictly after what was read.
    third = user_message("three")
    assert "echo: three (turn 1)" in send(live_gateway, chat_id, [third])
    query = f"{path}&runId={nxt['runId']}"
    with SSEClient(second_gateway.url, query,
                   headers={**bearer(), "Last-Event-ID": marker_ids[-1]}) as resumed:  # fmt: skip
        rest = until(resumed.events(), "__turn_complete")
    assert [c["type"] for c in rest[:2]] == ["__chat_run", "__turn_start"]
    assert rest[1]["turn"] == 1 and rest[1]["messages"] == [third] and rest[1]["history"] is False
    assert text_of(rest).strip() == "echo: three (turn 1)"
    # Without a position it starts at the chat's current one: nothing is replayed between turns.
    idle = f"/api/chat/ui/echo/{chat_id}/follow?timeout=1"
    with SSEClient(second_gateway.url, idle, headers=bearer()) as fresh:
        assert [e.json()["type"] for e in fresh.read_all()] == ["__chat_run"]


def test_a_chat_of_another_user_cannot_be_followed(
    live_gateway: Gunicorn, chat_id: str
) -> None:
    send(live_gateway, chat_id, [user_message("mine")])
    status, body, _ = call(live_gateway.url, "GET", f"/api/chat/ui/echo/{chat_id}/follow",
                           headers=bearer("someone-else"))  # fmt: skip
    assert status == 403 and body["error"] == "forbidden"
    status, body, _ = call(live_gateway.url, "GET", f"/api/chat/ui/echo/{chat_id}/follow")
    assert status == 401


def test_a_follow_position_that_is_not_this_chats_is_a_clear_error(
    live_gateway: Gunicorn, chat_id: str
) -> None:
    send(live_gateway, chat_id, [user_message("one")])
    other = f"{chat_id}-other"
    send(live_gateway, other, [user_message("two")])
    base = f"/api/chat/ui/echo/{chat_id}/follow"
    status, body, _ = call(live_gateway.url, "GET", f"{base}?runId=run_nope%20%3F",
                           headers=bearer())  # fmt: skip
    assert status == 404 and body["error"] == "run_not_found"
    # The other chat's run (the first event of its follow stream names it).
    with SSEClient(live_gateway.url, f"/api/chat/ui/echo/{other}/follow?timeout=1",
                   headers=bearer()) as follower:  # fmt: skip
        other_run = next(follower.events()).json()["runId"]
    status, body, _ = call(live_gateway.url, "GET", f"{base}?runId={other_run}", headers=bearer())
    assert status == 400 and "not a run of chat" in body["message"]
    status, body, _ = call(live_gateway.url, "GET", f"{base}?runId={other_run}&lastEventId=x",
                           headers=bearer())  # fmt: skip
    assert status == 400 and body["error"] == "bad_request"
