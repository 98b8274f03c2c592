"""Tools that run as Celery tasks (``chatworker.ai.task_tool``): a gevent chat worker consuming
``chat`` and a second, prefork worker of the tools' own Celery app consuming ``tools``
(tasks in tests/task_tool_tasks.py), against the scripted model server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chatworker import runs
from chatworker.engine.registry import load_tasks
from chatworker.testing import ModelServer, Text, ToolCall

from ..conftest import worker_env
from ..support import (
    Worker,
    events,
    isolated_db,
    payload,
    read_turn,
    running_worker,
    text_of,
    types_of,
    user_message,
    wait_for,
)

pytestmark = pytest.mark.integration


class Pools:
    def __init__(self, chat: Worker, tools: Worker, url: str) -> None:
        self.chat = chat
        self.tools = tools
        self.r = redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture(scope="module")
def pools(redis_url: str, model_server: ModelServer) -> Iterator[Pools]:
    with isolated_db(redis_url, 11) as url:
        load_tasks("tests.task_tool_tasks")  # after the switch: its tools app uses this db
        env = worker_env(url, CHATWORKER_TASKS="tests.task_tool_tasks")
        with (
            running_worker(env, pool="gevent", concurrency=20, name="chat") as chat,
            running_worker(env, pool="prefork", concurrency=2, name="tools", queues="tools",
                           app="tests.task_tool_tasks:tools_app") as tools,
        ):
            yield Pools(chat, tools, url)


def call_render(server: ModelServer, prompt: str, **args: Any) -> None:
    """The model calls ``render`` with ``args``, then echoes the tool's result."""

    def reply(body: dict[str, Any]) -> list[Any]:
        last = body["messages"][-1]
        if last.get("role") == "tool":
            return [Text(f"Rendered: {last['content']}")]
        return [ToolCall("render", args)]

    server.on(prompt, reply)


def task_events(r: redis.Redis, label: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in r.lrange(f"test:tooltask:{label}", 0, -1)]


def seen(r: redis.Redis, label: str, event: str) -> dict[str, Any]:
    return wait_for(lambda: next((e for e in task_events(r, label) if e["event"] == event),
                                 None), timeout=30)


def progress(entries: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(i, c) for i, c in entries if c["type"] == "data-render-progress"]


def captured(r: redis.Redis, chat_id: str) -> dict[str, Any]:
    return wait_for(lambda: next((e for e in events(r, chat_id)
                                  if e["hook"] == "on_turn_complete"), None))


def test_the_task_runs_on_the_tool_worker_streams_progress_and_answers_the_model(
    pools: Pools, model_server: ModelServer, chat_id: str
) -> None:
    call_render(model_server, f"draw {chat_id}", label=chat_id, steps=3)
    started = runs.trigger("task-tool-chat", payload(chat_id, user_message(f"draw {chat_id}")))
    entries = read_turn(pools.r, started.run_id, timeout=30)

    # The task ran on the tools worker, in another process than the chat run.
    where = seen(pools.r, chat_id, "started")
    assert where["hostname"].startswith(pools.tools.name + "@")
    assert pools.chat.proc is not None and where["pid"] != pools.chat.proc.pid
    tool_input = next(c for _, c in entries if c["type"] == "tool-input-available")
    assert where["tool_call_id"] == tool_input["toolCallId"]

    # Its progress reached the chat's stream, between the tool input and the tool output.
    kinds = types_of(entries)
    steps = [c["data"]["step"] for _, c in progress(entries)]
    assert steps == [1, 2, 3]
    assert kinds.index("tool-input-available") < kinds.index("data-render-progress")
    assert kinds.index("data-render-progress") < kinds.index("tool-output-available")

    # Its return value is the tool output, and reached the model, which echoed it.
    output = next(c for _, c in entries if c["type"] == "tool-output-available")["output"]
    assert output == {"label": chat_id, "steps": 3, **{k: where[k] for k in ("hostname", "pid")}}
    tool_messages = [m for body in model_server.requests for m in body["messages"]
                     if m.get("role") == "tool" and chat_id in str(m.get("content"))]
    assert json.loads(tool_messages[0]["content"]) == output
    assert text_of(entries).startswith("Rendered: ") and chat_id in text_of(entries)

    # The captured response holds the progress part (the last one, replaced by id) and the tool.
    parts = captured(pools.r, chat_id)["parts"]
    data = [p for p in parts if p["type"] == "data-render-progress"]
    assert [p["data"]["step"] for p in data] == [3]
    tool_part = next(p for p in parts if p["type"] == "tool-render")
    assert tool_part["state"] == "output-available" and tool_part["output"] == output


