"""``stream_text``: the Python twin of the AI SDK's ``streamText``, over OpenAI-like models."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from chatworker.protocol.messages import UIMessage
from chatworker.signals import AbortSignal

from .approvals import drop_unanswered_requests
from .prompt import model_messages
from .providers import LanguageModel
from .runner import Runner
from .steering import SteeringSource, TurnSteering
from .steps import FinishEvent, StepResult, add_usage, empty_usage
from .tools import (
    InvalidToolInputError,
    NoSuchToolError,
    StopCondition,
    Tool,
    ToolExecutionError,
    step_count_is,
)
from .ui_stream import UIMessageStreamFinishEvent, UIStreamOptions, ui_message_chunks
from .wire import ModelMessageLike

__all__ = ["StreamTextResult", "default_error_text", "stream_text"]

log = logging.getLogger("chatworker.ai")

ErrorHandler = Callable[[BaseException], str]


def default_error_text(error: BaseException) -> str:
    """The text sent to clients for an error when no ``on_error`` is given: safe, no details."""
    if isinstance(error, ToolExecutionError):
        return f"The tool '{error.tool_name}' failed."
    if isinstance(error, NoSuchToolError):
        return f"The model called an unknown tool '{error.tool_name}'."
    if isinstance(error, InvalidToolInputError):
        return f"The model called the tool '{error.tool_name}' with invalid input."
    return "The model request failed."


def stream_text(
    *,
    model: LanguageModel,
    system: str | None = None,
    messages: Sequence[ModelMessageLike] | None = None,
    prompt: str | None = None,
    tools: Mapping[str, Tool] | None = None,
    stop_when: StopCondition | Sequence[StopCondition] | None = None,
    max_steps: int | None = None,
    abort_signal: AbortSignal | None = None,
    temperature: float | None = None,
    max_output_tokens: int | None = None,
    tool_choice: str | dict[str, Any] | None = None,
    provider_options: Mapping[str, Any] | None = None,
    on_finish: Callable[[FinishEvent], Any] | None = None,
    steering: SteeringSource | Literal[False] | None = None,
) -> StreamTextResult:
    """Stream a model answer, calling tools for up to ``max_steps`` model calls (default 1).

    ``messages`` are AI SDK ModelMessages (``{role, content}``) or UI messages
    (``{id, role, parts}``, e.g. a manual task's ``payload.messages``), which are converted as
    ``convert_to_model_messages`` does; a message the model could not read raises ``ValueError``
    naming it. ``on_finish(event)`` is called once however the run ends; ``event.is_aborted``
    tells a stop, cancel or early close apart from a finished run.

    As in the AI SDK, one step is the default even with tools: pass ``max_steps=n`` or
    ``stop_when=step_count_is(n)`` to let the model answer after its tool results. The model is
    called lazily, when the UI stream (or ``.text`` etc.) is first read. Model and tool failures
    never raise: they become ``error`` / ``tool-output-error`` chunks. ``provider_options``
    ``{"openai": {...}}`` entries are merged into the request body.

    ``steering`` (a :class:`~chatworker.ai.steering.Steering`, or any object with ``take()``)
    adds user messages to the run at its next step boundary: before the next model call of a
    tool loop, or, when the model has finished its answer, in one more step. Inside a chat turn
    the run's own source is the default (messages sent with ``whileStreaming: "steer"``);
    ``steering=False`` opts out.
    """
    history: list[ModelMessageLike] = list(model_messages(messages or []))
    if prompt is not None:
        history.append({"role": "user", "content": prompt})
    history = drop_unanswered_requests(history)
    conditions: list[StopCondition] = []
    if stop_when is not None:
        conditions.extend([stop_when] if callable(stop_when) else stop_when)
    if max_steps is not None or not conditions:
        conditions.append(step_count_is(max_steps if max_steps is not None else 1))
    options = dict(provider_options or {})
    settings = {
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
        "tool_choice": tool_choice,
        "provider_options": dict(options.get("openai") or {}),
    }
    runner = Runner(
        model=model,
        system=system,
        messages=history,
        tools=tools,
        stop_conditions=conditions,
        abort_signal=abort_signal,
        settings=settings,
        on_finish=on_finish,
        steering=TurnSteering() if steering is None else (steering or None),
    )
    return StreamTextResult(runner)


class StreamTextResult:
    """The running (lazy) result of :func:`stream_text`.

    ``to_ui_message_stream()`` is meant for one consumer; the blocking properties (``text``,
    ``finish_reason``...) work during, after or without iterating it, and drive the run to its end.
    """

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._source = runner.run()
        self._parts: list[dict[str, Any]] = []
        self._done = False
        # Re-entrant: on_finish runs inside a pull and may read the result (``.text``...).
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- streams

    def to_ui_message_stream(
        self,
        message_id: str | None = None,
        send_reasoning: bool = True,
        send_sources: bool = False,
        on_error: ErrorHandler | None = None,
        send_start: bool = True,
        send_finish: bool = True,
        message_metadata: Callable[[dict[str, Any]], Any] | None = None,
        *,
        original_messages: Sequence[UIMessage | dict[str, Any]] | None = None,
        generate_message_id: Callable[[], str] | None = None,
        on_finish: Callable[[UIMessageStreamFinishEvent], Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """AI SDK UI message chunks (JSON-ready dicts, absent optional keys omitted), in order.

        As the AI SDK's ``toUIMessageStream``: ``send_reasoning`` / ``send_sources`` /
        ``send_start`` / ``send_finish`` drop those chunks; ``on_error(exc)`` gives the
        ``errorText`` of error chunks (default: a generic message; details go to the
        ``chatworker.ai`` log); ``message_metadata(part)`` is called for every part, and a
        non-None result rides on the ``start`` / ``finish`` chunk or follows any other part as a
        ``message-metadata`` chunk. The response is ``message_id``, else the last of
        ``original_messages`` when it is an assistant message (the response continues it), else
        ``generate_message_id()``. ``on_finish(event)`` (a
        :class:`~chatworker.ai.ui_stream.UIMessageStreamFinishEvent`: ``messages``,
        ``response_message``, ``is_continuation``, ``is_aborted``, ``finish_reason``) is called
        once when the stream ends. Closing the stream before its end aborts the run.
        """
        options = UIStreamOptions(
            message_id=message_id, send_reasoning=send_reasoning, send_sources=send_sources,
            on_error=on_error, send_start=send_start, send_finish=send_finish,
            message_metadata=message_metadata, original_messages=original_messages,
            generate_message_id=generate_message_id, on_finish=on_finish,
        )
        return ui_message_chunks(self._iter_parts(), options, default_error_text, self._close)

    @property
    def text_stream(self) -> Iterator[str]:
        """The text deltas of every step, as they arrive."""
        return (p["delta"] for p in self._iter_parts() if p["type"] == "text-delta")

    def consume_stream(self) -> None:
        """Run to the end without reading the chunks."""
        for _ in self._iter_parts():
            pass

    # ---------------------------------------------------------------- results (blocking)

    @property
    def text(self) -> str:
        """The text of the last step (what the model finally said; partial if aborted)."""
        steps = self.steps
        return steps[-1].text if steps else ""

    @property
    def reasoning_text(self) -> str:
        """The reasoning text of the last step."""
        steps = self.steps
        return steps[-1].reasoning_text if steps else ""

    @property
    def finish_reason(self) -> str:
        """AI SDK finish reason: stop, length, content-filter, tool-calls, error, other (abort)."""
        self.consume_stream()
        return self._runner.finish_reason

    @property
    def usage(self) -> dict[str, int | None]:
        """Token usage of the last step: ``{inputTokens, outputTokens, totalTokens}``."""
        steps = self.steps
        return dict(steps[-1].usage) if steps else empty_usage()

    @property
    def total_usage(self) -> dict[str, int | None]:
        """Token usage summed over all steps."""
        total = empty_usage()
        for step in self.steps:
            total = add_usage(total, step.usage)
        return total

    @property
    def steps(self) -> list[StepResult]:
        """One record per model call."""
        self.consume_stream()
        return list(self._runner.steps)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls of the last step."""
        steps = self.steps
        return list(steps[-1].tool_calls) if steps else []

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The tool results of the last step."""
        steps = self.steps
        return list(steps[-1].tool_results) if steps else []

    @property
    def sources(self) -> list[dict[str, Any]]:
        """URL sources cited in all steps (``{sourceId, url, title?}``)."""
        return [source for step in self.steps for source in step.sources]

    @property
    def response_messages(self) -> list[dict[str, Any]]:
        """The assistant and tool ModelMessages produced, to append to the conversation."""
        self.consume_stream()
        return list(self._runner.response_messages)

    @property
    def aborted(self) -> bool:
        """True if the abort signal ended the run."""
        self.consume_stream()
        return self._runner.aborted

    @property
    def error(self) -> BaseException | None:
        """The model error that ended the run, if any."""
        self.consume_stream()
        return self._runner.error

    # ---------------------------------------------------------------- internals

    def _iter_parts(self) -> Iterator[dict[str, Any]]:
        index = 0
        while True:
            if index < len(self._parts):
                yield self._parts[index]
                index += 1
            elif not self._advance():
                return

    def _close(self) -> None:
        """A reader stopped early: end the run here (it counts as aborted; ``on_finish`` runs)."""
        with self._lock:
            if not self._done:
                self._done = True
                self._source.close()

    def _advance(self) -> bool:
        """Pull one more part from the run (one puller at a time); False once it is over."""
        with self._lock:
            if self._done or self._runner.finishing:  # over, or on_finish is reading it
                return False
            try:
                part = next(self._source)
            except StopIteration:
                self._done = True
                return False
            self._parts.append(part)
            return True
