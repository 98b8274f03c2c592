"""A compiled LangGraph graph inside a chat turn: ``return stream(graph, run)``.

The graph takes and returns ``messages`` (what ``langgraph.prebuilt.create_react_agent``
builds). :func:`stream` gives it the conversation as LangChain messages and turns what the graph
streams (``stream_mode=["messages", "updates"]``) into AI SDK UI message chunks: text, reasoning,
tool input streamed from the model's tool call chunks, tool outputs and errors, one step per
model call, the token usage in the message metadata and a complete ``start … finish``. A stop
(``run.signal``) cancels the graph run and its model request at once; an error becomes an
``error`` chunk. A tool wrapped with :func:`require_approval` asks the user first, through the
AI SDK tool approval chunks; the answer is acted on at the next turn. Needs
``pip install 'chatworker[langgraph]'``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from chatworker.ai import default_error_text
from chatworker.protocol.messages import UIMessage, parse_ui_message
from chatworker.signals import AbortSignal

try:
    from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
    from langchain_core.runnables import RunnableConfig

    from .langgraph_approvals import (
        answer_approvals,
        approval_call,
        require_approval,
        with_results,
    )
    from .langgraph_history import to_langchain_messages
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "chatworker.integrations.langgraph needs LangGraph: pip install 'chatworker[langgraph]'"
    ) from exc

__all__ = ["require_approval", "stream", "to_langchain_messages"]

log = logging.getLogger("chatworker.integrations")

ErrorHandler = Callable[[BaseException], str]


class TurnContext(Protocol):
    """What :func:`stream` reads from ``run``: the conversation and the turn's stop signal."""

    @property
    def ui_messages(self) -> Sequence[UIMessage]: ...

    @property
    def signal(self) -> AbortSignal: ...


# ------------------------------------------------------------------ events → UI chunks

_FINISH_REASONS = {"stop": "stop", "tool_calls": "tool-calls", "length": "length",
                   "content_filter": "content-filter", "function_call": "tool-calls"}


