"""The load generator: many concurrent SSE chats from one gevent process.

``python -m bench.load SPEC.json`` reads a spec written by the benchmark runner, and talks to it
over stdin/stdout:

- mode ``runs`` (chatworker): open every run's SSE stream (``GET /runs/<id>/stream`` after its
  last entry), print ``open <n>``, wait for ``go`` on stdin, then post one message to each run,
  staggered evenly over ``stagger`` seconds, and read each stream to the turn's marker;
- mode ``fresh`` (chatworker, whole turns): on ``go``, for each of ``count`` chats, staggered
  the same way, trigger a new run (``POST /tasks/<task>/runs`` with the message, as a chat
  app's first message does), open its SSE stream and read it to the turn's marker;
- mode ``baseline``: on ``go``, ``POST /baseline`` for each chat, staggered the same way, and
  read each response to its end.

Any line other than ``go`` on stdin closes every stream without sending anything (the runner
uses it to hold streams open while it measures what they cost).

It prints ``started <monotonic time>`` when the first message goes out and, at the end, writes
``out``: for every model token received, its receive time and its latency from the model's emit
timestamp (the token's text; a worker under load may merge queued tokens into one text delta),
plus counts of failures and the time the last turn ended (``last``). It is bounded:
``deadline`` seconds after ``go`` every stream is abandoned.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from array import array  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event as GEvent  # noqa: E402

from bench.sse_client import Connection  # noqa: E402

_DELTA = b'"delta":"'


class Turn:
    """What one chat's turn has shown so far."""

    aborted = False


class Recorder:
    """Receive times and latencies of model tokens (compact arrays) and failure counts."""

    def __init__(self) -> None:
        self.received = array("d")
        self.latency = array("d")
        self.completed = 0
        self.failed = 0
        self.errors: list[str] = []
        self.last = 0.0

    def feed(self, events: list[Any], turn: Turn) -> str:
        """Record the deltas of ``events``; ``"done"`` or ``"failed"`` once the turn is over
        (failed: cut off with ``abort``, or the run ended), ``""`` before."""
        done = ""
        for event in events:
            data = event.data
            at = event.at
            if b'"text-delta"' in data:
                start = data.find(_DELTA)
                if start >= 0:  # one stamp per model token; a merged delta holds several
                    start += len(_DELTA)
                    for stamp in data[start : data.find(b'"', start)].split():
                        try:
                            emitted = float(stamp)
                        except ValueError:
                            continue
                        self.received.append(at)
                        self.latency.append(at - emitted)
            elif b'"type":"abort"' in data:
                turn.aborted = True
            elif b'"__turn_complete"' in data or data == b"[DONE]":
                done = "failed" if turn.aborted else "done"
            elif b'"__run_end"' in data:
                done = "failed"
        return done

    def fail(self, exc: BaseException) -> None:
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(repr(exc))


def _read_turn(conn: Connection, recorder: Recorder) -> None:
    turn = Turn()
    while True:
        events = conn.next_events()
        if not events:
            raise ConnectionError("the stream ended before the turn did")
        outcome = recorder.feed(events, turn)
        if outcome == "done":
            recorder.completed += 1
            recorder.last = max(recorder.last, time.monotonic())
            return
        if outcome:
            raise ConnectionError("the turn was cut off (abort, or the run ended)")


def run_chat(
    spec: dict[str, Any], chat: dict[str, Any], go: GEvent, at: float, rec: Recorder
) -> None:
    """One chatworker chat: stream open first, then the message, then read the turn."""
    host, port, prefix = spec["host"], spec["port"], spec["prefix"]
    auth = {"Authorization": f"Bearer {chat['token']}"}
    stream = None
    try:
        stream = Connection(host, port, timeout=None)
        stream.request(
            "GET",
            f"{prefix}/runs/{chat['run']}/stream?timeout=600",
            headers={**auth, "Last-Event-ID": chat["after"]},
        )
        if stream.head() != 200:
            raise ConnectionError(f"stream: HTTP {stream.status}")
        stream.wait_open()
        spec["_opened"] += 1
        if spec["_opened"] == len(spec["chats"]):
            spec["_all_open"].set()
        go.wait()
        gevent.sleep(max(0.0, spec["_t0"] + at - time.monotonic()))
        post = Connection(host, port, timeout=60)
        try:
            body = {"chatId": chat["chat"], "messages": [message(spec["message"])]}
            post.request(
                "POST", f"{prefix}/runs/{chat['run']}/input/messages", body=body, headers=auth
            )
            post.json(202)
        finally:
            post.close()
        _read_turn(stream, rec)
    except Exception as exc:
        rec.fail(exc)
    finally:
        if stream is not None:
            stream.close()


