"""End to end through a real gunicorn gateway and a real celery worker, as curl would do it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chatworker import tokens

from ..support import user_message
from .conftest_helpers import Gunicorn as Gateway
from .conftest_helpers import SSEClient, SSEEvent, call, cluster_gateway, gateway_on, live_gateway

__all__ = ["cluster_gateway", "gateway_on", "live_gateway"]

pytestmark = pytest.mark.integration


def trigger_token(task: str = "echo") -> str:
    return tokens.create_trigger_token(task, multiple_use=True)


def payload(chat_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"chatId": chat_id, "messages": [user_message(text)], **extra}


def read_turn(gw: Gateway, run_id: str, token: str, after: str | None = None) -> list[SSEEvent]:
    """Events up to the next ``__turn_complete`` (or ``__run_end``)."""
    headers = {"Authorization": f"Bearer {token}"}
    if after:
        headers["Last-Event-ID"] = after
    out: list[SSEEvent] = []
    with SSEClient(gw.url, f"/api/chat/runs/{run_id}/stream?timeout=30", headers=headers) as client:
        for event in client.events():
            out.append(event)
            if event.json()["type"] in ("__turn_complete", "__run_end"):
                return out
    raise AssertionError(f"stream closed early: {[e.data for e in out][-10:]}")


def text_of(events: list[SSEEvent]) -> str:
    return "".join(e.json().get("delta", "") for e in events if e.json()["type"] == "text-delta")


def test_trigger_stream_send_stream(gateway_on: Gateway, chat_id: str) -> None:
    gw = gateway_on  # on one redis-server, then on a Redis Cluster
    status, started, _ = call(
        gw.url,
        "POST",
        "/api/chat/tasks/echo/runs",
        payload(chat_id, "hello"),
        token=trigger_token(),
    )
    assert status == 201
    run_id, token = started["runId"], started["publicAccessToken"]
    turn0 = read_turn(gw, run_id, token)
    start = turn0[0].json()
    assert start["type"] == "__turn_start" and start["turn"] == 0 and "inputId" not in start
    assert text_of(turn0).strip() == "echo: hello (turn 0)"
    marker = turn0[-1].json()
    assert marker["type"] == "__turn_complete" and marker["publicAccessToken"]
    # The refreshed token from the marker works on every run route.
    token = marker["publicAccessToken"]
    deadline = time.monotonic() + 10
    while True:
        status, info, _ = call(gw.url, "GET", f"/api/chat/runs/{run_id}", token=token)
        if info["lastEventId"] == turn0[-1].id or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200 and info["lastEventId"] == turn0[-1].id
    assert info["status"] in {"running", "waiting"} and info["chatId"] == chat_id

    status, sent, _ = call(
        gw.url,
        "POST",
        f"/api/chat/runs/{run_id}/input/messages",
        payload(chat_id, "again"),
        token=token,
    )
    assert status == 202
    turn1 = read_turn(gw, run_id, token, after=turn0[-1].id)
    start = turn1[0].json()
    assert (start["type"], start["turn"], start["inputId"]) == ("__turn_start", 1, sent["inputId"])
    assert text_of(turn1).strip() == "echo: again (turn 1)"
    assert turn1[-1].json()["inputId"] == sent["inputId"]

    status, fresh, _ = call(gw.url, "POST", f"/api/chat/runs/{run_id}/token", token=trigger_token())
    assert status == 200
    assert (
        call(gw.url, "GET", f"/api/chat/runs/{run_id}", token=fresh["publicAccessToken"])[0] == 200
    )

    status, _, _ = call(gw.url, "POST", f"/api/chat/runs/{run_id}/cancel", token=token)
    assert status == 202
    end = read_turn(gw, run_id, token, after=turn1[-1].id)
    assert end[-1].json()["type"] == "__run_end" and end[-1].json()["status"] == "canceled"
    status, data, _ = call(
        gw.url,
        "POST",
        f"/api/chat/runs/{run_id}/input/messages",
        payload(chat_id, "late"),
        token=token,
    )
    assert status == 409 and data["error"] == "run_ended"
    # The client continues in a new run with the full history.
    status, cont, _ = call(
        gw.url,
        "POST",
        "/api/chat/tasks/echo/runs",
        payload(chat_id, "late", continuation=True, previousRunId=run_id),
        token=trigger_token(),
    )
    assert status == 201
    turn = read_turn(gw, cont["runId"], cont["publicAccessToken"])
    assert text_of(turn).strip() == "echo: late (turn 0)"


def test_stop_mid_turn_through_the_gateway(gateway_on: Gateway, chat_id: str) -> None:
    gw = gateway_on  # on one redis-server, then on a Redis Cluster
    body = payload(chat_id, "slow", metadata={"delay": 0.05, "words": 200})
    status, started, _ = call(
        gw.url, "POST", "/api/chat/tasks/echo/runs", body, token=trigger_token()
    )
    run_id, token = started["runId"], started["publicAccessToken"]
    events: list[SSEEvent] = []
    with SSEClient(gw.url, f"/api/chat/runs/{run_id}/stream?token={token}") as client:
        for event in client.events():
            events.append(event)
            kind = event.json()["type"]
            if kind == "text-delta" and "w3" in event.json()["delta"]:
                stopped_at = time.monotonic()
                status, data, _ = call(
                    gw.url,
                    "POST",
                    f"/api/chat/runs/{run_id}/input/stop",
                    {"stop": True},
                    token=token,
                )
                assert status == 202 and data["stopped"] is True
            if kind == "__turn_complete":
                break
    assert time.monotonic() - stopped_at < 2
    kinds = [e.json()["type"] for e in events]
    assert "abort" in kinds and kinds[-1] == "__turn_complete"
    assert events[-1].json()["stopped"] is True
    assert "w199" not in text_of(events)


def test_ui_reconnect_replays_the_turn_in_flight(live_gateway: Gateway, chat_id: str) -> None:
    gw = live_gateway
    headers = {"Authorization": f"Bearer {trigger_token()}"}
    idle = call(gw.url, "GET", f"/api/chat/ui/echo/{chat_id}/stream", headers=headers)
    assert idle[0] == 204
    body = {
        "id": chat_id,
        "messages": [user_message("slow")],
        "trigger": "submit-message",
        "metadata": {"delay": 0.05, "words": 30},
    }
    first: list[str] = []
    seen_text = threading.Event()

    def send() -> None:
        with SSEClient(
            gw.url, "/api/chat/ui/echo", method="POST", body=body, headers=headers
        ) as client:
            assert client.headers["x-vercel-ai-ui-message-stream"] == "v1"
            for event in client.events():
                first.append(event.data or "")
                if "w3" in (event.data or ""):
                    seen_text.set()

    thread = threading.Thread(target=send)
    thread.start()
    assert seen_text.wait(20)
    with SSEClient(gw.url, f"/api/chat/ui/echo/{chat_id}/stream", headers=headers) as client:
        assert client.status == 200
        replay = [e.data or "" for e in client.events()]
    thread.join(20)
    assert first == replay
    assert replay[-1] == "[DONE]" and '"type":"start"' in replay[0]
    assert not any('"__' in data for data in replay)
    after = call(gw.url, "GET", f"/api/chat/ui/echo/{chat_id}/stream", headers=headers)
    assert after[0] == 204
