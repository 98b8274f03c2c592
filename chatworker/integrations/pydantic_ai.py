"""A ``pydantic_ai.Agent`` as a chat run's reply: ``return stream(agent, run)`` in a chat task.

The conversation (``run.ui_messages``) is loaded into pydantic-ai's message history with its own
Vercel AI adapter, which takes the last user message as the new input and approval responses as
deferred tool results; the agent's events become AI SDK chunks through the adapter's own event
stream (AI SDK 6 chunks, so deferred tools needing approval become ``tool-approval-request``).
A stop (``run.signal``) cancels the agent run and its model request through a pydantic-ai
``CancellationToken``; the partial reply is kept and the stream ends with ``abort``. Errors become
an ``error`` chunk whose text comes from ``on_error`` (the task's ``ui_message_stream_options``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic_ai import CancellationToken
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.ui.vercel_ai import VercelAIAdapter, VercelAIEventStream
from pydantic_ai.ui.vercel_ai.request_types import SubmitMessage
from pydantic_ai.ui.vercel_ai.response_types import (
    AbortChunk,
    BaseChunk,
    DoneChunk,
    ErrorChunk,
    MessageMetadataChunk,
)

from ..ai.stream import default_error_text
from ..signals import AbortSignal
from .sync_chunks import sync_chunks

__all__ = ["PydanticAIStream", "stream"]

log = logging.getLogger("chatworker.integrations")

ErrorHandler = Callable[[BaseException], str]
_SDK_VERSION: Literal[6] = 6  # AI SDK 6 chunks: tool approval requests are streamed


def stream(agent: AbstractAgent[Any, Any], run: Any, **options: Any) -> PydanticAIStream:
    """The reply of ``agent`` to the conversation of ``run`` (a chat run's context).

    ``options`` go to the agent run (``deps``, ``model``, ``model_settings``, ``usage_limits``,
    ``instructions``, ``toolsets`` …: the keyword arguments of pydantic-ai's
    ``VercelAIAdapter.run_stream``). The result is a chunk source: return it from the run
    function, or pass it to ``chat.pipe`` / ``turn.complete`` / ``chat.pipe_and_capture``.
    """
    messages = [_as_dict(message) for message in run.ui_messages]
    chat_id = getattr(run, "chat_id", None) or "chat"
    return PydanticAIStream(agent, chat_id, messages, getattr(run, "signal", None), options)


class PydanticAIStream:
    """An agent run as AI SDK UI message chunks (``to_ui_message_stream``), read once."""

    def __init__(self, agent: AbstractAgent[Any, Any], chat_id: str,
                 messages: list[dict[str, Any]], signal: AbortSignal | None,
                 run_options: dict[str, Any]) -> None:
        self.agent = agent
        self.chat_id = chat_id
        self.messages = messages
        self.signal = signal
        self.run_options = run_options
        self._token: CancellationToken | None = None

    def to_ui_message_stream(
        self,
        message_id: str | None = None,
        *,
        on_error: ErrorHandler | None = None,
        send_reasoning: bool = True,
        send_sources: bool = False,
        send_start: bool = True,
        send_finish: bool = True,
        **_unsupported: Any,
    ) -> Iterator[dict[str, Any]]:
        """The chunks, streamed as the agent produces them (on the run's loop, or a loop of their
        own when async code pipes them)."""
        chunks = self._sync_chunks(self._chunks(message_id, on_error))
        try:
            for chunk in chunks:
                kind = chunk["type"]
                if kind == "start" and not send_start:
                    continue
                if kind == "finish" and not send_finish:
                    continue
                if kind.startswith("reasoning-") and not send_reasoning:
                    continue
                if kind.startswith("source-") and not send_sources:
                    continue
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _sync_chunks(self, chunks: AsyncGenerator[dict[str, Any], None]
                     ) -> Iterator[dict[str, Any]]:
        return sync_chunks(chunks, self._stop)

    def _stop(self) -> None:
        if self._token is not None:
            _cancel(self._token)

    async def _chunks(self, message_id: str | None,
                      on_error: ErrorHandler | None) -> AsyncGenerator[dict[str, Any], None]:
        adapter = VercelAIAdapter(
            agent=self.agent,
            run_input=SubmitMessage.model_validate({"id": self.chat_id,
                                                    "messages": self.messages}),
            sdk_version=_SDK_VERSION,
        )
        events = _EventStream(
            adapter.run_input,
            sdk_version=_SDK_VERSION,
            server_message_id=message_id,
            manage_system_prompt=adapter.manage_system_prompt,
            error_text=on_error,
        )
        token = self._token = CancellationToken()
        remove = (self.signal.add_listener(lambda _reason: _cancel(token))
                  if self.signal is not None else None)
        if self.signal is not None and self.signal.aborted:
            _cancel(token)
        ending: dict[str, Any] | None = None
        source: AsyncIterator[BaseChunk] = events.transform_stream(
            adapter.run_stream_native(cancellation_token=token, **self.run_options),
            on_complete=_usage_metadata,
        )
        try:
            async for event in source:
                if isinstance(event, DoneChunk):
                    continue
                chunk = json.loads(event.encode(_SDK_VERSION))
                if isinstance(event, AbortChunk):
                    ending = chunk  # nothing may follow an abort: it goes last
                    continue
                yield chunk
        finally:
            if remove is not None:
                remove()
            await _aclose(source)
        if ending is not None:
            yield ending


@dataclass
class _EventStream(VercelAIEventStream[Any, Any]):  # type: ignore[misc, unused-ignore]
    """pydantic-ai's Vercel AI event stream, with the error text chatworker's ``on_error`` gives."""

    error_text: ErrorHandler | None = None

    async def on_error(self, error: Exception) -> AsyncIterator[BaseChunk]:
        log.error("the pydantic-ai agent run failed: %s", error, exc_info=error)
        async for chunk in super().on_error(error):
            if isinstance(chunk, ErrorChunk):
                chunk = ErrorChunk(error_text=_error_text(self.error_text, error))
            yield chunk


def _error_text(on_error: ErrorHandler | None, error: BaseException) -> str:
    if on_error is None:
        return default_error_text(error)
    try:
        text = on_error(error)
    except Exception:
        log.exception("on_error callback failed")
        return default_error_text(error)
    return text if isinstance(text, str) else str(text)


async def _usage_metadata(result: Any) -> AsyncIterator[BaseChunk]:
    """The run's token usage in the message metadata (``metadata.usage``), AI SDK style."""
    usage = result.usage
    yield MessageMetadataChunk(message_metadata={"usage": {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    }})


async def _aclose(source: AsyncIterator[Any]) -> None:
    closer = getattr(source, "aclose", None)
    if closer is not None:
        await closer()


def _cancel(token: CancellationToken) -> None:
    try:
        token.cancel()
    except Exception:
        log.exception("cancelling the agent run failed")


def _as_dict(message: Any) -> dict[str, Any]:
    if isinstance(message, dict):
        return message
    dumped: dict[str, Any] = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped
