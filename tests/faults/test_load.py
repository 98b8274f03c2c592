"""Load: many concurrent chats of several turns each, through a real gateway and worker, with
random stops, messages sent while a turn streams, bursts, pauses long enough to suspend, and
clients that drop their stream and resume it. Every message is answered once, in order, and
every stream holds each event exactly once.

The default is the full figure, 200 chats x 5 turns (about 10 s of load here); set
``CHATWORKER_LOAD_CHATS`` (and ``CHATWORKER_LOAD_TURNS``) for more or fewer, and
``CHATWORKER_LOAD_SEED`` to replay a run's random plan (the seed is printed and in failures).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from chatworker.store import keys

from ..conftest import worker_env
from ..gateway.conftest_helpers import Gunicorn, gateway_env
from ..support import Worker, user_message
from .helpers import Event, StreamReader, call, increasing, pointed_at, redis_entries, trigger_token

CHATS = int(os.environ.get("CHATWORKER_LOAD_CHATS", "200"))
TURNS = int(os.environ.get("CHATWORKER_LOAD_TURNS", "5"))
SEED = int(os.environ.get("CHATWORKER_LOAD_SEED", str(random.randrange(10**6))))
WORDS = 12
DELAY = 0.03  # per word: a turn streams for ~0.4 s, long enough to be stopped or interrupted

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90 + CHATS)]


@dataclass
class Plan:
    """What one chat's client does at each turn (drawn from the seed)."""

    task: str
    send_mode: list[str]  # how message k (k >= 1) is sent: after / during / burst / pause
    stop_at: set[int]  # turns during which the client asks to stop
    reconnect_at: set[int]  # turns during which the client drops and resumes its stream


@dataclass
class Chat:
    n: int
    plan: Plan
    run_id: str = ""
    token: str = ""
    sent: list[tuple[str | None, str]] = field(default_factory=list)  # (inputId, text)
    got: list[Event] = field(default_factory=list)
    stops: int = 0
    # (turn streaming when the stop was asked, whether it named that turn's inputId, the answer)
    stop_log: list[tuple[int, bool, bool]] = field(default_factory=list)
    reconnects: int = 0
    error: BaseException | None = None


def make_plan(rng: random.Random, n: int) -> Plan:
    modes = [rng.choice(["after", "after", "during", "burst", "pause"]) for _ in range(TURNS)]
    return Plan(
        task="sleepy" if n % 2 else "echo",
        send_mode=modes,
        stop_at={k for k in range(TURNS) if rng.random() < 0.2},
        reconnect_at={k for k in range(TURNS) if rng.random() < 0.15},
    )


def text_for(chat: Chat, k: int) -> str:
    return f"chat {chat.n} message {k}"


