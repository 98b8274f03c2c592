"""Chat tasks of the fault tests (loaded with ``CHATWORKER_TASKS=tests.tasks,tests.fault_tasks``).

Model handles are made per turn, so ``OPENAI_BASE_URL`` is read when the turn runs: the scripted
model server of the test session.
"""

from __future__ import annotations

from typing import Any

from chatworker import chat
from chatworker.ai import openai, stream_text

from .tasks import _hooks

#: Seconds the impatient model client waits for a byte before giving up (connect and read).
IMPATIENT_TIMEOUT = 1.0


@chat.task(id="llm-impatient", warm_timeout_in_seconds=0.5, turn_timeout="60s")
def llm_impatient(ctx: Any) -> Any:
    """No retries and a 1 s client timeout; suspends half a second after each turn, so every
    failed turn is also checkpointed and resumed."""
    model = openai("scripted", max_retries=0, timeout=IMPATIENT_TIMEOUT)
    return stream_text(model=model, messages=ctx.messages, abort_signal=ctx.signal)


_hooks(llm_impatient)


@chat.task(id="llm-retrying", warm_timeout_in_seconds=5)
def llm_retrying(ctx: Any) -> Any:
    """The openai client's own retries (2) absorb a transient 429 or 500."""
    model = openai("scripted", max_retries=2, timeout=5)
    return stream_text(
        model=model,
        messages=ctx.messages,
        abort_signal=ctx.signal,
    )


_hooks(llm_retrying)


def friendly(exc: BaseException) -> str:
    return f"model trouble: {type(exc).__name__}"


@chat.task(id="llm-friendly-errors", warm_timeout_in_seconds=5,
           ui_message_stream_options={"on_error": friendly})
def llm_friendly_errors(ctx: Any) -> Any:
    """``on_error`` turns the exception into the text the user sees."""
    model = openai("scripted", max_retries=0, timeout=IMPATIENT_TIMEOUT)
    return stream_text(model=model, messages=ctx.messages, abort_signal=ctx.signal)


_hooks(llm_friendly_errors)


@chat.task(id="fuzz-target", warm_timeout_in_seconds=1, turn_timeout="30s")
def fuzz_target(ctx: Any) -> Any:
    """Answers any payload the gateway accepted with a short, bounded reply (the fuzz test
    triggers it with arbitrary valid payloads and sends it arbitrary valid messages)."""
    last = ctx.ui_messages[-1] if ctx.ui_messages else None
    parts = len(last.parts) if last is not None else 0
    return [
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": f"ok: {len(ctx.ui_messages)} messages, "
                                                   f"{parts} parts (turn {ctx.turn})"},
        {"type": "text-end", "id": "t"},
    ]
