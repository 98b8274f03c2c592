"""Soak: many chats over HTTP while celery workers are SIGKILLed mid-stream and restarted.

Two real celery worker processes, one gunicorn gateway, a redis-server and the scripted model
server. Every chat is driven the way a browser drives it: trigger a run, send each message (after
the previous answer, while it streams, in bursts, or after a pause long enough to suspend), stop
random turns (naming the message's ``inputId`` or not), and read the run's SSE stream, dropping it
at random and resuming with ``Last-Event-ID``. Meanwhile a worker that is streaming turns is
killed with SIGKILL and started again, once or more.

What must hold, whatever died when:

- every message the gateway accepted (the trigger's ``i0``, and each ``202``'s ``inputId``) is
  answered by exactly one ``__turn_complete`` on the run's stream, in the order it was sent,
  stopped or not; no message is answered twice;
- a turn interrupted by a dead worker shows its partial closed by ``abort{worker lost}``, then
  starts again, and its final answer is complete (or, if stopped, a prefix of it);
- ``on_turn_complete`` fires once per turn (twice only for a turn whose worker died after the
  hook had run but before its return was recorded: recovery runs it again, by design);
- what every SSE client collected across its reconnections is exactly the stream as Redis holds
  it (XRANGE): no id missing, none repeated, nothing reordered;
- every run ends up ``waiting``, ``suspended`` or ended cleanly, and a final cancel ends each;
- a chat that gets no event for 90 s is stuck: the failure shows its run as Redis holds it.

The default here is the CI size (a dozen chats, one kill: well under two minutes). The full soak
is ``python -m bench soak`` (200 chats x 5 turns, two kills); ``CHATWORKER_SOAK=full`` runs it
here. ``CHATWORKER_SOAK_CHATS``, ``_TURNS``, ``_KILLS`` and ``_SEED`` override one value; the
seed is printed and in every failure, and replays the plan (not the timing).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from chatworker.store import keys
from chatworker.store.records import ENDED
from chatworker.testing.model_server import ModelServer
from chatworker.testing.script import Step, Text, last_user_text

from ..conftest import SECRET, worker_env
from ..gateway.conftest_helpers import Gunicorn, gateway_env
from ..support import RedisServer, Worker, events, user_message
from .helpers import Event, StreamReader, call, increasing, redis_entries, trigger_token

#: The tasks the chats run, in turn: warm for 10 s, suspending after half a second (so most of
#: its messages resume it), and a real model call through the ``openai`` client.
TASKS = ("echo", "sleepy", "llm")
#: Seconds the gateway keeps a stream open with no new chunk; a reader then reconnects (and
#: checks its deadlines).
STREAM_TIMEOUT = 10.0
#: Seconds a chat waits for its next event before it counts as stuck: far longer than any
#: recovery (a lease, a sweep, a resume re-enqueued after its grace period, a worker start).
STALL = 90.0
#: How message k (k >= 1) is sent: after the previous answer, while it streams, together with
#: the next one, or after a pause long enough for a sleepy run to suspend.
MODES = ("after", "after", "during", "burst", "pause")


@dataclass
class SoakConfig:
    """How big the soak is."""

    chats: int = 12
    turns: int = 4
    kills: int = 1
    seed: int = field(default_factory=lambda: random.randrange(10**6))
    words: int = 12  # the answer's extra words
    delay: float = 0.04  # seconds per word: a turn streams for about half a second
    workers: int = 2

    @classmethod
    def ci(cls) -> SoakConfig:
        return cls()

    @classmethod
    def full(cls) -> SoakConfig:
        return cls(chats=200, turns=5, kills=2)

    @classmethod
    def from_env(cls) -> SoakConfig:
        """``CHATWORKER_SOAK=full`` for the full size; ``CHATWORKER_SOAK_*`` override."""
        cfg = cls.full() if os.environ.get("CHATWORKER_SOAK") == "full" else cls.ci()
        for name in ("chats", "turns", "kills", "seed"):
            value = os.environ.get(f"CHATWORKER_SOAK_{name.upper()}")
            if value:
                setattr(cfg, name, int(value))
        return cfg

    @property
    def messages(self) -> int:
        return self.chats * self.turns

    def deadline(self) -> float:
        """Seconds the chats may take in all: generous, only a stuck run should reach it."""
        return 120 + 0.5 * self.messages + 30 * self.kills


# -- the chats ----------------------------------------------------------------------------------
@dataclass
class Plan:
    """What one chat's client does at each turn (drawn from the seed)."""

    task: str
    send_mode: list[str]  # how message k (k >= 1) is sent: after / during / burst / pause
    stop_at: set[int]  # turns during which the client asks to stop
    drop_at: set[int]  # turns during which the client drops and resumes its stream


