"""Chat tasks for the ``while_streaming`` policies (queue, interrupt, steer, reject): a real
model call with a tool, against the scripted server. Hooks record as in tests/tasks.py."""

from __future__ import annotations

from typing import Any

from chatworker import chat
from chatworker.ai import openai, stream_text, tool

from .tasks import _hooks


def _lookup(topic: str) -> str:
    return f"notes on {topic}"


LOOKUP = tool(description="Look a topic up.", execute=_lookup, parameters={
    "type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]})


def answer(ctx: Any) -> Any:
    """The model with one tool, up to four steps (client data ``{"steps": n}`` caps them)."""
    steps = (ctx.client_data or {}).get("steps", 4) if isinstance(ctx.client_data, dict) else 4
    return stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                       tools={"lookup": LOOKUP}, max_steps=steps, abort_signal=ctx.signal)


def _task(id: str, **options: Any) -> Any:
    task = chat.task(id=id, run=answer, warm_timeout_in_seconds=10, **options)
    _hooks(task)
    return task


#: Messages mid-reply queue by default; a message may ask for any policy.
queueing = _task("policy-queue")
#: The default policy of each of these is its name.
interrupting = _task("policy-interrupt", while_streaming="interrupt")
steering = _task("policy-steer", while_streaming="steer")
rejecting = _task("policy-reject", while_streaming="reject")
#: Queues, and lets a message choose only to steer.
strict = _task("policy-strict", while_streaming_overrides=["queue", "steer"])
