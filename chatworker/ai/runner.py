"""The ``stream_text`` loop: model call, tool calls, tool execution, next step.

It yields UI-message-chunk-shaped parts; error-carrying parts hold the exception under
``"error"`` so that each UI stream can render it with its own ``on_error``. It never raises.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatworker import tracing
from chatworker.loops import run_sync
from chatworker.signals import AbortSignal

from .approvals import answer_approvals, current_tool_journal, execute_call, new_approval_id
from .call import OPENED, ModelCall
from .providers import LanguageModel
from .steering import SteeringSource, StepSteering
from .steps import FinishEvent, StepResult, add_usage, empty_usage
from .tools import (
    InvalidToolInputError,
    NoSuchToolError,
    StopCondition,
    Tool,
    ToolCallOptions,
    parse_tool_input,
)
from .wire import (
    map_finish_reason,
    map_usage,
    model_message_dict,
    to_openai_messages,
    to_openai_tools,
)

__all__ = ["Runner"]

log = logging.getLogger("chatworker.ai")

Part = dict[str, Any]

_MERGE_MAX_CHARS = 4096
"""A merged delta stops growing once its text is this long, so a backlog streams in steps."""
_TEXT_KEYS = ("content", "reasoning_content", "reasoning")


@dataclass
class _PendingCall:
    tool_call_id: str
    tool_name: str
    arguments: str = ""


class _StepState:
    """What one model call has produced so far."""

    def __init__(self) -> None:
        self.result = StepResult()
        self.content: list[dict[str, Any]] = []
        self.text_id: str | None = None
        self.reasoning_id: str | None = None
        self.calls: dict[int, _PendingCall] = {}
        self.raw_finish: str | None = None


class Runner:
    """Runs the step loop once; results are read from its attributes when it is done."""

    def __init__(
        self,
        *,
        model: LanguageModel,
        system: str | None,
        messages: Sequence[Any],
        tools: Mapping[str, Tool] | None,
        stop_conditions: list[StopCondition],
        abort_signal: AbortSignal | None,
        settings: dict[str, Any],
        on_finish: Callable[[FinishEvent], Any] | None,
        steering: SteeringSource | None = None,
    ) -> None:
        self.model = model
        self.system = system
        self.input_messages = list(messages)
        self.tools = dict(tools or {})
        self.stop_conditions = stop_conditions
        self.signal = abort_signal
        self.settings = settings
        self.on_finish = on_finish
        self.steering = StepSteering(steering, self._is_aborted)
        self.steps: list[StepResult] = []
        self.response_messages: list[dict[str, Any]] = []
        self.finish_reason = "other"
        self.aborted = False
        self.ended = False  # a finish or abort part was produced
        self.error: BaseException | None = None
        self._finish_called = False
        self.finishing = False  # on_finish is running: the run has nothing more to give
        self._ids = 0
        self._source_urls: set[str] = set()
        self.journal = current_tool_journal.get()  # the run's record of executed tool calls

    # ---------------------------------------------------------------- the loop

    def run(self) -> Generator[Part, None, None]:
        """Yield the parts of the whole run: start, steps, then finish or abort.

        ``on_finish`` is called exactly once, however the run ends: finished, failed, aborted
        by its signal, or cut short by its consumer closing this generator (an abort too). It
        runs in the consumer's thread and context, so ``chat.is_stopped()`` works inside it.
        """
        try:
            yield {"type": "start"}
            yield from self._answer_approvals()
            if self._is_aborted():
                yield from self._abort(_StepState())
                return
            while (yield from self._step()):
                pass
        except Exception as exc:  # a bug in this module must still end the turn cleanly
            log.exception("stream_text failed unexpectedly")
            self.error = exc
            self.finish_reason = "error"
            self.ended = True
            yield {"type": "error", "error": exc}
            yield {"type": "finish", "finishReason": "error"}
        finally:
            if not self.ended:  # the consumer stopped reading before the end: aborted
                self.aborted = True
            self._call_on_finish()

    def _answer_approvals(self) -> Generator[Part, None, None]:
        """Before the first model call: act on the user's approval answers (see approvals.py)."""
        messages = [model_message_dict(m) for m in self.input_messages]
        results = yield from answer_approvals(messages, self.tools, self.journal, self.signal)
        if results:
            content = [{"type": "tool-result", **result} for result in results]
            self.response_messages.append({"role": "tool", "content": content})

    def _step(self) -> Generator[Part, None, bool]:
        state = _StepState()
        try:
            return (yield from self._run_step(state))
        except GeneratorExit:  # the consumer stopped reading: keep what this step produced
            if not any(step is state.result for step in self.steps):
                self._end_step(state, "other")
            raise

    def _run_step(self, state: _StepState) -> Generator[Part, None, bool]:
        started = False
        call: ModelCall | None = None
        yield from self.steering.deliver(self.response_messages)
        try:
            request = self._request()
            call = ModelCall(
                lambda: self.model.open_stream(request), self.signal, merge=_merge_deltas
            )
            span = tracing.start_span("chatworker.model_call", {
                "gen_ai.request.model": str(getattr(self.model, "model_id", "")),
                "chatworker.step": len(self.steps)})
            try:
                for item in call:
                    if item is OPENED:
                        started = True
                        yield {"type": "start-step"}
                    else:
                        yield from self._on_chunk(item, state)
            except Exception as exc:
                span.fail(exc)
                raise
            finally:
                span.end()
        except Exception as exc:
            log.error("stream_text: model request failed: %r", exc, exc_info=exc)
            yield from self._close_parts(state)
            yield {"type": "error", "error": exc}
            if started:
                yield {"type": "finish-step"}
            self.error = exc
            self._end_step(state, "error")
            yield from self._finish()
            return False
        if call.aborted or self._is_aborted():
            yield from self._abort(state)
            return False
        yield from self._close_parts(state)
        yield from self._finish_tool_calls(state)
        yield from self._execute_tools(state)
        if self._is_aborted():
            yield from self._abort(state)
            return False
        if started:
            yield {"type": "finish-step"}
        self._end_step(state, map_finish_reason(state.raw_finish))
        if self._should_continue(state.result) or self.steering.continues(
            state.result, self.steps, self.stop_conditions
        ):
            return True
        yield from self._finish()
        return False

    def _request(self) -> dict[str, Any]:
        messages = [*self.input_messages, *self.response_messages]
        request: dict[str, Any] = {
            "messages": to_openai_messages(messages, self.system),
            "tools": to_openai_tools(self.tools),
        }
        request.update(self.settings)
        return request

    def _should_continue(self, step: StepResult) -> bool:
        if not step.tool_calls or len(step.tool_results) < len(step.tool_calls):
            return False
        return not any(condition(self.steps) for condition in self.stop_conditions)

    def _is_aborted(self) -> bool:
        return self.signal is not None and self.signal.aborted

    # ---------------------------------------------------------------- model chunks

    def _on_chunk(self, chunk: Any, state: _StepState) -> Iterator[Part]:
        if not isinstance(chunk, Mapping):
            # an SDK ChatCompletionChunk (a user's model, or an openai without _iter_events)
            dump = getattr(chunk, "model_dump", None)
            if dump is None:
                return  # neither a dict nor an SDK model: nothing to read
            chunk = dump()
        usage = chunk.get("usage")
        if usage is not None:
            state.result.usage = map_usage(usage)
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                yield from self._reasoning_delta(state, reasoning)
            content = delta.get("content") or delta.get("refusal")
            if content:
                yield from self._text_delta(state, content)
            for tool_call in delta.get("tool_calls") or []:
                yield from self._tool_call_delta(state, tool_call)
            for annotation in delta.get("annotations") or []:
                yield from self._source(state, annotation)
            if choice.get("finish_reason"):
                state.raw_finish = str(choice["finish_reason"])

    def _reasoning_delta(self, state: _StepState, delta: str) -> Iterator[Part]:
        if state.reasoning_id is None:
            yield from self._close_text(state)
            state.reasoning_id = self._new_id("reasoning")
            state.content.append({"type": "reasoning", "text": ""})
            yield {"type": "reasoning-start", "id": state.reasoning_id}
        state.content[-1]["text"] += delta
        state.result.reasoning_text += delta
        yield {"type": "reasoning-delta", "id": state.reasoning_id, "delta": delta}

    def _text_delta(self, state: _StepState, delta: str) -> Iterator[Part]:
        if state.text_id is None:
            yield from self._close_reasoning(state)
            state.text_id = self._new_id("txt")
            state.content.append({"type": "text", "text": ""})
            yield {"type": "text-start", "id": state.text_id}
        state.content[-1]["text"] += delta
        state.result.text += delta
        yield {"type": "text-delta", "id": state.text_id, "delta": delta}

    def _tool_call_delta(self, state: _StepState, delta: Mapping[str, Any]) -> Iterator[Part]:
        function = delta.get("function") or {}
        fragment = function.get("arguments") or ""
        pending = state.calls.get(delta["index"])
        if pending is None:
            yield from self._close_reasoning(state)
            name = function.get("name") or ""
            call_id = delta.get("id") or f"call_{uuid.uuid4().hex[:24]}"
            pending = state.calls[delta["index"]] = _PendingCall(call_id, name)
            yield {"type": "tool-input-start", "toolCallId": call_id, "toolName": name}
        if fragment:
            pending.arguments += fragment
            yield {
                "type": "tool-input-delta",
                "toolCallId": pending.tool_call_id,
                "inputTextDelta": fragment,
            }

    def _source(self, state: _StepState, annotation: Any) -> Iterator[Part]:
        if not isinstance(annotation, Mapping) or annotation.get("type") != "url_citation":
            return
        citation = annotation.get("url_citation") or annotation
        url = citation.get("url")
        if not isinstance(url, str) or url in self._source_urls:
            return
        self._source_urls.add(url)
        part: Part = {"type": "source-url", "sourceId": self._new_id("source"), "url": url}
        if isinstance(citation.get("title"), str):
            part["title"] = citation["title"]
        state.result.sources.append({k: v for k, v in part.items() if k != "type"})
        yield part

    def _close_reasoning(self, state: _StepState) -> Iterator[Part]:
        if state.reasoning_id is not None:
            yield {"type": "reasoning-end", "id": state.reasoning_id}
            state.reasoning_id = None

    def _close_text(self, state: _StepState) -> Iterator[Part]:
        if state.text_id is not None:
            yield {"type": "text-end", "id": state.text_id}
            state.text_id = None

    def _close_parts(self, state: _StepState) -> Iterator[Part]:
        yield from self._close_reasoning(state)
        yield from self._close_text(state)

    # ---------------------------------------------------------------- tools

    def _finish_tool_calls(self, state: _StepState) -> Iterator[Part]:
        for index in sorted(state.calls):
            pending = state.calls[index]
            base = {"toolCallId": pending.tool_call_id, "toolName": pending.tool_name}
            try:
                _tool, decoded, _args = parse_tool_input(
                    self.tools, pending.tool_name, pending.arguments
                )
            except (InvalidToolInputError, NoSuchToolError) as exc:
                log.warning("stream_text: %s", exc)
                state.result.tool_calls.append(
                    {**base, "input": pending.arguments, "invalid": True}
                )
                state.result.tool_results.append(
                    {**base, "output": {"type": "error-text", "value": str(exc)}}
                )
                yield {"type": "tool-input-error", **base, "input": pending.arguments, "error": exc}
                continue
            state.result.tool_calls.append({**base, "input": decoded})
            yield {"type": "tool-input-available", **base, "input": decoded}
            if self._needs_approval(_tool, _args, pending.tool_call_id):
                approval_id = new_approval_id()
                state.result.tool_calls[-1]["approvalId"] = approval_id
                yield {"type": "tool-approval-request", "approvalId": approval_id,
                       "toolCallId": pending.tool_call_id}

    def _needs_approval(self, spec: Tool, args: Any, call_id: str) -> bool:
        """``needs_approval``'s answer; a check that fails asks for approval (the safe side)."""
        options = ToolCallOptions(call_id, self._history(), self.signal)
        try:
            return spec.requires_approval(args, options)
        except Exception:
            log.exception("stream_text: needs_approval of a tool failed; approval is required")
            return True

    def _history(self) -> list[dict[str, Any]]:
        return [model_message_dict(m) for m in self.input_messages] + self.response_messages

    def _execute_tools(self, state: _StepState) -> Iterator[Part]:
        history = self._history()
        for call in list(state.result.tool_calls):
            if call.get("invalid") or "approvalId" in call:
                continue  # calls waiting for approval run when the answer comes back
            spec = self.tools[call["toolName"]]
            if spec.execute is None:
                continue
            if self._is_aborted():
                return
            options = ToolCallOptions(call["toolCallId"], history, self.signal)
            with tracing.span("chatworker.tool", {"gen_ai.tool.name": call["toolName"],
                                          "gen_ai.tool.call.id": call["toolCallId"]}):
                result, part = execute_call(spec, call, options)
            state.result.tool_results.append(result)
            yield part

    # ---------------------------------------------------------------- endings

    def _end_step(self, state: _StepState, finish_reason: str) -> None:
        step = state.result
        step.finish_reason = finish_reason
        content: list[dict[str, Any]] = [p for p in state.content if p["text"]]
        for call in step.tool_calls:
            content.append(
                {
                    "type": "tool-call",
                    "toolCallId": call["toolCallId"],
                    "toolName": call["toolName"],
                    "input": call["input"],
                }
            )
            if "approvalId" in call:
                content.append({"type": "tool-approval-request",
                                "approvalId": call["approvalId"],
                                "toolCallId": call["toolCallId"]})
        if content:
            step.response_messages.append({"role": "assistant", "content": content})
        if step.tool_results:
            results = [{"type": "tool-result", **result} for result in step.tool_results]
            step.response_messages.append({"role": "tool", "content": results})
        self.response_messages.extend(step.response_messages)
        self.steps.append(step)
        self.finish_reason = finish_reason

    def _abort(self, state: _StepState) -> Iterator[Part]:
        self.aborted = self.ended = True
        # keep what was produced; tool calls still streaming are dropped
        self._end_step(state, "other")
        reason = self.signal.reason if self.signal is not None else None
        part: Part = {"type": "abort"}
        if isinstance(reason, str):
            part["reason"] = reason
        yield part

    def _finish(self) -> Iterator[Part]:
        self.ended = True
        yield {"type": "finish", "finishReason": self.finish_reason}

    def _call_on_finish(self) -> None:
        if self.on_finish is None or self._finish_called:
            return
        self._finish_called = self.finishing = True
        last = self.steps[-1] if self.steps else StepResult()
        total = empty_usage()
        for step in self.steps:
            total = add_usage(total, step.usage)
        event = FinishEvent(
            text=last.text,
            finish_reason=self.finish_reason,
            usage=last.usage,
            total_usage=total,
            steps=list(self.steps),
            response_messages=list(self.response_messages),
            error=self.error,
            is_aborted=self.aborted,
            reasoning_text=last.reasoning_text,
            tool_calls=list(last.tool_calls),
            tool_results=list(last.tool_results),
            sources=[source for step in self.steps for source in step.sources],
        )
        try:
            result = self.on_finish(event)
            if inspect.isawaitable(result):  # an async def callback, on the run's loop
                run_sync(result)
        except Exception:
            log.exception("stream_text: on_finish callback failed")

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids}"


