"""The span of one turn of a chat run (see :mod:`chatworker.tracing`; a no-op when off).

It is a child of the span of the request that sent the turn's message (the context travelled
with the message), so the gateway request and the worker's turn are one trace; the hooks, model
calls and tool calls of the turn are its children.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import tracing
from .driver import Input, RunCanceled


@contextmanager
def traced_turn(run: Any, item: Input) -> Iterator[None]:
    """A ``chatworker.turn`` span around the turn ``run`` (a chat run driver) answers ``item``
    with: task, run id, chat id, turn number, input id and trigger, then ``stopped`` and
    ``outcome`` (``completed``, ``stopped``, ``canceled`` or ``failed``)."""
    attributes = {
        "chatworker.task": run.task.id, "chatworker.run_id": run.run_id,
        "chatworker.chat_id": str(run.chat_id), "chatworker.turn": run.turn_number,
        "chatworker.input_id": item.input_id, "chatworker.trigger": item.payload.trigger,
    }
    with tracing.span("chatworker.turn", attributes, parent=item.trace) as span:
        try:
            yield
        except RunCanceled:
            span.set_attributes({"chatworker.stopped": True, "chatworker.outcome": "canceled"})
            raise
        except BaseException:
            span.set_attributes({"chatworker.stopped": False, "chatworker.outcome": "failed"})
            raise
        stopped = bool((getattr(run, "last_turn", None) or {}).get("stopped"))
        span.set_attributes({"chatworker.stopped": stopped,
                             "chatworker.outcome": "stopped" if stopped else "completed"})
