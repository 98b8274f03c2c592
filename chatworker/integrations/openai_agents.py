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
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..protocol.messages import (
    DynamicToolUIPart,
    FileUIPart,
    TextUIPart,
    ToolUIPart,
    UIMessage,
    parse_ui_message,
)
from ..signals import AbortSignal

if TYPE_CHECKING:
    from agents import Agent, TResponseInputItem

__all__ = ["DENIED_OUTPUT", "stream", "to_input_items"]

log = logging.getLogger("chatworker.integrations")

DENIED_OUTPUT = "Tool execution denied."
"""What the model is told a denied tool call returned (when the user gave no reason)."""

ErrorHandler = Callable[[BaseException], str]


def _default_error_text(error: BaseException) -> str:
    return "The agent run failed."


# ---------------------------------------------------------------- history


def _tool_name(part: ToolUIPart | DynamicToolUIPart) -> str:
    if isinstance(part, DynamicToolUIPart):
        return part.tool_name
    return part.type.removeprefix("tool-")


def _output_text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output)


def _user_content(message: UIMessage) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextUIPart):
            content.append({"type": "input_text", "text": part.text})
        elif isinstance(part, FileUIPart):
            if part.media_type.startswith("image/"):
                content.append({"type": "input_image", "image_url": part.url, "detail": "auto"})
            else:
                item: dict[str, Any] = {"type": "input_file"}
                if part.url.startswith("data:"):
                    item["file_data"] = part.url
                else:
                    item["file_url"] = part.url
                if part.filename:
                    item["filename"] = part.filename
                content.append(item)
    return content


def _tool_items(part: ToolUIPart | DynamicToolUIPart,
                results: dict[str, str]) -> list[dict[str, Any]]:
    """The function call of a tool part and its result; a call without one is left out (the
    model API refuses a call without its result)."""
    call = {"type": "function_call", "call_id": part.tool_call_id, "name": _tool_name(part),
            "arguments": json.dumps(part.input if part.input is not None else {})}
    if part.state == "output-available":
        output = _output_text(part.output)
    elif part.state == "output-error":
        output = part.error_text or "The tool failed."
    elif part.state == "output-denied" or (
        part.state == "approval-responded" and part.approval
        and part.approval.get("approved") is False
    ):
        reason = (part.approval or {}).get("reason")
        output = reason if isinstance(reason, str) and reason else DENIED_OUTPUT
    elif part.tool_call_id in results:
        output = results[part.tool_call_id]
    else:
        return []
    return [call, {"type": "function_call_output", "call_id": part.tool_call_id,
                   "output": output}]


def to_input_items(messages: Sequence[UIMessage | dict[str, Any]],
                   results: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """UI messages as the Agents SDK's input items (Responses API shapes), in order.

    User text and files (images as ``input_image``, other files as ``input_file``), system
    text, assistant text, and each tool call with its result (an error's text, or the denial)
    are kept; reasoning, sources and data parts are not (see docs/integrations.md).
    ``results`` gives the output of calls whose part has none yet (approved calls just run).
    """
    results = results or {}
    items: list[dict[str, Any]] = []
    for raw in messages:
        message = parse_ui_message(raw)
        if message.role == "system":
            if message.text:
                items.append({"role": "system", "content": message.text})
        elif message.role == "user":
            content = _user_content(message)
            if content:
                items.append({"role": "user", "content": content})
        else:
            text: list[str] = []

            def flush(text: list[str] = text) -> None:
                if text:
                    items.append({"role": "assistant", "content": "".join(text)})
                    text.clear()

            for part in message.parts:
                if isinstance(part, TextUIPart):
                    text.append(part.text)
                elif isinstance(part, ToolUIPart | DynamicToolUIPart):
                    flush()
                    items.extend(_tool_items(part, results))
            flush()
    return items


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
        call_id, name = part.tool_call_id, _tool_name(part)
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
        results[call_id] = _output_text(_json_ready(output))
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
    send_reasoning: bool = True,
    signal: AbortSignal | None = None,
    **runner_options: Any,
) -> AsyncIterator[dict[str, Any]]:
    """Run ``agent`` on the turn's conversation and yield its reply as UI message chunks.

    ``run`` is the turn's context (``run.ui_messages``, ``run.signal``; ``signal`` overrides
    the latter). ``on_error(exc)`` gives the ``errorText`` of the error chunk (default: a
    generic message; details go to the ``chatworker.integrations`` log).  Other keyword arguments go
    to ``Runner.run_streamed`` (``context``, ``max_turns``, ``run_config``, ``hooks``...). The
    usage of the whole run rides on ``finish`` as ``messageMetadata.usage``.
    """
    return _stream(agent, run, on_error, send_reasoning, signal, runner_options)


async def _stream(
    agent: Agent[Any],
    run: Any,
    on_error: ErrorHandler | None,
    send_reasoning: bool,
    signal: AbortSignal | None,
    runner_options: dict[str, Any],
) -> AsyncIterator[dict[str, Any]]:
    try:
        from agents import Runner
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("chatworker.integrations.openai_agents needs the OpenAI Agents SDK: "
                          "pip install 'chatworker[openai-agents]'") from exc

    signal = signal if signal is not None else run.signal
    messages = [parse_ui_message(m) for m in run.ui_messages]
    chunks = _Chunks(send_reasoning)
    yield {"type": "start"}
    if signal.aborted:
        yield _abort_chunk(signal.reason)
        return
    unlisten: Callable[[], None] | None = None
    result: Any = None
    try:
        last = messages[-1] if messages and messages[-1].role == "assistant" else None
        results, answered = await _answered_calls(agent, last,
                                                  runner_options.get("context"))
        for chunk in answered:
            yield chunk
        items = cast("list[TResponseInputItem]", to_input_items(messages, results))
        result = Runner.run_streamed(agent, items, **runner_options)
        unlisten = _cancel_on(signal, result)
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
        yield {"type": "error",
               "errorText": (on_error or _default_error_text)(exc)}
        yield {"type": "finish", "finishReason": "error"}
    finally:
        if unlisten is not None:
            unlisten()
        if result is not None and not result.is_complete:
            result.cancel()