@dataclass
class Chat:
    n: int
    plan: Plan
    run_id: str = ""
    token: str = ""
    sent: list[tuple[str, str]] = field(default_factory=list)  # (inputId, text), i0 the trigger
    got: list[Event] = field(default_factory=list)
    markers: int = 0
    stops: int = 0
    # (turn streaming when the stop was asked, whether it named that turn's inputId, accepted)
    stop_log: list[tuple[int, bool, bool]] = field(default_factory=list)
    reconnects: int = 0
    error: BaseException | None = None

    @property
    def chat_id(self) -> str:
        return f"soak-{self.n}"


def make_plan(rng: random.Random, n: int, turns: int) -> Plan:
    return Plan(
        task=TASKS[n % len(TASKS)],
        send_mode=[rng.choice(MODES) for _ in range(turns)],
        stop_at={k for k in range(turns) if rng.random() < 0.2},
        drop_at={k for k in range(turns) if rng.random() < 0.15},
    )


def text_for(chat: Chat, k: int) -> str:
    return f"chat {chat.n} message {k}"


def words(cfg: SoakConfig) -> str:
    return " ".join(f"w{i}" for i in range(cfg.words))


def expected_answer(cfg: SoakConfig, task: str, text: str, k: int) -> str:
    """The full text of the answer to message ``k`` (``text``)."""
    if task == "llm":
        return f"model: {text} {words(cfg)}"
    return f"echo: {text} (turn {k}) {words(cfg)} "


def model_reply(cfg: SoakConfig) -> Any:
    """The scripted model's reply: the last user message back, then the words, paced."""

    def reply(body: dict[str, Any]) -> list[Step]:
        text = f"model: {last_user_text(body)} {words(cfg)}"
        return [Text(text, tokens_per_second=1 / cfg.delay)]

    return reply