class _Chunks:
    """The UI chunks of one graph run, from its streamed ``messages`` and ``updates``."""

    def __init__(self, send_reasoning: bool) -> None:
        self.send_reasoning = send_reasoning
        self.model_id: str | None = None  # the AI message being streamed (one model call)
        self.step_open = False
        self.text_id: str | None = None
        self.reasoning_id: str | None = None
        self.calls: dict[int, str] = {}  # tool call chunk index → tool call id, this call
        self.names: dict[str, str] = {}  # tool call id → tool name
        self.inputs_done: set[str] = set()
        self.outputs_done: set[str] = set()
        self.finished_models: set[str] = set()
        self.usage: dict[str, int] = {}
        self.finish_reason = "stop"

    # parts

    def close_parts(self) -> list[dict[str, Any]]:
        out = []
        if self.reasoning_id is not None:
            out.append({"type": "reasoning-end", "id": self.reasoning_id})
            self.reasoning_id = None
        if self.text_id is not None:
            out.append({"type": "text-end", "id": self.text_id})
            self.text_id = None
        return out

    def end_step(self) -> list[dict[str, Any]]:
        out = self.close_parts()
        if self.step_open:
            out.append({"type": "finish-step"})
            self.step_open = False
        return out

    def begin_model(self, message_id: str | None) -> list[dict[str, Any]]:
        out = self.end_step()
        out.append({"type": "start-step"})
        self.step_open = True
        self.model_id = message_id
        self.calls = {}
        return out

    def text(self, delta: str) -> list[dict[str, Any]]:
        out = []
        if self.reasoning_id is not None:
            out.append({"type": "reasoning-end", "id": self.reasoning_id})
            self.reasoning_id = None
        if self.text_id is None:
            self.text_id = uuid.uuid4().hex
            out.append({"type": "text-start", "id": self.text_id})
        out.append({"type": "text-delta", "id": self.text_id, "delta": delta})
        return out

    def reasoning(self, delta: str) -> list[dict[str, Any]]:
        if not self.send_reasoning:
            return []
        out = []
        if self.text_id is not None:
            out.append({"type": "text-end", "id": self.text_id})
            self.text_id = None
        if self.reasoning_id is None:
            self.reasoning_id = uuid.uuid4().hex
            out.append({"type": "reasoning-start", "id": self.reasoning_id})
        out.append({"type": "reasoning-delta", "id": self.reasoning_id, "delta": delta})
        return out

    # model output

    def model_chunk(self, message: AIMessage) -> list[dict[str, Any]]:
        """A streamed piece of a model's reply (or a whole reply a node returned)."""
        out = []
        if message.id is None or message.id != self.model_id or not self.step_open:
            out += self.begin_model(message.id)
        for standard in message.content_blocks:
            block: dict[str, Any] = dict(standard)
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                out += self.text(str(block["text"]))
            elif kind == "reasoning" and block.get("reasoning"):
                out += self.reasoning(str(block["reasoning"]))
        chunks = message.tool_call_chunks if isinstance(message, AIMessageChunk) else [
            {"index": i, "id": c["id"], "name": c["name"], "args": json.dumps(c["args"])}
            for i, c in enumerate(message.tool_calls)
        ]
        for piece in chunks:
            out += self.tool_input(piece)
        if message.usage_metadata:
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                self.usage[key] = self.usage.get(key, 0) + int(message.usage_metadata[key])
        reason = message.response_metadata.get("finish_reason")
        if isinstance(reason, str):
            self.finish_reason = _FINISH_REASONS.get(reason, "other")
        return out

    def tool_input(self, piece: Any) -> list[dict[str, Any]]:
        index = piece.get("index")
        index = len(self.calls) if index is None else int(index)
        call_id = self.calls.get(index)
        out = []
        if call_id is None:
            if not piece.get("id"):
                return []  # arguments before the call's id: not expected from any provider
            call_id = str(piece["id"])
            self.calls[index] = call_id
            self.names[call_id] = str(piece.get("name") or "")
            out += self.close_parts()
            out.append({"type": "tool-input-start", "toolCallId": call_id,
                        "toolName": self.names[call_id]})
        if piece.get("args"):
            out.append({"type": "tool-input-delta", "toolCallId": call_id,
                        "inputTextDelta": str(piece["args"])})
        return out

    def model_done(self, message: AIMessage) -> list[dict[str, Any]]:
        """The model call's whole reply (from ``updates``): its tool calls' inputs are known."""
        out = []
        if message.id is None or message.id not in self.finished_models:
            if message.id != self.model_id:  # a reply no model streamed: send it whole
                out += self.model_chunk(message)
            if message.id is not None:
                self.finished_models.add(message.id)
        out += self.close_parts()
        for call in message.tool_calls:
            call_id = call["id"] or ""
            if call_id in self.inputs_done:
                continue
            self.inputs_done.add(call_id)
            self.names[call_id] = call["name"]
            out.append({"type": "tool-input-available", "toolCallId": call_id,
                        "toolName": call["name"], "input": call["args"]})
        for bad in message.invalid_tool_calls:
            call_id = bad.get("id") or ""
            if call_id in self.inputs_done:
                continue
            self.inputs_done.add(call_id)
            out.append({"type": "tool-input-error", "toolCallId": call_id,
                        "toolName": bad.get("name") or self.names.get(call_id, ""),
                        "input": bad.get("args") or "",
                        "errorText": bad.get("error") or "The tool input is not valid JSON."})
        return out

    def tool_output(self, message: ToolMessage) -> list[dict[str, Any]]:
        call_id = message.tool_call_id
        if call_id in self.outputs_done:
            return []
        self.outputs_done.add(call_id)
        out = self.close_parts()
        if call_id not in self.inputs_done:  # a result for a call this stream did not show
            self.inputs_done.add(call_id)
            out.append({"type": "tool-input-available", "toolCallId": call_id,
                        "toolName": message.name or self.names.get(call_id, ""), "input": {}})
        if message.status == "error":
            out.append({"type": "tool-output-error", "toolCallId": call_id,
                        "errorText": message.text or "The tool failed."})
        else:
            output = message.content if isinstance(message.content, str) else message.text
            out.append({"type": "tool-output-available", "toolCallId": call_id,
                        "output": output})
        return out

    def failed(self, error_text: str) -> list[dict[str, Any]]:
        """The graph failed: tool calls left without a result fail with it, the step ends."""
        out = self.close_parts()
        for call_id in sorted(self.inputs_done - self.outputs_done):
            self.outputs_done.add(call_id)
            out.append({"type": "tool-output-error", "toolCallId": call_id,
                        "errorText": error_text})
        return out + self.end_step()

    # stream events

    def event(self, mode: str, data: Any) -> list[dict[str, Any]]:
        if mode == "messages":
            message = data[0] if isinstance(data, tuple) else data
            if isinstance(message, AIMessage):
                return self.model_chunk(message)
            if isinstance(message, ToolMessage):
                return self.tool_output(message)
            return []
        if mode == "updates" and isinstance(data, dict):
            out = []
            for node, update in data.items():
                if node == "__interrupt__":
                    out += self.interrupted(update)
                    continue
                messages = update.get("messages") if isinstance(update, dict) else None
                for message in messages or []:
                    if isinstance(message, AIMessage):
                        out += self.model_done(message)
                    elif isinstance(message, ToolMessage):
                        out += self.tool_output(message)
            return out
        return []

    def interrupted(self, interrupts: Any) -> list[dict[str, Any]]:
        """The graph paused for a human (``interrupt()``): the turn ends here. A tool of
        :func:`require_approval` asks with a ``tool-approval-request``; any other interrupt's
        value is sent as a ``data-langgraph-interrupt`` part."""
        self.finish_reason = "other"
        out = self.close_parts()
        for item in interrupts or ():
            value = getattr(item, "value", item)
            call = approval_call(value)
            if call is not None:
                out += self.approval_request(call)
                continue
            out.append({"type": "data-langgraph-interrupt",
                        "id": str(getattr(item, "id", "") or uuid.uuid4().hex),
                        "data": value if _is_json(value) else str(value)})
        return out

    def approval_request(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        """A ``tool-approval-request`` (its id is the call's id) for a call waiting to run."""
        call_id = str(call["toolCallId"])
        self.finish_reason = "tool-calls"
        self.outputs_done.add(call_id)  # it has no output this turn, and that is no failure
        out = []
        if call_id not in self.inputs_done:  # a call this stream did not show
            self.inputs_done.add(call_id)
            data = call.get("input")
            out.append({"type": "tool-input-available", "toolCallId": call_id,
                        "toolName": str(call.get("toolName") or self.names.get(call_id, "")),
                        "input": data if _is_json(data) else str(data)})
        out.append({"type": "tool-approval-request", "approvalId": call_id,
                    "toolCallId": call_id})
        return out

    def finish(self, send_usage: bool) -> list[dict[str, Any]]:
        out = self.end_step()
        finish: dict[str, Any] = {"type": "finish", "finishReason": self.finish_reason}
        if send_usage and self.usage:
            finish["messageMetadata"] = {"usage": {
                "inputTokens": self.usage["input_tokens"],
                "outputTokens": self.usage["output_tokens"],
                "totalTokens": self.usage["total_tokens"],
            }}
        out.append(finish)
        return out


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# ------------------------------------------------------------------ the stream


def stream(
    graph: Any,
    run: TurnContext,
    *,
    config: RunnableConfig | None = None,
    on_error: ErrorHandler | None = None,
    send_reasoning: bool = True,
    send_usage: bool = True,
) -> AsyncIterator[dict[str, Any]]:
    """Run ``graph`` on the conversation of ``run`` and stream its reply as UI message chunks.

    ``graph`` is a compiled LangGraph graph whose state has ``messages``; it gets the whole
    conversation (``run.ui_messages`` as LangChain messages, the last user message last).
    ``config`` is passed to the graph run (e.g. ``{"recursion_limit": 10}``); ``on_error``
    turns an error into the text of the ``error`` chunk (the default says no more than "The
    model request failed."); ``send_usage`` puts the token usage, summed over the model calls,
    in the ``finish`` chunk's message metadata (``{"usage": {inputTokens, outputTokens,
    totalTokens}}``). Return the result from a chat task or pass it to ``chat.pipe``.
    """
    messages = [parse_ui_message(m) for m in run.ui_messages]
    return _run(graph, messages, run.signal, config, on_error, send_reasoning, send_usage)


async def _run(graph: Any, messages: list[UIMessage], signal: AbortSignal,
               config: RunnableConfig | None, on_error: ErrorHandler | None,
               send_reasoning: bool, send_usage: bool) -> AsyncIterator[dict[str, Any]]:
    chunks = _Chunks(send_reasoning)
    yield {"type": "start"}
    if signal.aborted:
        yield _abort(signal)
        return
    # The answers to approval requests of the last turn (the assistant message sent back) are
    # acted on first: approved calls run, and the graph sees their results or the denials.
    last = messages[-1] if messages and messages[-1].role == "assistant" else None
    results, answered = await answer_approvals(graph, last, config)
    for chunk in answered:
        yield chunk
    if signal.aborted:
        yield _abort(signal)
        return
    state = {"messages": with_results(to_langchain_messages(messages), results)}
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    remove = signal.add_listener(lambda _reason: loop.call_soon_threadsafe(stopped.set))
    events = graph.astream(state, config, stream_mode=["messages", "updates"]).__aiter__()
    stop_wait = asyncio.ensure_future(stopped.wait())
    try:
        while True:
            step = asyncio.ensure_future(events.__anext__())
            await asyncio.wait({step, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():  # stopped: cancel the graph run and its model request now
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                for chunk in chunks.close_parts():
                    yield chunk
                yield _abort(signal)
                return
            try:
                mode, data = step.result()
            except StopAsyncIteration:
                break
            except Exception as error:
                log.exception("the LangGraph graph failed%s", _hint(error))
                text = _error_text(on_error, error)
                for chunk in chunks.failed(text):
                    yield chunk
                yield {"type": "error", "errorText": text}
                yield {"type": "finish", "finishReason": "error"}
                return
            for chunk in chunks.event(mode, data):
                yield chunk
        for chunk in chunks.finish(send_usage):
            yield chunk
    finally:
        remove()
        stop_wait.cancel()
        closer = getattr(events, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                log.debug("closing the LangGraph stream failed", exc_info=True)


def _hint(error: BaseException) -> str:
    """What to do about the failure a model shared by several runs hits."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RuntimeError) and "Event loop is closed" in str(seen):
            return (" (its model reused an HTTP connection of an earlier run's event loop: give"
                    " the model an HTTP client of its own per run, e.g. ChatOpenAI("
                    "http_async_client=openai.DefaultAsyncHttpxClient()))")
        seen = seen.__cause__ or seen.__context__
    return ""


def _abort(signal: AbortSignal) -> dict[str, Any]:
    reason = signal.reason
    return {"type": "abort", "reason": reason} if isinstance(reason, str) else {"type": "abort"}


def _error_text(on_error: ErrorHandler | None, error: BaseException) -> str:
    if on_error is None:
        return default_error_text(error)
    try:
        text = on_error(error)
    except Exception:
        log.exception("on_error callback failed")
        return default_error_text(error)
    return text if isinstance(text, str) else str(text)
