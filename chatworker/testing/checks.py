"""Checks that a UI message chunk stream is what the strict AI SDK client accepts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..protocol.chunks import validate_chunk

__all__ = ["assert_valid_ui_stream", "collapse_deltas", "ui_stream_problems"]

_ENDINGS = ("abort",)


def ui_stream_problems(chunks: Sequence[dict[str, Any]],
                       known_tool_calls: Iterable[str] = ()) -> list[str]:
    """Every way ``chunks`` breaks the client's schema or sequence rules (empty when valid).

    ``known_tool_calls`` are the tool call ids of the message the stream continues (their
    outputs and denials may come without an input in this stream).

    Checks each chunk with ``chatworker.protocol.chunks.validate_chunk``, that no value anywhere
    is ``None``, that deltas and ends follow their start, that tool outputs follow their input,
    that text and reasoning are closed before ``finish-step``, and that nothing follows
    ``abort`` or ``finish``.
    """
    problems: list[str] = []
    open_text: set[str] = set()
    open_reasoning: set[str] = set()
    started_tools: set[str] = set()
    known_tools: set[str] = set(known_tool_calls)
    ended: str | None = None
    for index, chunk in enumerate(chunks):
        where = f"chunk {index} {chunk!r}"
        if ended is not None:
            problems.append(f"{where}: comes after {ended!r}")
        try:
            validate_chunk(chunk)
        except ValueError as exc:
            problems.append(f"{where}: schema: {exc}")
        if _has_none(chunk):
            problems.append(f"{where}: contains a null value")
        kind = chunk.get("type")
        call_id = str(chunk.get("toolCallId"))
        if kind in ("text-start", "reasoning-start"):
            (open_text if kind == "text-start" else open_reasoning).add(chunk.get("id", ""))
        elif kind in ("text-delta", "text-end", "reasoning-delta", "reasoning-end"):
            active = open_text if kind.startswith("text") else open_reasoning
            if chunk.get("id") not in active:
                problems.append(f"{where}: no open part with that id")
            elif kind.endswith("-end"):
                active.discard(chunk["id"])
        elif kind == "tool-input-start":
            started_tools.add(call_id)
            known_tools.add(call_id)
        elif kind == "tool-input-delta" and call_id not in started_tools:
            problems.append(f"{where}: tool-input-delta without tool-input-start")
        elif kind in ("tool-input-available", "tool-input-error"):
            known_tools.add(call_id)
        elif kind in ("tool-output-available", "tool-output-error", "tool-output-denied",
                      "tool-approval-request") and call_id not in known_tools:
            problems.append(f"{where}: output for an unknown tool call")
        elif kind == "finish-step" and (open_text or open_reasoning):
            problems.append(f"{where}: finish-step while text/reasoning parts are open")
        elif kind in ("abort", "finish"):
            ended = kind
    return problems


def assert_valid_ui_stream(chunks: Sequence[dict[str, Any]],
                           known_tool_calls: Iterable[str] = ()) -> None:
    """Raise AssertionError listing the problems of ``chunks`` (see :func:`ui_stream_problems`)."""
    problems = ui_stream_problems(chunks, known_tool_calls)
    assert not problems, "invalid UI message stream:\n" + "\n".join(problems)


_DELTAS = {"text-delta": "delta", "reasoning-delta": "delta", "tool-input-delta": "inputTextDelta"}


def collapse_deltas(chunks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``chunks`` with each run of consecutive deltas of one part joined into one delta.

    A worker merges model tokens that queue up while it is busy, so how a text is split into
    deltas depends on timing; compare collapsed streams to assert order and content exactly.
    """
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        field = _DELTAS.get(chunk.get("type", ""))
        last = out[-1] if out else None
        if field and last is not None and last.get("type") == chunk["type"] and all(
            last.get(k) == chunk.get(k) for k in ("id", "toolCallId")
        ):
            out[-1] = {**last, field: last[field] + chunk[field]}
        else:
            out.append(dict(chunk))
    return out


def _has_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_none(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_none(v) for v in value)
    return False