class Driver:
    """One browser: sends each message per its plan and reads the run's stream throughout."""

    def __init__(self, soak: Soak, chat: Chat, rng: random.Random) -> None:
        self.soak = soak
        self.cfg = soak.cfg
        self.gw = soak.gateway
        self.chat = chat
        self.rng = rng

    def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        status, data, _ = call(
            self.gw.url, "POST", path, body, token=token or self.chat.token, timeout=60
        )
        return status, data

    def metadata(self) -> dict[str, Any]:
        return {"words": self.cfg.words, "delay": self.cfg.delay}

    def send(self, k: int) -> None:
        chat = self.chat
        if len(chat.sent) != k or k >= self.cfg.turns:
            return
        text = text_for(chat, k)
        status, data = self.post(
            f"/api/chat/runs/{chat.run_id}/input/messages",
            {"chatId": chat.chat_id, "messages": [user_message(text)],
             "metadata": self.metadata()},
        )  # fmt: skip
        assert status == 202, f"message {k} answered {status}: {data}"
        chat.sent.append((data["inputId"], text))

    def stop(self, turn: int) -> None:
        chat = self.chat
        body: dict[str, Any] = {"stop": True}
        precise = self.rng.random() < 0.5
        if precise:  # name the message whose answer to stop
            body["inputId"] = chat.sent[turn][0]
        status, answer = self.post(f"/api/chat/runs/{chat.run_id}/input/stop", body)
        assert status == 202, f"stop answered {status}: {answer}"
        chat.stops += 1
        chat.stop_log.append((turn, precise, bool(answer["stopped"])))

    def run(self, deadline: float) -> None:
        chat, plan, turns = self.chat, self.chat.plan, self.cfg.turns
        status, started = self.post(
            f"/api/chat/tasks/{plan.task}/runs",
            {"chatId": chat.chat_id, "messages": [user_message(text_for(chat, 0))],
             "metadata": self.metadata()},
            token=trigger_token(plan.task),
        )  # fmt: skip
        assert status == 201, f"trigger answered {status}: {started}"
        chat.run_id, chat.token = started["runId"], started["publicAccessToken"]
        chat.sent.append(("i0", text_for(chat, 0)))
        acted: set[tuple[str, int]] = set()
        opened = 0
        progress = time.monotonic()
        while chat.markers < turns:
            now = time.monotonic()
            if now > deadline or now - progress > STALL:
                raise AssertionError(
                    f"no answer to message {chat.markers} ({now - progress:.0f} s without an event)"
                )
            reader = StreamReader(
                "127.0.0.1", self.gw.port, chat.run_id, chat.token,
                last_id=chat.got[-1].id if chat.got else None, timeout=STREAM_TIMEOUT,
            ).open()  # fmt: skip
            opened += 1
            chat.reconnects = opened - 1
            try:
                for ev in reader.events():
                    chat.got.append(ev)
                    progress = time.monotonic()
                    kind = ev.type
                    if kind == "__run_end":
                        raise AssertionError(f"run ended: {ev.data}")
                    turn = chat.markers
                    if kind == "text-delta":
                        if turn in plan.stop_at and ("stop", turn) not in acted:
                            acted.add(("stop", turn))
                            self.stop(turn)
                        if plan.send_mode[(turn + 1) % turns] == "during":
                            self.send(turn + 1)
                        if turn in plan.drop_at and ("drop", turn) not in acted:
                            acted.add(("drop", turn))
                            break  # drop the connection mid-turn; resume by Last-Event-ID
                    elif kind == "__turn_complete":
                        chat.markers += 1
                        mode = plan.send_mode[chat.markers % turns]
                        if mode == "pause":  # long enough for a sleepy run to suspend
                            time.sleep(0.6 + self.rng.random() * 0.4)
                        elif mode == "after":
                            time.sleep(self.rng.random() * 0.05)
                        self.send(chat.markers)
                        if mode == "burst":
                            self.send(chat.markers + 1)
                        if chat.markers >= turns:
                            break
            finally:
                reader.close()


# -- the processes ------------------------------------------------------------------------------
@dataclass
class Kill:
    """One SIGKILL of a worker and what it took down."""

    worker: str
    owner: str  # the worker's id in run records (host:pid:…)
    at: float  # time.time() of the kill
    owned: list[str]  # runs it owned when it died
    streaming: list[str]  # of those, runs in the middle of a turn
    handed_on: float | None = None  # seconds until every owned run had been picked up again
    not_handed_on: list[str] = field(default_factory=list)
    restarted_in: float = 0.0  # seconds until the replacement worker was ready