def test_a_failing_task_or_one_returning_no_json_is_the_tool_error(
    pools: Pools, model_server: ModelServer, chat_id: str
) -> None:
    for mode, expected in (("fail", "ValueError: cannot render"), ("not-json", "not JSON")):
        label = f"{chat_id}-{mode}"
        call_render(model_server, f"draw {label}", label=label, steps=1, mode=mode)
        started = runs.trigger("task-tool-chat",
                               payload(label, user_message(f"draw {label}")))
        entries = read_turn(pools.r, started.run_id, timeout=30)
        assert "tool-output-error" in types_of(entries)  # its text is masked for clients
        told = next(body["messages"][-1] for body in model_server.requests
                    if f"draw {label}" in json.dumps(body["messages"])
                    and body["messages"][-1].get("role") == "tool")
        assert expected in told["content"]  # the model is told what went wrong


def test_a_task_slower_than_the_tool_timeout_is_given_up_and_told_to_stop(
    pools: Pools, model_server: ModelServer, chat_id: str
) -> None:
    call_render(model_server, f"draw {chat_id}", label=chat_id, steps=400, delay=0.1)
    started = runs.trigger("task-tool-timeout", payload(chat_id, user_message(f"draw {chat_id}")))
    entries = read_turn(pools.r, started.run_id, timeout=30)
    assert "tool-output-error" in types_of(entries) and "abort" not in types_of(entries)
    assert text_of(entries).startswith("Rendered: ")  # the model answered after the error
    told = next(body["messages"][-1] for body in model_server.requests
                if f"draw {chat_id}" in json.dumps(body["messages"])
                and body["messages"][-1].get("role") == "tool")
    assert "did not answer within 1s" in told["content"]
    # The task learns it was given up: at its next check when it runs (on a loaded machine it
    # may not have started within the second; then it is revoked and never starts at all).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            e["event"] == "started" for e in task_events(pools.r, chat_id)):
        time.sleep(0.1)
    if any(e["event"] == "started" for e in task_events(pools.r, chat_id)):
        # It learns at its next step (0.1 s apart, 400 of them): from chat.is_stopped(), or,
        # closed between that check and its next progress write, from the refused write.
        learned = wait_for(lambda: next((e for e in task_events(pools.r, chat_id)
                                         if e["event"] in ("saw-cancel", "write-refused")),
                                        None), timeout=30)
        assert learned["step"] < 400


def test_a_stop_mid_task_ends_the_turn_the_task_sees_it_and_a_queued_task_never_starts(
    pools: Pools, model_server: ModelServer, chat_id: str
) -> None:
    # Two long tasks take both slots of the tools worker: one checks chat.is_stopped(), the
    # other keeps streaming; a third run's task waits in the queue behind them.
    labels = {mode: f"{chat_id}-{mode}" for mode in ("cooperative", "stubborn", "queued")}
    started = {}
    for mode, label in labels.items():
        call_render(model_server, f"draw {label}", label=label, steps=400, delay=0.1,
                    mode="stubborn" if mode == "stubborn" else "cooperative")
        started[mode] = runs.trigger("task-tool-chat",
                                     payload(label, user_message(f"draw {label}")))
        if mode != "queued":
            seen(pools.r, label, "started")
    queued = started["queued"].run_id
    wait_for(lambda: any(c["type"] == "tool-input-available"
                         for _, c in runs.read_stream(queued)))

    # Stopped while queued: its turn ends, and the task never starts (revoked).
    runs.stop(queued)
    assert types_of(read_turn(pools.r, queued, timeout=30))[-2:] == ["abort", "__turn_complete"]

    # Stopped mid-task: the turns end while the tasks still run; each task learns of it.
    for mode in ("cooperative", "stubborn"):
        run_id = started[mode].run_id
        wait_for(lambda run_id=run_id: progress(runs.read_stream(run_id)))
        runs.stop(run_id)
        entries = read_turn(pools.r, run_id, timeout=30)
        assert types_of(entries)[-2:] == ["abort", "__turn_complete"]
        assert "tool-output-available" not in types_of(entries)
    assert seen(pools.r, labels["cooperative"], "saw-cancel")["step"] < 400
    refused = seen(pools.r, labels["stubborn"], "write-refused")
    assert refused["step"] < 400 and "ended" in refused["error"]
    for mode in ("cooperative", "stubborn"):  # nothing was written after the turn's end
        assert types_of(runs.read_stream(started[mode].run_id))[-1] == "__turn_complete"
        assert captured(pools.r, labels[mode])["stopped"] is True

    # The tools worker is free again: a later call runs, and the stopped one never did.
    later = f"{chat_id}-later"
    call_render(model_server, f"draw {later}", label=later, steps=1)
    done = runs.trigger("task-tool-chat", payload(later, user_message(f"draw {later}")))
    assert "tool-output-available" in types_of(read_turn(pools.r, done.run_id, timeout=30))
    assert task_events(pools.r, labels["queued"]) == []
    assert "revoked" in pools.tools.log().lower()


