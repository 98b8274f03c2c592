"""Prometheus metrics and JSON logs, read as an operator would: scrape the gateway's ``/metrics``
and each worker's ``CHATWORKER_METRICS_PORT`` around a scripted conversation (a completed turn,
a stopped turn, a failed run, a worker killed mid-turn), and parse the JSON log lines."""

from __future__ import annotations

import json
import signal
import urllib.request
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from chatworker import runs

from ..conftest import worker_env
from ..faults.helpers import call, trigger_token
from ..gateway.conftest_helpers import Gunicorn, SSEClient, gateway_env
from ..support import (
    Worker,
    free_port,
    isolated_db,
    payload,
    read_turn,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration

PREFIX = "/api/chat"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def total(workers: list[Samples], name: str, **labels: str) -> float:
    return sum(value(s, name, **labels) for s in workers)


class Fleet:
    def __init__(self, gateway: Gunicorn, workers: list[tuple[Worker, int]]) -> None:
        self.gateway = gateway
        self.workers = workers

    def gw(self) -> Samples:
        return scrape(self.gateway.url + "/metrics")

    def each(self, alive: list[Worker] | None = None) -> list[Samples]:
        return [scrape(f"http://127.0.0.1:{port}/metrics") for w, port in self.workers
                if alive is None or w in alive]


def trigger(gw: Gunicorn, chat_id: str, text: str, **metadata: Any) -> tuple[str, str]:
    status, body, _ = call(gw.url, "POST", f"{PREFIX}/tasks/echo/runs",
                           payload(chat_id, user_message(text), metadata=metadata),
                           token=trigger_token("echo"))
    assert status == 201, body
    return body["runId"], body["publicAccessToken"]


def test_metrics_follow_a_scripted_conversation(redis_url: str, chat_id: str) -> None:
    with isolated_db(redis_url, 2) as url:
        r = redis.Redis.from_url(url, decode_responses=True)
        ports = [free_port(), free_port()]
        log_env = {"CHATWORKER_LOG_FORMAT": "json"}
        workers = [Worker(worker_env(url, CHATWORKER_METRICS_PORT=str(port), **log_env),
                          name=f"metrics{i}") for i, port in enumerate(ports)]
        gateway = Gunicorn(gateway_env(url, **log_env), name="metrics")
        try:
            for w in workers:
                w.start()
            gateway.start()
            fleet = Fleet(gateway, list(zip(workers, ports, strict=True)))
            before = fleet.gw()
            assert value(before, "chatworker_runs", status="owned") == 0
            assert total(fleet.each(), "chatworker_turns_total") == 0

            # 1. A completed turn: counted once, with its first-chunk latency, its duration and
            # its streamed tokens; the run then waits warm on its worker.
            run_id, token = trigger(gateway, chat_id, "hello", words=5)
            entries = read_turn(r, run_id)
            assert types_of(entries)[-1] == "__turn_complete"
            deltas = types_of(entries).count("text-delta")
            wait_for(lambda: total(fleet.each(), "chatworker_turns_total", task="echo",
                                   outcome="completed") == 1)
            each = fleet.each()
            assert total(each, "chatworker_first_chunk_seconds_count", task="echo") == 1
            assert total(each, "chatworker_turn_seconds_count", task="echo") == 1
            assert total(each, "chatworker_turn_seconds_sum", task="echo") > 0
            assert total(each, "chatworker_tokens_total", task="echo") == deltas
            wait_for(lambda: total(fleet.each(), "chatworker_runs_owned", state="warm") == 1)
            gw = fleet.gw()
            assert value(gw, "chatworker_runs", status="owned") == 1
            trigger_route = f"{PREFIX}/tasks/<task_id>/runs"
            assert value(gw, "chatworker_http_requests_total", route=trigger_route,
                         method="POST", status="201") == 1

            # 2. A stopped turn: while it streams, the gateway counts its SSE client and the
            # worker its streaming run; stopped, it is counted as stopped.
            runs.send_message(run_id, payload(chat_id, user_message("long"),
                                              metadata={"words": 400, "delay": 0.05}))
            sse = SSEClient(gateway.url, f"{PREFIX}/runs/{run_id}/stream?after={entries[-1][0]}",
                            headers={"Authorization": f"Bearer {token}"})
            try:
                wait_for(lambda: value(fleet.gw(), "chatworker_sse_clients") == 1)
                wait_for(lambda: total(fleet.each(), "chatworker_runs_owned",
                                       state="streaming") == 1)
                wait_for(lambda: len(text_of(runs.read_stream(run_id, after=entries[-1][0]))) > 10)
                assert runs.stop(run_id)
                stopped = read_turn(r, run_id, after=entries[-1][0])
                assert stopped[-1][1]["stopped"] is True
            finally:
                sse.close()
            wait_for(lambda: total(fleet.each(), "chatworker_turns_total", task="echo",
                                   outcome="stopped") == 1)
            assert total(fleet.each(), "chatworker_turns_total", outcome="completed") == 1
            wait_for(lambda: value(fleet.gw(), "chatworker_sse_clients") == 0)

            # 3. A failed run: counted as failed.
            failed_id, _ = trigger(gateway, chat_id + "-f", "boom", fail_in="run")
            wait_for(lambda: runs.status(failed_id).status == "failed")
            wait_for(lambda: total(fleet.each(), "chatworker_turns_total", task="echo",
                                   outcome="failed") == 1)

            # Runs of a queue limited to two at a time: the ones over the limit wait in line.
            tight = [runs.trigger("tight-queue", payload(f"{chat_id}-t{i}", user_message("go")))
                     for i in range(4)]
            for started in tight:
                assert text_of(read_turn(r, started.run_id, timeout=30)) == "done"
            assert total(fleet.each(), "chatworker_concurrency_waits_total", queue="tight") >= 2

            # 4. A worker killed mid-turn: the survivor's sweep recovers the run (a recovery,
            # and a turn counted as recovered), then answers the turn again (completed).
            doomed_id, _ = trigger(gateway, chat_id + "-k", "survive", words=120, delay=0.05)
            wait_for(lambda: len(text_of(runs.read_stream(doomed_id))) > 20)
            owner = runs.status(doomed_id).owner or ""
            doomed = next(w for w in workers if owner.split(":")[1:2] == [str(w.proc.pid)])
            survivor = next(w for w in workers if w is not doomed)
            alive = [survivor]
            base = fleet.each(alive)
            completed_before = total(base, "chatworker_turns_total", outcome="completed")
            assert total(base, "chatworker_recoveries_total") == 0
            doomed.stop(signal.SIGKILL)
            restarted = read_turn(r, doomed_id, timeout=60)
            assert "abort" in types_of(restarted) and restarted[-1][1]["stopped"] is False
            wait_for(lambda: total(fleet.each(alive), "chatworker_turns_total",
                                   outcome="completed") == completed_before + 1, timeout=30)
            after = fleet.each(alive)
            # Every run the dead worker held is recovered (the one mid-turn, and any it held
            # warm); only the one mid-turn is a recovered turn.
            lines = [json.loads(line) for line in survivor.log().splitlines()
                     if line.startswith("{")]
            recovered = [x for x in lines if "stopped renewing its lease" in x["message"]]
            assert doomed_id in {x["message"].split()[1].rstrip(":") for x in recovered}
            assert total(after, "chatworker_recoveries_total") == len(recovered)
            assert total(after, "chatworker_turns_total", task="echo", outcome="recovered") == 1

            # JSON logs: every worker line is one JSON object; a run's lines carry its fields.
            mine = [x for x in lines if x.get("run_id") == doomed_id]
            complete = [x for x in mine if "turn 0 complete" in x["message"]]
            assert complete and complete[0]["chat_id"] == chat_id + "-k"
            assert complete[0]["task"] == "echo" and complete[0]["turn"] == 0
            gw_lines = [json.loads(line) for line in gateway.log().splitlines()
                        if line.startswith("{")]
            queued = [x for x in gw_lines if x.get("run_id") == run_id and "queued" in x["message"]]
            assert queued and queued[0]["chat_id"] == chat_id and queued[0]["task"] == "echo"
        finally:
            gateway.stop()
            for w in workers:
                w.stop(signal.SIGKILL)


def test_gunicorn_workers_add_up_their_counts_in_multiprocess_mode(
        redis_url: str, tmp_path: Any) -> None:
    with isolated_db(redis_url, 2) as url:
        env = gateway_env(url, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
        with Gunicorn(env, name="metrics-mp", workers=2) as gateway:
            # A route only this test calls (the readiness probes call /healthz).
            route = "/<outside:path>"
            for _ in range(12):
                status, _, _ = call(gateway.url, "GET", "/no-such-page.txt")
                assert status == 404
            # Whichever worker process answers the scrape, it counts every process's requests.
            for _ in range(4):
                samples = scrape(gateway.url + "/metrics")
                assert value(samples, "chatworker_http_requests_total", route=route,
                             status="404") == 12
                assert value(samples, "chatworker_runs", status="owned") == 0
