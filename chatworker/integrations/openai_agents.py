"""An OpenAI Agents SDK agent as a chat turn: ``return stream(agent, run)`` in a chat task.

:func:`stream` converts the accumulated conversation (``run.ui_messages``) into the Agents SDK's
input items, runs the agent with ``Runner.run_streamed`` and yields AI SDK UI message chunks: a
chunk source a chat task returns or passes to ``chat.pipe``. ``run.signal`` cancels the agent's
run (and its model request) at once; errors become an ``error`` chunk. The SDK (package
``openai-agents``, the ``openai-agents`` extra) is imported only when :func:`stream` runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..ai.ui_stream import UIMessageStreamFinishEvent, UIStreamOptions, ui_message_chunks
from ..protocol.messages import (
    DynamicToolUIPart,
    ToolUIPart,
    UIMessage,
    parse_ui_message,
)
from ..signals import AbortController, AbortSignal
from .openai_agents_history import DENIED_OUTPUT, output_text, to_input_items, tool_name
from .sync_chunks import sync_chunks

if TYPE_CHECKING:
    from agents import Agent, TResponseInputItem

__all__ = ["DENIED_OUTPUT", "AgentsStream", "stream", "to_input_items"]

log = logging.getLogger("chatworker.integrations")

ErrorHandler = Callable[[BaseException], str]


def _default_error_text(error: BaseException) -> str:
    return "The agent run failed."


# ---------------------------------------------------------------- events -> chunks


def _json_ready(value: Any) -> Any:
    """``value`` as JSON data (a tool may return any object; unknown ones become strings)."""
    try:
        return json.loads(json.dumps(value, default=_fallback))
    except (TypeError, ValueError):
        return str(value)


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else str(value)


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _parse_arguments(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return _json_ready(arguments)
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments


class _Chunks:
    """Turns the Agents SDK's stream events into UI chunks, keeping the parts' open/closed state."""

    def __init__(self, send_reasoning: bool) -> None:
        self.send_reasoning = send_reasoning
        self.responses = 0
        self.step_open = False
        self.open_text: dict[int, str] = {}
        self.open_reasoning: dict[int, str] = {}
        self.calls: dict[int, str] = {}  # output index -> call id, this response
        self.started: set[str] = set()
        self.available: set[str] = set()

    def event(self, event: Any) -> list[dict[str, Any]]:
        if event.type == "raw_response_event":
            return self._raw(event.data)
        if event.type == "run_item_stream_event":
            return self._item(event.name, event.item)
        if event.type == "agent_updated_stream_event":
            return [{"type": "message-metadata",
                     "messageMetadata": {"agent": event.new_agent.name}}]
        return []

    def _raw(self, data: Any) -> list[dict[str, Any]]:
        kind = getattr(data, "type", "")
        index = getattr(data, "output_index", 0)
        if kind == "response.created":
            out = self.end_step()
            self.responses += 1
            self.calls = {}
            self.step_open = True
            return [*out, {"type": "start-step"}]
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            return self._delta(self.open_text, "text", index, data.delta)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if not self.send_reasoning:
                return []
            return self._delta(self.open_reasoning, "reasoning", index, data.delta)
        if kind == "response.output_item.added" and _field(data.item, "type") == "function_call":
            call_id = str(_field(data.item, "call_id"))
            self.calls[index] = call_id
            return self._start_call(call_id, str(_field(data.item, "name")))
        if kind == "response.function_call_arguments.delta":
            pending = self.calls.get(index)
            if pending is None or pending in self.available or not data.delta:
                return []
            return [{"type": "tool-input-delta", "toolCallId": pending,
                     "inputTextDelta": data.delta}]
        if kind == "response.output_item.done":
            return self._close(index)
        if kind == "response.completed":
            return self.close_parts()
        return []

    def _delta(self, open_parts: dict[int, str], kind: str, index: int,
               delta: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        part_id = open_parts.get(index)
        if part_id is None:
            part_id = open_parts[index] = f"{kind}-{self.responses}-{index}"
            out.append({"type": f"{kind}-start", "id": part_id})
        if delta:
            out.append({"type": f"{kind}-delta", "id": part_id, "delta": delta})
        return out

    def _close(self, index: int) -> list[dict[str, Any]]:
        out = []
        if index in self.open_text:
            out.append({"type": "text-end", "id": self.open_text.pop(index)})
        if index in self.open_reasoning:
            out.append({"type": "reasoning-end", "id": self.open_reasoning.pop(index)})
        return out

    def close_parts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for index in sorted({*self.open_text, *self.open_reasoning}):
            out.extend(self._close(index))
        return out

    def end_step(self) -> list[dict[str, Any]]:
        out = self.close_parts()
        if self.step_open:
            out.append({"type": "finish-step"})
            self.step_open = False
        return out

    def _start_call(self, call_id: str, name: str) -> list[dict[str, Any]]:
        if call_id in self.started:
            return []
        self.started.add(call_id)
        return [{"type": "tool-input-start", "toolCallId": call_id, "toolName": name}]

    def _item(self, name: str, item: Any) -> list[dict[str, Any]]:
        raw = item.raw_item
        if name in ("tool_called", "handoff_requested") and _field(raw, "call_id"):
            call_id, tool = str(_field(raw, "call_id")), str(_field(raw, "name"))
            if call_id in self.available:
                return []
            self.available.add(call_id)
            return [*self._start_call(call_id, tool),
                    {"type": "tool-input-available", "toolCallId": call_id, "toolName": tool,
                     "input": _parse_arguments(_field(raw, "arguments"))}]
        if name in ("tool_output", "handoff_occured") and _field(raw, "call_id"):
            call_id = str(_field(raw, "call_id"))
            if call_id not in self.available:
                return []
            output = getattr(item, "output", None)
            if output is None:
                output = _field(raw, "output")
            return [{"type": "tool-output-available", "toolCallId": call_id,
                     "output": _json_ready(output)}]
        return []

    def approval(self, item: Any) -> list[dict[str, Any]]:
        """A ``tool-approval-request`` for an interruption (its id is the call's id)."""
        call_id = str(_field(item.raw_item, "call_id"))
        out = self._item("tool_called", item)
        return [*out, {"type": "tool-approval-request", "approvalId": call_id,
                       "toolCallId": call_id}]


def _usage(result: Any) -> dict[str, int]:
    usage = result.context_wrapper.usage
    out = {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens,
           "totalTokens": usage.total_tokens}
    reasoning = getattr(usage.output_tokens_details, "reasoning_tokens", 0)
    cached = getattr(usage.input_tokens_details, "cached_tokens", 0)
    if reasoning:
        out["reasoningTokens"] = reasoning
    if cached:
        out["cachedInputTokens"] = cached
    return out


# ---------------------------------------------------------------- approvals answered


async def _answered_calls(agent: Agent[Any], message: UIMessage | None,
                          context: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Act on the approval answers of ``message`` (the assistant message the client sent back):
    run the approved calls, deny the others. Returns the results for the model and the chunks."""
    from agents import FunctionTool, RunContextWrapper
    from agents.tool_context import ToolContext

    parts = [p for p in (message.parts if message is not None else [])
             if isinstance(p, ToolUIPart | DynamicToolUIPart)
             and p.state == "approval-responded" and p.approval]
    if not parts:
        return {}, []
    results: dict[str, str] = {}
    denied: list[dict[str, Any]] = []
    ran: list[dict[str, Any]] = []
    tools = {t.name: t for t in await agent.get_all_tools(RunContextWrapper(context=context))
             if isinstance(t, FunctionTool)}
    for part in parts:
        call_id, name = part.tool_call_id, tool_name(part)
        if (part.approval or {}).get("approved") is not True:
            denied.append({"type": "tool-output-denied", "toolCallId": call_id})
            continue
        arguments = json.dumps(part.input if part.input is not None else {})
        tool = tools.get(name)
        try:
            if tool is None:
                raise LookupError(f"the agent has no tool {name!r}")
            output = await tool.on_invoke_tool(
                ToolContext(context=context, tool_name=name, tool_call_id=call_id,
                            tool_arguments=arguments, agent=agent), arguments)
        except Exception as exc:
            log.warning("approved tool %r failed", name, exc_info=True)
            results[call_id] = f"The tool '{name}' failed: {exc}"
            ran.append({"type": "tool-output-error", "toolCallId": call_id,
                        "errorText": f"The tool '{name}' failed."})
            continue
        results[call_id] = output_text(_json_ready(output))
        ran.append({"type": "tool-output-available", "toolCallId": call_id,
                    "output": _json_ready(output)})
    return results, denied + ran


# ---------------------------------------------------------------- the turn


def _cancel_on(signal: AbortSignal, result: Any) -> Callable[[], None]:
    """Cancel the SDK's streamed run on the running loop when ``signal`` fires (from any
    thread): its tasks and model request are cancelled and its event stream ends at once."""
    loop = asyncio.get_running_loop()

    def cancel(reason: Any) -> None:
        try:
            loop.call_soon_threadsafe(result.cancel)
        except RuntimeError:  # the loop is closed: nothing runs any more
            pass

    return signal.add_listener(cancel)


def _abort_chunk(reason: Any) -> dict[str, Any]:
    return {"type": "abort", "reason": reason} if isinstance(reason, str) else {"type": "abort"}


def stream(
    agent: Agent[Any],
    run: Any,
    *,
    on_error: ErrorHandler | None = None,
    send_reasoning: bool | None = None,
    signal: AbortSignal | None = None,
    **runner_options: Any,
) -> AgentsStream:
    """Run ``agent`` on the turn's conversation and stream its reply as UI message chunks.

    ``run`` is the turn's context (``run.ui_messages``, ``run.signal``; ``signal`` overrides
    the latter). ``on_error(exc)`` gives the ``errorText`` of the error chunk (default: a
    generic message; details go to the ``chatworker.integrations`` log). Other keyword arguments
    go to ``Runner.run_streamed`` (``context``, ``max_turns``, ``run_config``, ``hooks``...).
    The usage of the whole run rides on ``finish`` as ``messageMetadata.usage``.

    The result is a chunk source: return it from a chat task or pass it to ``chat.pipe``, where
    the task's ``ui_message_stream_options`` apply (``on_error`` and ``send_reasoning`` given
    here win over them); or read its chunks with ``async for``.
    """
    return AgentsStream(agent, run, on_error, send_reasoning, signal, runner_options)


class AgentsStream:
    """An agent run as AI SDK UI message chunks, read once: through
    :meth:`to_ui_message_stream` (what a chat task's pipe does) or with ``async for``."""

    def __init__(self, agent: Agent[Any], run: Any, on_error: ErrorHandler | None,
                 send_reasoning: bool | None, signal: AbortSignal | None,
                 runner_options: dict[str, Any]) -> None:
        self.agent = agent
        self.run = run
        self.on_error = on_error
        self.send_reasoning = send_reasoning
        self.signal: AbortSignal = signal if signal is not None else run.signal
        self.runner_options = runner_options
        self._closed = AbortController()  # the reader went away: end the agent run

    def _parts(self) -> AsyncGenerator[dict[str, Any], None]:
        return _stream(self.agent, self.run, self.signal, self._closed.signal,
                       self.runner_options)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        send_reasoning = self.send_reasoning is not False
        parts = self._parts()
        try:
            async for part in parts:
                if part["type"].startswith("reasoning-") and not send_reasoning:
                    continue
                if "error" in part:
                    part = {"type": "error",
                            "errorText": _error_text(self.on_error, part["error"])}
                yield part
        finally:
            await parts.aclose()

    def to_ui_message_stream(
        self,
        message_id: str | None = None,
        *,
        on_error: ErrorHandler | None = None,
        send_reasoning: bool = True,
        send_sources: bool = False,
        send_start: bool = True,
        send_finish: bool = True,
        message_metadata: Callable[[dict[str, Any]], Any] | None = None,
        original_messages: Sequence[UIMessage | dict[str, Any]] | None = None,
        generate_message_id: Callable[[], str] | None = None,
        on_finish: Callable[[UIMessageStreamFinishEvent], Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The chunks, with the options of a ``stream_text`` result's ``to_ui_message_stream``
        applied (``message_metadata`` is merged into the adapter's own ``agent``/``usage``)."""
        options = UIStreamOptions(
            message_id=message_id,
            send_reasoning=(self.send_reasoning if self.send_reasoning is not None
                            else send_reasoning),
            send_sources=send_sources,
            on_error=self.on_error or on_error,
            send_start=send_start,
            send_finish=send_finish,
            message_metadata=_merged(message_metadata) if message_metadata else None,
            original_messages=original_messages,
            generate_message_id=generate_message_id,
            on_finish=on_finish,
        )
        parts = sync_chunks(self._parts(), self._stop)
        close = getattr(parts, "close", None)
        return ui_message_chunks(parts, options, _default_error_text,
                                 close if close is not None else lambda: None)

    def _stop(self) -> None:
        self._closed.abort("closed")


def _merged(message_metadata: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """``message_metadata``, keeping the metadata a chunk already carries (``finish``'s usage)."""

    def metadata(part: dict[str, Any]) -> Any:
        value = message_metadata(part)
        own = part.get("messageMetadata")
        if isinstance(own, dict) and isinstance(value, dict):
            return {**own, **value}
        return own if value is None else value

    return metadata


def _error_text(on_error: ErrorHandler | None, error: BaseException) -> str:
    if on_error is None:
        return _default_error_text(error)
    try:
        text = on_error(error)
    except Exception:
        log.exception("on_error callback failed")
        return _default_error_text(error)
    return text if isinstance(text, str) else str(text)


async def _stream(
    agent: Agent[Any],
    run: Any,
    signal: AbortSignal,
    closed: AbortSignal,
    runner_options: dict[str, Any],
) -> AsyncGenerator[dict[str, Any], None]:
    """The run's chunks, reasoning included; a failure is ``{"type": "error", "error": exc}``
    (its text is the reader's to choose)."""
    try:
        from agents import Runner
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("chatworker.integrations.openai_agents needs the OpenAI Agents SDK: "
                          "pip install 'chatworker[openai-agents]'") from exc

    messages = [parse_ui_message(m) for m in run.ui_messages]
    chunks = _Chunks(send_reasoning=True)
    yield {"type": "start"}
    if signal.aborted:
        yield _abort_chunk(signal.reason)
        return
    unlisten: list[Callable[[], None]] = []
    result: Any = None
    try:
        last = messages[-1] if messages and messages[-1].role == "assistant" else None
        results, answered = await _answered_calls(agent, last,
                                                  runner_options.get("context"))
        for chunk in answered:
            yield chunk
        items = cast("list[TResponseInputItem]", to_input_items(messages, results))
        result = Runner.run_streamed(agent, items, **runner_options)
        unlisten += [_cancel_on(signal, result), _cancel_on(closed, result)]
        # One consumer in this task, as the SDK expects; a stop reaches the run through
        # result.cancel() (see _cancel_on), which also ends this loop at once.
        events = result.stream_events()
        try:
            async for event in events:
                if signal.aborted:
                    break
                for chunk in chunks.event(event):
                    yield chunk
        finally:
            await events.aclose()
        if signal.aborted:
            result.cancel()
            for chunk in chunks.end_step():
                yield chunk
            yield _abort_chunk(signal.reason)
            return
        for item in result.interruptions:
            for chunk in chunks.approval(item):
                yield chunk
        for chunk in chunks.end_step():
            yield chunk
        yield {"type": "finish",
               "finishReason": "tool-calls" if result.interruptions else "stop",
               "messageMetadata": {"agent": result.last_agent.name, "usage": _usage(result)}}
    except Exception as exc:
        if result is not None:
            result.cancel()
        log.warning("the agent run failed", exc_info=True)
        for chunk in chunks.end_step():
            yield chunk
        yield {"type": "error", "error": exc}
        yield {"type": "finish", "finishReason": "error"}
    finally:
        for remove in unlisten:
            remove()
        if result is not None and not result.is_complete:
            result.cancel()
