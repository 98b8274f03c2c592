"""Tools that run as Celery tasks: a chat task whose tool is a task of another Celery app.

The chat worker (``-Q chat``) runs the chat task; a second worker
(``celery -A tests.task_tool_tasks:tools_app worker -Q tools``) runs ``render``. The task
records what it saw in the Redis list ``test:tooltask:<label>``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery, current_task
from pydantic import BaseModel

from chatworker import chat
from chatworker.ai import openai, step_count_is, stream_text, task_tool
from chatworker.protocol.messages import dump

#: The tool pool's own Celery app (not chatworker's), as an application would have one.
tools_app = Celery("tool-tests", broker=os.environ.get("CHATWORKER_REDIS_URL"))
tools_app.conf.update(
    task_ignore_result=True, task_serializer="json", accept_content=["json"],
    worker_prefetch_multiplier=1, worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


def record(label: str, **fields: Any) -> None:
    client = redis.Redis.from_url(os.environ["CHATWORKER_REDIS_URL"], decode_responses=True)
    client.rpush(f"test:tooltask:{label}", json.dumps(fields))


@tools_app.task(name="tests.render")
def render(label: str, steps: int, delay: float = 0.05, mode: str = "cooperative") -> Any:
    """Render a picture, reporting progress."""
    call = chat.task_call()
    where = {"hostname": current_task.request.hostname, "pid": os.getpid()}
    record(label, event="started", tool_call_id=call.tool_call_id if call else None, **where)
    if mode == "fail":
        raise ValueError(f"cannot render {label}")
    if mode == "not-json":
        return {1, 2}
    for step in range(1, steps + 1):
        if mode == "cooperative" and chat.is_stopped():
            record(label, event="saw-cancel", step=step)
            return {"cancelled": True}
        try:
            chat.stream.write_data("render-progress", {"label": label, "step": step,
                                                       "of": steps, **where}, id=label)
        except chat.CallClosed as exc:
            record(label, event="write-refused", step=step, error=str(exc))
            return {"refused": True}
        time.sleep(delay)
    return {"label": label, "steps": steps, **where}


class RenderArgs(BaseModel):
    label: str
    steps: int
    delay: float = 0.05
    mode: str = "cooperative"


render_tool = task_tool(render, parameters=RenderArgs, queue="tools")


@chat.task(id="task-tool-chat", warm_timeout_in_seconds=2)
def task_tool_chat(ctx: Any) -> Any:
    return stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                       tools={"render": render_tool}, stop_when=step_count_is(3),
                       abort_signal=ctx.signal)


@task_tool_chat.on_turn_complete
def _captured(event: Any) -> None:
    message = event.response_message
    parts = dump(message)["parts"] if message is not None else []
    redis.Redis.from_url(os.environ["CHATWORKER_REDIS_URL"], decode_responses=True).rpush(
        f"test:events:{event.chat_id}",
        json.dumps({"hook": "on_turn_complete", "stopped": event.stopped, "parts": parts}),
    )


@chat.task(id="task-tool-timeout", warm_timeout_in_seconds=2)
def task_tool_timeout(ctx: Any) -> Any:
    impatient = task_tool(render, parameters=RenderArgs, queue="tools", timeout="1s")
    return stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                       tools={"render": impatient}, stop_when=step_count_is(3),
                       abort_signal=ctx.signal)
