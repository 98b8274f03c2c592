"""The chat tasks the benchmark's worker runs (``CHATWORKER_TASKS=bench.tasks``).

Both answer with ``stream_text`` over one module-level ``openai`` client pointed at the scripted
model server (``OPENAI_BASE_URL``), as an app would: creating an ``openai.OpenAI`` client costs
tens of milliseconds, far too much to pay per turn. The model is sent the latest user message
only, like the baseline route, so every model request has the same size whatever the turn.
"""

from __future__ import annotations

from typing import Any

from chatworker import chat
from chatworker.ai import stream_text
from chatworker.ai.providers import OpenAIChatModel

from .client import model_client

MODEL = OpenAIChatModel("bench", model_client())


def answer(ctx: Any) -> Any:
    """Stream the model's answer to the latest user message."""
    return stream_text(model=MODEL, messages=ctx.messages[-1:], abort_signal=ctx.signal)


#: Stays warm (holding its worker slot) for an hour between messages.
warm = chat.task(
    id="bench-warm", run=answer, warm_timeout_in_seconds=3600, turn_timeout="1h", max_turns=10000
)

#: Suspends the moment a turn ends (slot freed); the next message resumes it.
suspend = chat.task(
    id="bench-suspend", run=answer, warm_timeout_in_seconds=0, turn_timeout="1h", max_turns=10000
)
