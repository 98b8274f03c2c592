"""A worker killed mid-reply: the turn is answered again, and every client shows the reply once.

Real workers (the one streaming is killed with SIGKILL, another takes the run over from its
lease), a real gunicorn gateway, Redis. What the run's stream carries (the lost attempt, its
``abort``, the turn again under the same message id), what the ``/ui`` routes send a stock
client, and the real AI SDK client over ``DefaultChatTransport``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from chatworker import tokens
from chatworker.cli.terminal import ChatClient
from chatworker.store import keys

from ..conftest import worker_env
from ..gateway.conftest_helpers import Gunicorn, SSEClient, db_url, gateway_env
from ..support import ROOT, Worker, events, user_message, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AISDK = ROOT / "tests" / "aisdk"
WORDS = 60
FULL = f"echo: recover (turn 0) {' '.join(f'w{i}' for i in range(WORDS))}"


@contextmanager
def stack(redis_url: str) -> Iterator[tuple[redis.Redis, Gunicorn, Worker, Worker]]:
    """A gateway, the worker that will die, and the one that will take over (not started)."""
    url = db_url(redis_url, 1)
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    doomed = Worker(worker_env(url), name="doomed-ui").start()
    rescuer = Worker(worker_env(url), name="rescuer-ui")
    gateway = Gunicorn(gateway_env(url, CHATWORKER_SSE_HEARTBEAT="1"), name="recovered")
    try:
        gateway.start()
        yield r, gateway, doomed, rescuer
    finally:
        gateway.stop()
        doomed.stop(signal.SIGKILL)
        rescuer.stop()


def chunks_of(r: redis.Redis, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(f["c"]) for _, f in r.xrange(keys.output(run_id), "-", "+")]


def take_over(r: redis.Redis, run_id: str, doomed: Worker, rescuer: Worker) -> None:
    """Kill the worker answering; start another; wait until it started the turn again."""
    doomed.stop(signal.SIGKILL)
    rescuer.start()
    wait_for(lambda: [c["type"] for c in chunks_of(r, run_id)].count("__turn_start") == 2,
             timeout=30)  # fmt: skip


def stored_reply(r: redis.Redis, chat_id: str) -> dict[str, Any]:
    """The assistant message ``on_turn_complete`` stored (it fired once)."""
    completes = wait_for(lambda: [e for e in events(r, chat_id) if e["hook"] == "on_turn_complete"])
    assert len(completes) == 1
    messages = completes[0]["ui_messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    return dict(messages[1])


def test_restarted_turn_on_the_wire_and_on_the_ui_route(redis_url: str) -> None:
    """The run's stream: the lost attempt, ``abort{worker lost}``, the turn again under the same
    message id. The ``/ui`` route: no ``abort``, a ``reset-step`` clearing the lost attempt's
    step, one ``start-step``, and after the reset exactly the reply."""
    with stack(redis_url) as (r, gateway, doomed, rescuer):
        auth = {"Authorization": f"Bearer {tokens.create_trigger_token('echo', multiple_use=True)}"}
        chat_id = "recovered-wire"
        body = {"id": chat_id, "messages": [user_message("recover")], "trigger": "submit-message",
                "metadata": {"words": WORDS, "delay": 0.05}}  # fmt: skip
        sent: list[dict[str, Any]] = []
        with SSEClient(gateway.url, "/api/chat/ui/echo?timeout=60", method="POST", body=body,
                       headers=auth, timeout=60) as ui:  # fmt: skip
            for item in ui.events():
                if item.data == "[DONE]":
                    break
                sent.append(json.loads(item.data or "{}"))
                if len(sent) == 12:  # a partial reply is out: kill the worker answering
                    run_id = str(r.get(keys.chat_run("echo", chat_id)))
                    take_over(r, run_id, doomed, rescuer)

        # The wire: the lost attempt is closed by `abort`, the turn restarts under the same id.
        wire = chunks_of(r, run_id)
        kinds = [c["type"] for c in wire]
        lost = wire.index({"type": "abort", "reason": "worker lost"})
        assert kinds[lost + 1] == "__turn_start" and wire[lost + 1]["turn"] == 0
        starts = [c for c in wire if c["type"] == "start"]
        assert len(starts) == 2 and starts[0]["messageId"] == starts[1]["messageId"]
        assert kinds.count("__turn_complete") == 1
        reply = stored_reply(r, chat_id)
        assert reply["id"] == starts[0]["messageId"]
        assert [p["text"].strip() for p in reply["parts"] if p["type"] == "text"] == [FULL]

        # The /ui route: what a stock useChat gets.
        types = [c["type"] for c in sent]
        assert "abort" not in types
        assert types.count("reset-step") == 1 and types.count("start-step") == 1
        assert {c["messageId"] for c in sent if c["type"] == "start"} == {reply["id"]}
        after_reset = sent[types.index("reset-step") + 1:]
        text = "".join(c["delta"] for c in after_reset if c["type"] == "text-delta")
        assert text.strip() == FULL
        assert types[-1] == "finish"


def test_stock_ai_sdk_client_shows_the_recovered_reply_once(redis_url: str) -> None:
    """``useChat``'s engine (AbstractChat) over ``DefaultChatTransport`` and the ``/ui`` routes:
    the open chat, and one that reconnects during the restart, show the reply once."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the AI SDK client test needs Node 20 or later")
    if not (AISDK / "node_modules" / "ai").is_dir():
        pytest.fail("tests/aisdk/node_modules is missing: run `npm ci` in tests/aisdk")
    with stack(redis_url) as (r, gateway, doomed, rescuer):
        env = dict(os.environ)
        env.update(BASE_URL=gateway.url,
                   TOKEN=tokens.create_trigger_token("echo", multiple_use=True))  # fmt: skip
        proc = subprocess.Popen(
            [node, "ui_recovered.mjs"], cwd=AISDK, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdin is not None
            output: list[str] = []
            for line in proc.stdout:
                output.append(line)
                if line.startswith("STREAMING "):
                    break
            else:
                pytest.fail("".join(output))
            chat_id = json.loads(line.removeprefix("STREAMING "))["chatId"]
            run_id = str(r.get(keys.chat_run("echo", chat_id)))
            take_over(r, run_id, doomed, rescuer)
            proc.stdin.write("GO\n")
            proc.stdin.flush()
            output.append(proc.stdout.read())
            logs = f"{''.join(output)}\n--- gateway ---\n{gateway.log()[-3000:]}"
            assert proc.wait(60) == 0, logs
        finally:
            if proc.poll() is None:
                proc.kill()
        result = json.loads("".join(output).split("RESULT ", 1)[1])
        assert stored_reply(r, chat_id)["id"] == result["messageId"]


def test_terminal_client_starts_the_reply_over(redis_url: str, tmp_path: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``chatworker chat``: it says the reply starts over, and keeps the reply once."""
    monkeypatch.setenv("CHATWORKER_STATE_DIR", str(tmp_path))  # where the client keeps chats
    with stack(redis_url) as (r, gateway, doomed, rescuer):
        out = io.StringIO()
        client = ChatClient(gateway.url + "/api/chat", "echo",
                            tokens.create_trigger_token("echo", multiple_use=True),
                            chat_id="recovered-cli", out=out,
                            metadata={"words": WORDS, "delay": 0.05})  # fmt: skip
        client.send("recover")
        received: list[Any] = []
        reader = threading.Thread(target=lambda: received.append(client.receive()))
        reader.start()
        wait_for(lambda: "w8" in out.getvalue())
        assert client.run_id is not None
        take_over(r, client.run_id, doomed, rescuer)
        reader.join(60)
        assert received and received[0]["type"] == "__turn_complete", out.getvalue()
        printed = out.getvalue()
        assert "the reply starts over" in printed
        assert printed.split("the reply starts over")[1].count("echo: recover") == 1
        assert [m["role"] for m in client.history] == ["user", "assistant"]
        texts = [p["text"].strip() for p in client.history[1]["parts"] if p["type"] == "text"]
        assert texts == [FULL]
        assert client.history[1]["id"] == stored_reply(r, "recovered-cli")["id"]
