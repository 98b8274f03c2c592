"""The demo's task-backed tool ``write_report``: a Celery task on the ``tools`` queue.

The chat run sends the task and waits for it without holding up its worker's other runs; the
task streams its progress into the chat as ``data-task-progress`` parts (one part per tool
call, replaced as it advances) and returns the (made-up) report, which is the tool's output.
The dev stack's worker consumes ``chat,tools``; in production the ``tools`` queue can have a
pool of its own.

Each progress part's ``data`` is ``{"toolCallId", "tool", "step", "total", "stage", "done"}``
and its ``id`` is the tool call's id.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, Field

from chatworker import chat
from chatworker.ai import Tool, task_tool
from chatworker.engine.celery_app import get_app

__all__ = ["REPORT_STAGES", "TOOLS_QUEUE", "ReportArgs", "write_report", "write_report_tool"]

#: The queue the report task travels on (``CHATWORKER_DEMO_TOOLS_QUEUE``, default ``tools``).
TOOLS_QUEUE = os.environ.get("CHATWORKER_DEMO_TOOLS_QUEUE", "tools")

REPORT_STAGES = ("Gathering sources", "Reading", "Outlining", "Drafting", "Polishing")


def _step_seconds() -> float:
    try:
        return float(os.environ.get("CHATWORKER_DEMO_REPORT_STEP_SECONDS", "0.6"))
    except ValueError:
        return 0.6


class ReportArgs(BaseModel):
    """Arguments of ``write_report``."""

    topic: str = Field(description="What the report is about, e.g. 'tide pools'.")


@get_app().task(name="demo.write_report", ignore_result=True)  # type: ignore[untyped-decorator]
def write_report(topic: str) -> dict[str, Any]:
    """Write a short report on a topic (made-up demo content, a few seconds of work)."""
    call = chat.task_call()
    tool_call_id = call.tool_call_id if call is not None else None
    total = len(REPORT_STAGES)

    def report(step: int, stage: str, done: bool = False) -> None:
        chat.stream.write_data("task-progress", {
            "toolCallId": tool_call_id, "tool": "write_report", "step": step, "total": total,
            "stage": stage, "done": done,
        }, id=tool_call_id)

    try:
        for step, stage in enumerate(REPORT_STAGES, 1):
            if chat.is_stopped():
                return {"topic": topic, "cancelled": True}
            report(step, stage)
            time.sleep(_step_seconds())
        report(total, "Done", done=True)
    except chat.CallClosed:  # the chat stopped between the check and the write
        return {"topic": topic, "cancelled": True}
    return {
        "topic": topic,
        "summary": f"A short made-up report on {topic}: three findings, one open question.",
        "sections": ["Background", "Findings", "Open questions"],
        "note": "demo data, written by a Celery task on the tools queue",
    }


write_report_tool: Tool = task_tool(write_report, parameters=ReportArgs, queue=TOOLS_QUEUE)