class Soak:
    """The processes under test, the chats, and the worker killer."""

    def __init__(self, cfg: SoakConfig) -> None:
        self.cfg = cfg
        self.exit = ExitStack()
        self.workers: list[Worker] = []
        self.all_workers: list[Worker] = []
        self.kills: list[Kill] = []
        self.chats: list[Chat] = []
        self.finished = threading.Event()
        self.killer_error: BaseException | None = None

    def __enter__(self) -> Soak:
        self.exit.__enter__()
        try:
            self._start()
        except BaseException:
            self.exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit.close()

    def _start(self) -> None:
        cfg = self.cfg
        self.exit.enter_context(_secret(SECRET))
        self.redis_server = RedisServer().start()
        self.exit.callback(self.redis_server.stop)
        self.r = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self.model = ModelServer(default_reply=model_reply(cfg)).start()
        self.model._httpd.socket.listen(1024)  # type: ignore[union-attr]  # bursts of turns
        self.exit.callback(self.model.stop)
        self.worker_env = worker_env(self.redis_server.url, OPENAI_BASE_URL=self.model.base_url,
                                     OPENAI_API_KEY="soak")  # fmt: skip
        self.exit.callback(self._stop_workers)
        for i in range(cfg.workers):
            self.workers.append(self._new_worker(f"soak{i}"))
        self.gateway = Gunicorn(
            gateway_env(self.redis_server.url, CHATWORKER_SSE_HEARTBEAT="1"), name="soak"
        ).start()
        self.exit.callback(self.gateway.stop)

    def _new_worker(self, name: str) -> Worker:
        worker = Worker(self.worker_env, name=name, concurrency=max(100, 2 * self.cfg.chats))
        self.all_workers.append(worker)
        return worker.start()

    def _stop_workers(self) -> None:
        for worker in self.all_workers:
            worker.stop()

    # -- run records ----------------------------------------------------------------------------
    def records(self, fields: tuple[str, ...]) -> dict[str, dict[str, str | None]]:
        """``fields`` of every started chat's run record, by run id."""
        ids = [c.run_id for c in self.chats if c.run_id]
        pipe = self.r.pipeline(transaction=False)
        for run_id in ids:
            pipe.hmget(keys.run(run_id), list(fields))
        return {
            run_id: dict(zip(fields, values, strict=True))
            for run_id, values in zip(ids, pipe.execute(), strict=True)
        }

    @staticmethod
    def owner_pid(owner: str | None) -> int | None:
        parts = (owner or "").rsplit(":", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None

    # -- killing workers ------------------------------------------------------------------------
    def answered(self) -> int:
        return sum(c.markers for c in self.chats)

    def mid_stream_kills(self) -> int:
        return sum(1 for kill in self.kills if kill.streaming)

    def killer(self) -> None:
        """Kill a worker when a third (a half, …) of the messages are answered. A kill that
        interrupted no turn (the last one ended in between) is followed by another."""
        cfg = self.cfg
        try:
            while self.mid_stream_kills() < cfg.kills and len(self.kills) < 3 * cfg.kills:
                goal = cfg.messages * (self.mid_stream_kills() + 1) / (cfg.kills + 1)
                while self.answered() < goal:
                    if self.finished.wait(0.05):
                        return
                if not self.kill_one(len(self.kills)):
                    return
        except BaseException as exc:
            self.killer_error = exc

    def kill_one(self, j: int) -> bool:
        """SIGKILL the worker with the most turns streaming (waiting until one streams), start a
        replacement, and watch the dead worker's runs be picked up again."""
        victim: Worker | None = None
        while victim is None:
            if self.finished.is_set():
                return False
            streaming = Counter(
                self.owner_pid(rec["owner"])
                for rec in self.records(("owner", "is_streaming")).values()
                if rec["is_streaming"] == "1"
            )
            alive = [w for w in self.workers if w.proc is not None and streaming[w.proc.pid]]
            if alive:
                victim = max(alive, key=lambda w: streaming[w.proc.pid])  # type: ignore[union-attr]
            else:
                time.sleep(0.02)
        assert victim.proc is not None
        pid = victim.proc.pid
        at = time.time()
        victim.stop(signal.SIGKILL)
        recs = self.records(("owner", "is_streaming"))
        owned = [run for run, rec in recs.items() if self.owner_pid(rec["owner"]) == pid]
        owner = next((str(recs[run]["owner"]) for run in owned), f"?:{pid}:?")
        kill = Kill(victim.name, owner, at, owned,
                    [run for run in owned if recs[run]["is_streaming"] == "1"])  # fmt: skip
        self.kills.append(kill)
        self.workers.remove(victim)
        restarted: list[Worker] = []
        began = time.monotonic()
        starter = threading.Thread(
            target=lambda: restarted.append(self._new_worker(f"soak-restart{j}")), daemon=True
        )
        starter.start()
        # Every run the dead worker owned is picked up again: recovered and claimed elsewhere.
        waiting = set(owned)
        deadline = time.monotonic() + 120
        while waiting and time.monotonic() < deadline:
            recs = self.records(("owner", "status"))
            for run in list(waiting):
                rec = recs.get(run) or {}
                if rec.get("owner") != owner and rec.get("status") not in ("resuming", "queued"):
                    waiting.discard(run)
            if waiting:
                time.sleep(0.05)
        kill.handed_on = None if waiting else time.time() - at
        kill.not_handed_on = sorted(waiting)
        starter.join(120)
        kill.restarted_in = time.monotonic() - began
        if not restarted:
            raise AssertionError("the replacement worker did not start")
        self.workers.append(restarted[0])
        return True

    # -- the soak -------------------------------------------------------------------------------
    def drive(self) -> float:
        """Run every chat to its last answer (with the killer alongside); returns the seconds."""
        cfg = self.cfg
        rng = random.Random(cfg.seed)
        self.chats = [Chat(n, make_plan(rng, n, cfg.turns)) for n in range(cfg.chats)]
        drivers = [Driver(self, chat, random.Random(rng.random())) for chat in self.chats]
        began = time.monotonic()
        deadline = began + cfg.deadline()

        def one(driver: Driver) -> None:
            try:
                driver.run(deadline)
            except BaseException as exc:
                driver.chat.error = exc

        threads = [threading.Thread(target=one, args=(d,), daemon=True) for d in drivers]
        killer = threading.Thread(target=self.killer, daemon=True)
        for thread in threads:
            thread.start()
        killer.start()
        for thread in threads:
            thread.join(max(1.0, deadline + 2 * STREAM_TIMEOUT + 30 - time.monotonic()))
        took = time.monotonic() - began
        self.finished.set()
        killer.join(150)
        stuck = [c for c, t in zip(self.chats, threads, strict=True) if t.is_alive()]
        failed = [c for c in self.chats if c.error is not None]
        if stuck or failed:
            raise AssertionError(self.describe_failures(stuck, failed))
        if self.killer_error is not None:
            raise AssertionError(f"seed {cfg.seed}: killing workers failed: "
                                 f"{self.killer_error!r}")  # fmt: skip
        return took

    def describe_failures(self, stuck: list[Chat], failed: list[Chat]) -> str:
        """What a failure needs to be understood: per chat, its run as Redis holds it."""
        kills = [(k.worker, k.owner, len(k.owned), k.not_handed_on) for k in self.kills]
        lines = [
            f"seed {self.cfg.seed}: {len(stuck)} chats stuck, {len(failed)} failed; "
            f"kills (worker, id, runs owned, not picked up): {kills}"
        ]
        resuming = {run for key in keys.index_buckets(keys.RESUMING)
                    for run in self.r.zrange(key, 0, -1)}
        logs = [(w.name, w.log().splitlines()) for w in self.all_workers]
        for chat in [*stuck, *failed][:10]:
            run = chat.run_id
            rec = self.r.hgetall(keys.run(run)) if run else {}
            tail = [e.type for e in chat.got[-6:]]
            lines.append(
                f"  chat {chat.n} ({chat.plan.task}) run {run}: {chat.error!r}; "
                f"status {rec.get('status')} owner {rec.get('owner')!r} "
                f"recoveries {rec.get('recoveries')} in {keys.RESUMING} {run in resuming}; "
                f"inbox {self.r.llen(keys.inbox(run)) if run else '-'} "
                f"processing {self.r.llen(keys.processing(run)) if run else '-'}; "
                f"sent {[i for i, _ in chat.sent]}, answered {chat.markers}, last events {tail}"
            )
            said = sorted((line, name) for name, text in logs if run for line in text
                          if run in line)  # fmt: skip
            lines.extend(f"    {name}: {line}" for line, name in said[-4:])
        return "\n".join(lines)

    def replayed_hooks(self) -> dict[str, set[int]]:
        """Per run a killed worker owned: the turns whose ``on_turn_complete`` recovery re-ran
        (the worker logs say so)."""
        killed = {run for kill in self.kills for run in kill.owned}
        said = re.compile(r"run (\S+): re-running on_turn_complete of turn (\d+) after recovery")
        out: dict[str, set[int]] = {}
        for worker in self.all_workers:
            for match in said.finditer(worker.log()):
                if match[1] in killed:
                    out.setdefault(match[1], set()).add(int(match[2]))
        return out

    def settle(self, timeout: float = 90) -> Counter[str]:
        """Wait until no run is mid-turn (``running`` lasts until ``on_turn_complete``
        returned); returns the statuses."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(("status", "reason"))
            statuses = Counter(str(rec["status"]) for rec in recs.values())
            # A run may only have ended by the turn timeout of a long suspension.
            ended = {
                run: rec
                for run, rec in recs.items()
                if rec["status"] in ENDED
                and (rec["status"], rec["reason"]) != ("completed", "turn_timeout")
            }
            if ended:
                raise AssertionError(
                    f"seed {self.cfg.seed}: {len(ended)} runs ended while "
                    f"waiting for a message: {list(ended.items())[:6]}"
                )
            if set(statuses) <= {"waiting", "suspended", "completed"}:
                return statuses
            if time.monotonic() > deadline:
                busy = {
                    run: rec
                    for run, rec in recs.items()
                    if rec["status"] not in ("waiting", "suspended", "completed")
                }
                raise AssertionError(
                    f"seed {self.cfg.seed}: runs never settled: "
                    f"{dict(statuses)}; e.g. {list(busy.items())[:5]}"
                )
            time.sleep(0.1)

    def cancel_all(self, timeout: float = 90) -> None:
        """End every run through the gateway; each ends with ``__run_end`` on its stream."""
        for chat in self.chats:
            status, body, _ = call(self.gateway.url, "POST", f"/api/chat/runs/{chat.run_id}/cancel",
                                   {}, token=chat.token, timeout=60)  # fmt: skip
            assert status == 202, (chat.run_id, status, body)
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(("status",))
            open_ = [run for run, rec in recs.items()
                     if rec["status"] not in ("canceled", "completed")]  # fmt: skip
            if not open_:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"seed {self.cfg.seed}: runs not ended by cancel: "
                    f"{[(run, recs[run]) for run in open_[:5]]}"
                )
            time.sleep(0.1)
        for chat in self.chats:
            last = self.r.xrevrange(keys.output(chat.run_id), count=1)
            assert json.loads(last[0][1]["c"])["type"] == "__run_end", chat.run_id


@contextmanager
def _secret(secret: str) -> Iterator[None]:
    """Sign this process's tokens with the gateway's secret."""
    previous = os.environ.get("CHATWORKER_SECRET_KEY")
    os.environ["CHATWORKER_SECRET_KEY"] = secret
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CHATWORKER_SECRET_KEY", None)
        else:
            os.environ["CHATWORKER_SECRET_KEY"] = previous


# -- checking -----------------------------------------------------------------------------------
def ms(entry_id: str | None) -> int:
    return int(str(entry_id).split("-")[0])


@dataclass
class Checked:
    """What one chat's stream showed."""

    answered: int = 0
    stopped: int = 0
    restarted: int = 0  # turn attempts cut short by a dead worker, then started again
    events: int = 0
    hooks_twice: int = 0  # on_turn_complete ran, then its worker died before that was recorded


def check_chat(cfg: SoakConfig, chat: Chat, r: redis.Redis, replayed: set[int]) -> Checked:
    """Every accepted message answered once, in order; the client saw exactly the stream.

    ``replayed``: the turns whose ``on_turn_complete`` recovery re-ran after their worker was
    killed."""
    where = f"seed {cfg.seed}, chat {chat.n} ({chat.plan}, run {chat.run_id})"
    stream = redis_entries(r, chat.run_id)
    got = [(e.id, e.data) for e in chat.got]
    # The client's events across its reconnections are the stream: none missing, none repeated.
    assert increasing([e.id for e in chat.got]), f"{where}: ids repeat or go back"
    assert got == stream[: len(got)], f"{where}: the client's events differ from the stream"
    rest = [json.loads(data) for _, data in stream[len(got) :]]
    assert all(c["type"] == "__run_end" and c["status"] == "completed" for c in rest), (
        f"{where}: the stream went on after the last answer: {rest[:5]}"
    )
    # Exactly one marker per accepted message, in the order the messages were accepted.
    chunks = [(entry_id, json.loads(data)) for entry_id, data in stream]
    markers = [c for _, c in chunks if c["type"] == "__turn_complete"]
    answered = [c.get("inputId", "i0") for c in markers]
    accepted = [input_id for input_id, _ in chat.sent]
    assert len(accepted) == cfg.turns, where
    twice = [i for i, n in Counter(answered).items() if n > 1]
    assert not twice, f"{where}: answered twice: {twice}"
    assert answered == accepted, f"{where}: answered {answered}, accepted {accepted}"
    assert [c["turn"] for c in markers] == list(range(cfg.turns)), where
    # Turn by turn: attempts cut short by a dead worker, then one complete (or stopped) answer.
    out = Checked(answered=len(markers), events=len(chat.got))
    turns: list[list[list[dict[str, Any]]]] = []  # per turn, its attempts
    attempt: list[dict[str, Any]] | None = None
    for _, c in chunks:
        kind = c["type"]
        if kind == "__run_end":
            break
        if kind == "__turn_start":
            if attempt is None:
                turns.append([])
            else:  # a restart: only right after the dead worker's partial was closed
                assert attempt[-1] == {"type": "abort", "reason": "worker lost"}, (
                    f"{where}: turn {len(turns) - 1} started again without `abort`: "
                    f"{[a['type'] for a in attempt]}"
                )
                out.restarted += 1
            attempt = [c]
            turns[-1].append(attempt)
        else:
            assert attempt is not None, f"{where}: {kind} outside any turn"
            attempt.append(c)
            if kind == "__turn_complete":
                attempt = None
    assert attempt is None, f"{where}: the last turn never completed"
    assert len(turns) == cfg.turns, where
    for k, (attempts, (input_id, text)) in enumerate(zip(turns, chat.sent, strict=True)):
        expected = expected_answer(cfg, chat.plan.task, text, k)
        for a in attempts:
            assert a[0]["turn"] == k and a[0].get("inputId", "i0") == input_id, (where, k, a[0])
            delta = "".join(c.get("delta", "") for c in a if c["type"] == "text-delta")
            assert expected.startswith(delta), (where, k, delta)
        final = attempts[-1]
        marker = final[-1]
        kinds = [c["type"] for c in final[1:-1]]
        assert kinds[:1] == ["start"] and kinds.count("start") == 1, (where, k, kinds)
        delta = "".join(c.get("delta", "") for c in final if c["type"] == "text-delta")
        if marker["stopped"]:
            out.stopped += 1
            assert final[-2] == {"type": "abort", "reason": "stopped"}, (where, k, kinds)
            assert "finish" not in kinds, (where, k, kinds)
        else:
            assert kinds[-1] == "finish" and "abort" not in kinds, (where, k, kinds)
            assert delta == expected, (where, k, delta)
    # Only a turn a stop was for can have been stopped: the one named by inputId, else the one
    # streaming when the stop was asked (or, if it had just finished, the one queued behind it).
    stoppable = {t for k, precise, accepted in chat.stop_log if accepted
                 for t in ((k,) if precise else (k, k + 1))}  # fmt: skip
    stopped_turns = {c["turn"] for c in markers if c["stopped"]}
    assert stopped_turns <= stoppable, (where, stopped_turns, chat.stop_log)
    # on_turn_complete fired once per turn; twice only when its worker was killed after the
    # hook had run but before its return was recorded, and recovery ran it again.
    hooks = Counter(e["turn"] for e in events(r, chat.chat_id) if e["hook"] == "on_turn_complete")
    assert set(hooks) == set(range(cfg.turns)), f"{where}: on_turn_complete fired {dict(hooks)}"
    for turn, n in hooks.items():
        if n > 1:
            assert n == 2 and turn in replayed, (
                f"{where}: on_turn_complete fired {n} times for turn {turn} "
                f"(re-run after a killed worker's recovery: {turn in replayed})"
            )
            out.hooks_twice += 1
    return out


def recovery_delays(kills: list[Kill], r: redis.Redis) -> list[float]:
    """Per turn a kill interrupted: seconds from the kill to the turn's new ``__turn_start``."""
    delays = []
    for kill in kills:
        at = int(kill.at * 1000)
        for run in kill.streaming:
            entries = [(i, json.loads(c)) for i, c in redis_entries(r, run) if ms(i) >= at]
            aborts = [n for n, (_, c) in enumerate(entries)
                      if c == {"type": "abort", "reason": "worker lost"}]  # fmt: skip
            if not aborts:
                continue  # its turn ended between the check and the kill
            restart = next((i for i, c in entries[aborts[0]:] if c["type"] == "__turn_start"),
                           None)  # fmt: skip
            if restart is not None:
                delays.append((ms(restart) - at) / 1000)
    return delays


def run_soak(cfg: SoakConfig) -> dict[str, Any]:
    """Run the soak; raises AssertionError on any violation; returns its figures."""
    with Soak(cfg) as soak:
        took = soak.drive()
        statuses = soak.settle()
        replays = soak.replayed_hooks()
        totals = Checked()
        for chat in soak.chats:
            checked = check_chat(cfg, chat, soak.r, replays.get(chat.run_id, set()))
            totals.hooks_twice += checked.hooks_twice
            totals.answered += checked.answered
            totals.stopped += checked.stopped
            totals.restarted += checked.restarted
            totals.events += checked.events
        accepted = sum(len(c.sent) for c in soak.chats)
        assert totals.answered == accepted == cfg.messages
        assert soak.mid_stream_kills() == cfg.kills, (
            f"seed {cfg.seed}: {soak.mid_stream_kills()} of {len(soak.kills)} kills mid-stream"
        )
        assert all(k.handed_on is not None for k in soak.kills), [
            (k.worker, k.not_handed_on) for k in soak.kills
        ]
        delays = recovery_delays(soak.kills, soak.r)
        if cfg.kills:
            assert delays, f"seed {cfg.seed}: no turn was interrupted by a kill"
        killed = {run for k in soak.kills for run in k.owned}
        recs = soak.records(("recoveries",))
        recovered = {run for run, rec in recs.items() if int(rec["recoveries"] or 0)}
        soak.cancel_all()
        for worker in soak.all_workers:
            assert "failed in turn" not in worker.log(), worker.log()[-3000:]
        assert "Traceback" not in soak.gateway.log(), soak.gateway.log()[-3000:]
        return {
            "chats": cfg.chats, "turns": cfg.turns, "seed": cfg.seed, "seconds": round(took, 1),
            "messages_accepted": accepted, "messages_answered": totals.answered,
            "stopped_turns": totals.stopped,
            "stop_requests": sum(c.stops for c in soak.chats),
            "stream_reconnects": sum(c.reconnects for c in soak.chats),
            "events_checked": totals.events,
            "statuses_after": dict(statuses),
            "worker_kills": len(soak.kills), "mid_stream_kills": soak.mid_stream_kills(),
            "runs_owned_by_killed_workers": len(killed),
            "turns_interrupted_and_restarted": totals.restarted,
            "on_turn_complete_replayed": sum(len(t) for t in replays.values()),
            "on_turn_complete_ran_twice": totals.hooks_twice,
            "turn_restart_after_kill_s": _spread(delays),
            "all_runs_picked_up_after_kill_s": [round(k.handed_on or -1, 2) for k in soak.kills],
            "replacement_worker_ready_s": [round(k.restarted_in, 1) for k in soak.kills],
            "runs_recovered": len(recovered),
            "runs_recovered_whose_worker_lived": len(recovered - killed),
        }  # fmt: skip


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


CONFIG = SoakConfig.from_env()


@pytest.mark.integration
@pytest.mark.timeout(int(CONFIG.deadline()) + 300)
def test_soak_every_accepted_message_answered_exactly_once_whatever_dies() -> None:
    figures = run_soak(CONFIG)
    print(json.dumps(figures))
    assert figures["stop_requests"] > 0 and figures["stream_reconnects"] > 0