def run_fresh(spec: dict[str, Any], go: GEvent, at: float, rec: Recorder) -> None:
    """One whole turn of a new chat: trigger a run with the message, then read its stream."""
    host, port, prefix = spec["host"], spec["port"], spec["prefix"]
    stream = None
    try:
        go.wait()
        gevent.sleep(max(0.0, spec["_t0"] + at - time.monotonic()))
        post = Connection(host, port, timeout=60)
        try:
            chat_id = f"bench-{time.monotonic_ns()}"
            body = {"chatId": chat_id, "messages": [message(spec["message"])]}
            auth = {"Authorization": f"Bearer {spec['trigger_token']}"}
            post.request("POST", f"{prefix}/tasks/{spec['task']}/runs", body=body, headers=auth)
            created = post.json(201)
        finally:
            post.close()
        stream = Connection(host, port, timeout=None)
        stream.request(
            "GET",
            f"{prefix}/runs/{created['runId']}/stream?timeout=600",
            headers={"Authorization": f"Bearer {created['publicAccessToken']}"},
        )
        if stream.head() != 200:
            raise ConnectionError(f"stream: HTTP {stream.status}")
        _read_turn(stream, rec)
    except Exception as exc:
        rec.fail(exc)
    finally:
        if stream is not None:
            stream.close()


def run_baseline(spec: dict[str, Any], go: GEvent, at: float, rec: Recorder) -> None:
    """One baseline chat: ``POST /baseline`` and read the response to its end."""
    conn = None
    try:
        go.wait()
        gevent.sleep(max(0.0, spec["_t0"] + at - time.monotonic()))
        conn = Connection(spec["host"], spec["port"], timeout=None)
        conn.request("POST", "/baseline", body={"messages": [message(spec["message"])]})
        if conn.head() != 200:
            raise ConnectionError(f"baseline: HTTP {conn.status}")
        _read_turn(conn, rec)
    except Exception as exc:
        rec.fail(exc)
    finally:
        if conn is not None:
            conn.close()


def message(text: str) -> dict[str, Any]:
    """A user UI message."""
    return {
        "id": f"m{time.monotonic_ns()}",
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


def main(path: str) -> None:
    """Run the spec at ``path`` (see the module docstring)."""
    with open(path) as f:
        spec: dict[str, Any] = json.load(f)
    rec = Recorder()
    go = GEvent()
    spec["_opened"] = 0
    spec["_all_open"] = GEvent()
    spec["_t0"] = 0.0
    count = len(spec["chats"]) if spec["mode"] == "runs" else int(spec["count"])
    step = spec["stagger"] / max(1, count)
    if spec["mode"] == "runs":
        greenlets = [
            gevent.spawn(run_chat, spec, chat, go, i * step, rec)
            for i, chat in enumerate(spec["chats"])
        ]
        spec["_all_open"].wait(timeout=spec["open_timeout"])
        print(f"open {spec['_opened']}", flush=True)
    else:
        target = run_fresh if spec["mode"] == "fresh" else run_baseline
        greenlets = [gevent.spawn(target, spec, go, i * step, rec) for i in range(count)]
        print("open 0", flush=True)
    command = sys.stdin.readline().strip()
    if command == "go":
        spec["_t0"] = time.monotonic() + 0.05
        go.set()
        print(f"started {spec['_t0']:.6f}", flush=True)
        gevent.joinall(greenlets, timeout=spec["deadline"])
    gevent.killall(greenlets, timeout=5)
    with open(spec["out"], "w") as f:
        json.dump(
            {
                "received": rec.received.tolist(),
                "latency": rec.latency.tolist(),
                "completed": rec.completed,
                "failed": rec.failed,
                "errors": rec.errors,
                "last": rec.last,
            },
            f,
        )
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