class Driver:
    """One browser: sends each message per its plan and reads the run's stream throughout."""

    def __init__(self, gw: Gunicorn, chat: Chat, rng: random.Random) -> None:
        self.gw = gw
        self.chat = chat
        self.rng = rng

    def post(self, path: str, body: Any) -> Any:
        for _ in range(3):
            status, data, _ = call(self.gw.url, "POST", path, body, token=self.chat.token)
            if status < 500:
                return status, data
            time.sleep(0.2)
        raise AssertionError(f"{path}: {status} {data}")

    def send(self, k: int) -> None:
        chat = self.chat
        if len(chat.sent) != k or k >= TURNS:
            return
        text = text_for(chat, k)
        status, data = self.post(
            f"/api/chat/runs/{chat.run_id}/input/messages",
            {"chatId": f"load-{chat.n}", "messages": [user_message(text)],
             "metadata": {"words": WORDS, "delay": DELAY}},
        )  # fmt: skip
        assert status == 202, (status, data)
        chat.sent.append((data["inputId"], text))

    def run(self) -> None:
        chat, plan = self.chat, self.chat.plan
        status, started, _ = call(
            self.gw.url, "POST", f"/api/chat/tasks/{plan.task}/runs",
            {"chatId": f"load-{chat.n}", "messages": [user_message(text_for(chat, 0))],
             "metadata": {"words": WORDS, "delay": DELAY}},
            token=trigger_token(plan.task),
        )  # fmt: skip
        assert status == 201, started
        chat.run_id, chat.token = started["runId"], started["publicAccessToken"]
        chat.sent.append((None, text_for(chat, 0)))
        markers = 0
        acted: set[tuple[str, int]] = set()
        reader = StreamReader("127.0.0.1", self.gw.port, chat.run_id, chat.token,
                              timeout=30).open()
        try:
            while markers < TURNS:
                resumed = False
                for ev in reader.events():
                    chat.got.append(ev)
                    chunk = ev.json()
                    kind = chunk["type"]
                    if kind == "__run_end":
                        raise AssertionError(f"run ended: {chunk}")
                    turn = markers
                    if kind == "text-delta":
                        if turn in plan.stop_at and ("stop", turn) not in acted:
                            acted.add(("stop", turn))
                            body: dict[str, Any] = {"stop": True}
                            precise = self.rng.random() < 0.5
                            if precise:  # name the message whose answer to stop
                                body["inputId"] = chat.sent[turn][0] or "i0"
                            status, answer = self.post(
                                f"/api/chat/runs/{chat.run_id}/input/stop", body)
                            assert status == 202, answer
                            chat.stops += 1
                            chat.stop_log.append((turn, precise, bool(answer["stopped"])))
                        if plan.send_mode[(turn + 1) % TURNS] == "during":
                            self.send(turn + 1)
                        if turn in plan.reconnect_at and ("drop", turn) not in acted:
                            acted.add(("drop", turn))
                            resumed = True
                            break  # drop the connection mid-turn; resume by Last-Event-ID
                    elif kind == "__turn_complete":
                        markers += 1
                        mode = plan.send_mode[markers % TURNS]
                        if mode == "pause":  # long enough for a sleepy run to suspend
                            time.sleep(0.6 + self.rng.random() * 0.4)
                        elif mode == "after":
                            time.sleep(self.rng.random() * 0.05)
                        self.send(markers)
                        if mode == "burst":
                            self.send(markers + 1)
                        if markers >= TURNS:
                            break
                if markers >= TURNS:
                    break
                if not resumed:
                    assert reader.ended_by is not None
                reader.close()
                chat.reconnects += 1
                assert chat.reconnects < 20, reader.ended_by
                reader = StreamReader("127.0.0.1", self.gw.port, chat.run_id, chat.token,
                                      last_id=chat.got[-1].id, timeout=30).open()
        finally:
            reader.close()


def split_turns(events: list[Event]) -> list[list[Event]]:
    turns: list[list[Event]] = []
    current: list[Event] | None = None
    for ev in events:
        kind = ev.type
        if kind == "__turn_start":
            assert current is None, "a turn started before the previous one completed"
            current = [ev]
        else:
            assert current is not None, f"{kind} outside any turn"
            current.append(ev)
            if kind == "__turn_complete":
                turns.append(current)
                current = None
    assert current is None, "the last turn never completed"
    return turns


def verify(chat: Chat, r: redis.Redis) -> tuple[int, int]:
    """Check one chat against what Redis holds; returns (turns stopped, turns answered)."""
    where = f"chat {chat.n} ({chat.plan}, run {chat.run_id})"
    assert len(chat.sent) == TURNS, where
    # Nothing lost, nothing repeated, nothing reordered: the client saw exactly the stream.
    stream = redis_entries(r, chat.run_id)
    assert [(e.id, e.data) for e in chat.got] == stream[: len(chat.got)], where
    assert increasing([e.id for e in chat.got]), where
    turns = split_turns(chat.got)
    assert len(turns) == TURNS, where
    stopped = 0
    for k, (events, (input_id, text)) in enumerate(zip(turns, chat.sent, strict=True)):
        start, marker = events[0].json(), events[-1].json()
        assert start["turn"] == marker["turn"] == k, (where, k)
        assert start.get("inputId") == marker.get("inputId") == input_id, (where, k)
        kinds = [e.type for e in events[1:-1]]
        assert kinds.count("start") == 1 and kinds[0] == "start", (where, k, kinds)
        delta = "".join(e.json().get("delta", "") for e in events if e.type == "text-delta")
        words = " ".join(f"w{i}" for i in range(WORDS))
        expected = f"echo: {text} (turn {k}) {words} "
        if marker["stopped"]:
            stopped += 1
            assert kinds[-1] == "abort" and "finish" not in kinds, (where, k, kinds)
            assert expected.startswith(delta), (where, k, delta)
        else:
            assert kinds[-1] == "finish" and "abort" not in kinds, (where, k, kinds)
            assert delta == expected, (where, k, delta)
    # Only a turn a stop was for can have been stopped: the one named by inputId, else the one
    # streaming when the stop was asked (or, if it had just finished, the one queued behind it).
    stoppable = {t for k, precise, accepted in chat.stop_log if accepted
                 for t in ((k,) if precise else (k, k + 1))}
    stopped_turns = {k for k, events in enumerate(turns) if events[-1].json()["stopped"]}
    assert stopped_turns <= stoppable, (where, stopped_turns, chat.stop_log)
    return stopped, TURNS


