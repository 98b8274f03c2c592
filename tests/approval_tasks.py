"""Chat tasks with a tool that needs approval (loaded by tests.tasks).

The ``book`` tool counts its executions in Redis (``test:executions:<key>``), so tests see how
often it really ran; with ``hold`` its first execution blocks, for a worker to be killed in it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from chatworker import chat
from chatworker.ai import openai, stream_text, tool

from .tasks import _hooks, store


class Booking(BaseModel):
    people: int
    key: str
    hold: bool = False


def book(args: Booking) -> dict[str, Any]:
    count = store().incr(f"test:executions:{args.key}")
    if args.hold and count == 1:
        store().set(f"test:holding:{args.key}", "1")
        time.sleep(120)  # the test kills the worker meanwhile
    return {"table": 7, "people": args.people}


TOOLS = {
    "book": tool(description="Book a table.", parameters=Booking, execute=book,
                 needs_approval=True),
}


def run_with_tools(ctx: Any) -> Any:
    return stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                       tools=TOOLS, max_steps=5, abort_signal=ctx.signal)


def waits_a_day_for_approval(ctx: Any) -> Any:
    """The docs' pattern: a turn that ends waiting for approval gives the run a day."""

    def on_finish(event: Any) -> None:
        if event.finish_reason == "tool-calls":
            chat.set_turn_timeout("24h")

    return stream_text(model=openai("scripted", max_retries=0), messages=ctx.messages,
                       tools=TOOLS, max_steps=5, abort_signal=ctx.signal, on_finish=on_finish)


approvals_long = chat.task(id="approvals-long", run=waits_a_day_for_approval,
                           warm_timeout_in_seconds=0.3, turn_timeout="60s")

# Suspends soon after each turn (0.3 s warm) and waits a minute for the answer.
approvals = chat.task(id="approvals", run=run_with_tools, warm_timeout_in_seconds=0.3,
                      turn_timeout="60s")
_hooks(approvals)

# Ends soon after each turn: the answer then reaches a continuation run.
approvals_brief = chat.task(id="approvals-brief", run=run_with_tools,
                            warm_timeout_in_seconds=0.2, turn_timeout="0.5s")
_hooks(approvals_brief)
