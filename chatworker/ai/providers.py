"""Model handles: ``openai(model_id)`` wraps an ``openai.OpenAI`` client for streaming chat."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._compat import hide_trio_under_gevent

hide_trio_under_gevent()

import openai as openai_sdk  # noqa: E402
from openai.types.chat import ChatCompletionChunk  # noqa: E402

__all__ = ["ChunkStream", "LanguageModel", "OpenAIChatModel", "openai"]

_PLACEHOLDER_KEY = "no-api-key-set"
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class LanguageModel(Protocol):
    """What ``stream_text`` needs from a model handle: open one streaming request."""

    model_id: str

    def open_stream(self, request: dict[str, Any]) -> Any:
        """Start a streaming Chat Completions call; returns an iterable of chunks.

        Each chunk is a Chat Completions chunk, either as a plain dict (the decoded JSON) or
        as an SDK ``ChatCompletionChunk``. If the returned object has a ``response`` (an httpx
        response) and ``close()``, an abort shuts that connection down at once.
        """
        ...


_STREAM_ERROR = "An error occurred during streaming"


class ChunkStream:
    """An ``openai.Stream`` of chat completion chunks, read as plain dicts.

    The SDK builds a pydantic ``ChatCompletionChunk`` for every streamed chunk, which costs
    about 100 µs of CPU each, several times the cost of decoding the event; the runner only
    reads a few keys, so this yields the decoded JSON instead. ``response`` and ``close()``
    are the SDK stream's, so an abort can still shut the connection down.
    """

    def __init__(self, stream: openai_sdk.Stream[ChatCompletionChunk]) -> None:
        self._stream = stream
        self.response = stream.response

    def __iter__(self) -> Iterator[dict[str, Any] | ChatCompletionChunk]:
        # ``_iter_events`` is private but has been the SDK's SSE decoder for a long time; using
        # it keeps the SDK's decoding and its mapping of timeouts and transport errors to
        # APITimeoutError/APIConnectionError, and skips only the per-chunk model construction.
        iter_events = getattr(self._stream, "_iter_events", None)
        if iter_events is None:  # an openai version without it: pydantic chunks, slower
            yield from self._stream
            return
        try:
            for sse in iter_events():
                if sse.data.startswith("[DONE]"):
                    break
                data = json.loads(sse.data)
                if isinstance(data, Mapping) and data.get("error"):
                    raise self._error(data)
                yield data
        finally:
            self.response.close()

    def close(self) -> None:
        """Close the HTTP response (safe to call more than once)."""
        self._stream.close()

    def _error(self, data: Mapping[str, Any]) -> openai_sdk.APIError:
        # the same error the SDK raises for an error event (openai/_streaming.py)
        error = data["error"]
        message = error.get("message") if isinstance(error, Mapping) else None
        if not message or not isinstance(message, str):
            message = _STREAM_ERROR
        return openai_sdk.APIError(message=message, request=self.response.request, body=error)


@dataclass
class OpenAIChatModel:
    """A model id plus the ``openai.OpenAI`` client that serves it (Chat Completions API)."""

    model_id: str
    client: openai_sdk.OpenAI
    default_options: dict[str, Any] = field(default_factory=dict)

    def open_stream(self, request: dict[str, Any]) -> ChunkStream:
        """Send ``request`` (messages, tools, settings) as a streaming chat completion."""
        params: dict[str, Any] = {
            "model": self.model_id,
            "messages": request["messages"],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.get("tools"):
            params["tools"] = request["tools"]
        if request.get("tool_choice") is not None:
            params["tool_choice"] = request["tool_choice"]
        if request.get("temperature") is not None:
            params["temperature"] = request["temperature"]
        if request.get("max_output_tokens") is not None:
            key = "max_completion_tokens" if self._is_reasoning_model() else "max_tokens"
            params[key] = request["max_output_tokens"]
        extra = {**self.default_options, **(request.get("provider_options") or {})}
        if extra:
            params["extra_body"] = extra
        return ChunkStream(self.client.chat.completions.create(**params))

    def _is_reasoning_model(self) -> bool:
        return self.model_id.startswith(_REASONING_PREFIXES)


def openai(
    model_id: str,
    base_url: str | None = None,
    api_key: str | None = None,
    **client_options: Any,
) -> OpenAIChatModel:
    """A model handle for ``model_id`` on OpenAI or any OpenAI-compatible server.

    ``base_url``/``api_key`` default to ``OPENAI_BASE_URL``/``OPENAI_API_KEY``; without any key
    a placeholder is sent, so local servers that ignore keys work. ``client_options`` go to
    ``openai.OpenAI`` (``timeout``, ``max_retries``, ``default_headers``...).
    """
    key = api_key or os.environ.get("OPENAI_API_KEY") or _PLACEHOLDER_KEY
    url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    client = openai_sdk.OpenAI(api_key=key, base_url=url, **client_options)
    return OpenAIChatModel(model_id=model_id, client=client)