def _merge_deltas(first: Any, second: Any) -> dict[str, Any] | None:
    """``first`` with ``second``'s text appended, for :class:`ModelCall` to merge queued chunks.

    None unless both are dicts with one choice (index 0) whose delta is only ``content`` or only
    the same reasoning key (plus maybe ``role``): anything else must reach the runner as sent.
    """
    first_text = _plain_text_delta(first)
    if first_text is None:
        return None
    second_text = _plain_text_delta(second)
    if second_text is None or second_text[0] != first_text[0]:
        return None
    key, text = first_text
    if len(text) >= _MERGE_MAX_CHARS:
        return None
    choice = first["choices"][0]
    delta = {**choice["delta"], key: text + second_text[1]}
    return {**first, "choices": [{**choice, "delta": delta}]}


def _plain_text_delta(chunk: Any) -> tuple[str, str] | None:
    """(key, text) of a chunk that only adds text (see :func:`_merge_deltas`), else None."""
    if type(chunk) is not dict or chunk.get("usage") is not None:
        return None
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("index", 0) != 0:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict:
        return None
    for name, value in choice.items():
        if name not in ("index", "delta") and value is not None:
            return None  # finish_reason, logprobs, anything the runner might need to see
    found: tuple[str, str] | None = None
    for name, value in delta.items():
        if value is None or name == "role":
            continue
        if name not in _TEXT_KEYS or found is not None or type(value) is not str:
            return None
        found = (name, value)
    return found
