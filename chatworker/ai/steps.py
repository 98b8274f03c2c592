"""Per-step records of a ``stream_text`` run (one model call each), and its finish event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FinishEvent", "StepResult", "add_usage", "empty_usage"]


def empty_usage() -> dict[str, int | None]:
    """Usage with every count unknown."""
    return {"inputTokens": None, "outputTokens": None, "totalTokens": None}


def add_usage(a: dict[str, int | None], b: dict[str, int | None]) -> dict[str, int | None]:
    """Sum two usages key by key; a count stays unknown (None) only if both are unknown."""
    result: dict[str, int | None] = {}
    for key in {*a, *b}:
        x, y = a.get(key), b.get(key)
        result[key] = None if x is None and y is None else (x or 0) + (y or 0)
    return result


@dataclass
class StepResult:
    """One model call and what came of it: text, reasoning, tool calls and their results."""

    text: str = ""
    reasoning_text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``{toolCallId, toolName, input}``; ``invalid: True`` when the input failed to parse;
    ``approvalId`` when the call waits for the user's approval (it was not executed)."""
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    """``{toolCallId, toolName, output}`` (ModelMessage tool output, ``error-text`` on failure)."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "other"
    usage: dict[str, int | None] = field(default_factory=empty_usage)
    response_messages: list[dict[str, Any]] = field(default_factory=list)
    """The assistant (and tool) ModelMessages this step produced."""


@dataclass
class FinishEvent:
    """Passed to ``stream_text(on_finish=...)`` once per call, however the run ends.

    ``is_aborted`` is True when the abort signal (a stop or cancel) or the consumer closing the
    stream ended it early; then ``text`` and the steps hold what was produced until then and
    ``finish_reason`` is ``"other"``. The step fields (``text``, ``usage``, ``tool_calls``...)
    are those of the last step, as in the AI SDK.
    """

    text: str
    finish_reason: str
    usage: dict[str, int | None]
    total_usage: dict[str, int | None]
    steps: list[StepResult]
    response_messages: list[dict[str, Any]]
    error: BaseException | None = None
    is_aborted: bool = False
    reasoning_text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def response(self) -> dict[str, Any]:
        """``{"messages": response_messages}``, the AI SDK's ``response`` field."""
        return {"messages": list(self.response_messages)}