def test_two_runs_waiting_on_task_tools_do_not_block_each_other(
    pools: Pools, model_server: ModelServer, chat_id: str
) -> None:
    labels = [f"{chat_id}-a", f"{chat_id}-b"]
    for label in labels:
        call_render(model_server, f"draw {label}", label=label, steps=6, delay=0.2)
    first, second = (runs.trigger("task-tool-chat", payload(label, user_message(f"draw {label}")))
                     for label in labels)
    a = progress(read_turn(pools.r, first.run_id, timeout=30))
    b = progress(read_turn(pools.r, second.run_id, timeout=30))
    assert len(a) == len(b) == 6

    def at(entry_id: str) -> tuple[int, int]:
        ms, seq = entry_id.split("-")
        return int(ms), int(seq)

    # Interleaved: each run's task streamed while the other's was streaming.
    assert at(b[0][0]) < at(a[-1][0]) and at(a[0][0]) < at(b[-1][0])


def test_the_demo_report_tool_streams_its_progress_from_the_tools_queue(
    redis_url: str, model_server: ModelServer, tmp_path: Path
) -> None:
    # The demo app as the dev stack runs it: one worker consuming chat and tools, the offline
    # demo model calling write_report for a report prompt.
    with (
        ModelServer(demo=True, demo_tokens_per_second=None) as demo_model,
        isolated_db(redis_url, 10) as url,
    ):
        load_tasks("web.demo_tasks")
        env = worker_env(url, CHATWORKER_TASKS="web.demo_tasks",
                         CHATWORKER_DEMO_MODEL_URL=demo_model.base_url,
                         CHATWORKER_DEMO_DB=str(tmp_path / "demo.sqlite3"),
                         CHATWORKER_DEMO_REPORT_STEP_SECONDS="0.05")
        env.pop("OPENAI_API_KEY", None)
        with running_worker(env, pool="gevent", concurrency=5, name="demo", queues="chat,tools"):
            r = redis.Redis.from_url(url, decode_responses=True)
            started = runs.trigger("demo-chat", payload(
                "demo-report", user_message("Write a report on tide pools, please.")))
            entries = read_turn(r, started.run_id, timeout=30)
    call = next(c for _, c in entries if c["type"] == "tool-input-available")
    assert call["toolName"] == "write_report" and call["input"] == {"topic": "tide pools"}
    parts = [c for _, c in entries if c["type"] == "data-task-progress"]
    assert {p["id"] for p in parts} == {call["toolCallId"]}
    assert [p["data"]["step"] for p in parts] == [1, 2, 3, 4, 5, 5]
    assert parts[-1]["data"] == {"toolCallId": call["toolCallId"], "tool": "write_report",
                                 "step": 5, "total": 5, "stage": "Done", "done": True}
    output = next(c for _, c in entries if c["type"] == "tool-output-available")["output"]
    assert "tide pools" in output["summary"]
    assert "report task" in text_of(entries)