@pytest.fixture(scope="module")
def load_stack(redis_url: str) -> Iterator[tuple[Gunicorn, Worker, str]]:
    url = redis_url.rsplit("/", 1)[0] + "/12"
    with pointed_at(url):
        worker = Worker(worker_env(url), name="load", concurrency=max(100, CHATS * 2)).start()
        gw = Gunicorn(gateway_env(url, CHATWORKER_SSE_HEARTBEAT="1"), name="load").start()
        try:
            yield gw, worker, url
        finally:
            gw.stop()
            worker.stop()
    assert "Traceback" not in gw.log(), gw.log()[-3000:]
    assert "failed in turn" not in worker.log(), worker.log()[-3000:]


def test_concurrent_chats_every_message_answered_once_in_order(
    load_stack: tuple[Gunicorn, Worker, str],
) -> None:
    gw, worker, url = load_stack
    rng = random.Random(SEED)
    chats = [Chat(n, make_plan(rng, n)) for n in range(CHATS)]
    drivers = [Driver(gw, chat, random.Random(rng.random())) for chat in chats]

    def drive(driver: Driver) -> None:
        try:
            driver.run()
        except BaseException as exc:
            driver.chat.error = exc

    began = time.monotonic()
    threads = [threading.Thread(target=drive, args=(d,), daemon=True) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(5.0, began + 30 + CHATS * 0.4 - time.monotonic()))
    took = time.monotonic() - began
    stuck = [c.n for c, t in zip(chats, threads, strict=True) if t.is_alive()]
    failed = [(c.n, repr(c.error)) for c in chats if c.error is not None]
    assert not stuck, f"chats still waiting after {took:.0f}s (seed {SEED}): {stuck[:20]}"
    assert not failed, f"seed {SEED}: {failed[:5]}"

    r = redis.Redis.from_url(url, decode_responses=True)
    stopped = answered = 0
    for chat in chats:
        s, a = verify(chat, r)
        stopped += s
        answered += a
    assert answered == CHATS * TURNS
    # The random stops, mid-turn sends and dropped streams really happened.
    assert stopped > 0 and sum(c.stops for c in chats) > 0
    assert sum(c.reconnects for c in chats) > 0
    assert any("during" in c.plan.send_mode or "burst" in c.plan.send_mode for c in chats)
    assert worker.proc is not None and worker.proc.poll() is None
    # A busy but live worker is never mistaken for a dead one: no run was recovered.
    recovered = [c.run_id for c in chats if r.hget(keys.run(c.run_id), "recoveries")]
    assert not recovered, f"runs recovered while their worker was alive: {recovered[:5]}"
    print(json.dumps({
        "chats": CHATS, "turns": TURNS, "seed": SEED, "seconds": round(took, 1),
        "turns_per_second": round(answered / took, 1), "stopped_turns": stopped,
        "stop_requests": sum(c.stops for c in chats),
        "stream_reconnects": sum(c.reconnects for c in chats),
        "events": sum(len(c.got) for c in chats),
    }))
