"""Model handles: ``openai(model_id)`` wraps an ``openai.OpenAI`` client for streaming chat."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._compat import hide_trio_under_gevent

hide_trio_under_gevent()

import openai as openai_sdk  # noqa: E402

__all__ = ["LanguageModel", "OpenAIChatModel", "openai"]

_PLACEHOLDER_KEY = "no-api-key-set"
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class LanguageModel(Protocol):
    """What ``stream_text`` needs from a model handle: open one streaming request."""

    model_id: str

    def open_stream(self, request: dict[str, Any]) -> Any:
        """Start a streaming Chat Completions call; returns an iterable ``openai.Stream``."""
        ...


@dataclass
class OpenAIChatModel:
    """A model id plus the ``openai.OpenAI`` client that serves it (Chat Completions API)."""

    model_id: str
    client: openai_sdk.OpenAI
    default_options: dict[str, Any] = field(default_factory=dict)

    def open_stream(self, request: dict[str, Any]) -> Any:
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
        return self.client.chat.completions.create(**params)

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
