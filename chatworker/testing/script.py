"""Reply scripts for the scripted model server: what the fake model says, step by step."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Citation",
    "Disconnect",
    "Error",
    "Finish",
    "Reasoning",
    "Reply",
    "ReplySource",
    "Rule",
    "Seen",
    "Silence",
    "Step",
    "Text",
    "ToolCall",
    "ToolLoop",
    "Usage",
    "call_then_report",
    "last_user_text",
    "split_tokens",
    "tool_results",
    "user_texts",
]


@dataclass(frozen=True)
class Text:
    """Assistant text, streamed one word (with its trailing space) per chunk."""

    text: str
    tokens_per_second: float | None = None


@dataclass(frozen=True)
class Reasoning:
    """Reasoning deltas, sent as ``reasoning_content`` (DeepSeek style) or ``reasoning``."""

    text: str
    field: Literal["reasoning_content", "reasoning"] = "reasoning_content"
    tokens_per_second: float | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool call; ``arguments`` (a dict is JSON-encoded, a str is sent as-is) in fragments."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None
    fragment_size: int = 7

    def arguments_text(self) -> str:
        """The arguments exactly as the model sends them."""
        import json

        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Citation:
    """A URL citation, sent as a ``url_citation`` annotation on a delta."""

    url: str
    title: str | None = None


@dataclass(frozen=True)
class Error:
    """An API error: an HTTP status before any byte when first, else an SSE error event."""

    status: int = 500
    message: str = "The server had an error while processing your request."
    type: str | None = None
    should_retry: bool | None = None


@dataclass(frozen=True)
class Silence:
    """Keep the connection open sending nothing for ``seconds``.

    As a first step it comes after the response headers, unless ``before_headers``.
    """

    seconds: float
    before_headers: bool = False


@dataclass(frozen=True)
class Disconnect:
    """Drop the connection mid-response, without finishing the HTTP body."""


@dataclass(frozen=True)
class Usage:
    """Override the reported token usage (otherwise words are counted)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class Finish:
    """Override the ``finish_reason`` (default: ``tool_calls`` after a tool call, else ``stop``)."""

    reason: str


@dataclass(frozen=True)
class Seen:
    """Assistant text naming the user messages the request carried, in order:
    ``"saw: first | second"`` (so a test reads in the reply what the model was shown)."""

    prefix: str = "saw: "

    def text(self, body: dict[str, Any]) -> str:
        return self.prefix + " | ".join(user_texts(body))


Step = (Text | Reasoning | ToolCall | Citation | Error | Silence | Disconnect | Usage | Finish
        | Seen)
Reply = Sequence[Step]
ReplySource = Reply | Callable[[dict[str, Any]], Reply]
Matcher = str | re.Pattern[str] | Callable[[dict[str, Any]], bool] | None


class Rule:
    """Answers requests whose last user message matches; ``times`` limits how often."""

    def __init__(self, match: Matcher, reply: ReplySource, times: int | None = None) -> None:
        self.match = match
        self.reply = reply
        self.remaining = times
        self.used = 0
        self._lock = threading.Lock()

    def matches(self, body: dict[str, Any]) -> bool:
        """True if this rule applies to the request ``body``."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match.lower() in last_user_text(body).lower()
        if isinstance(self.match, re.Pattern):
            return self.match.search(last_user_text(body)) is not None
        return bool(self.match(body))

    def take(self, body: dict[str, Any]) -> list[Step]:
        """Consume one use and return the reply steps for ``body``."""
        with self._lock:
            self.used += 1
            if self.remaining is not None:
                self.remaining -= 1
        reply = self.reply(body) if callable(self.reply) else self.reply
        return list(reply)


class ToolLoop:
    """A reply for a multi-step tool turn, slow enough to send messages into: each model call
    streams a call of ``tool`` with ``arguments`` at once, then stays silent for ``pause``
    seconds before finishing, until the request already carries ``calls`` tool results; then
    it answers :class:`Seen` (which user messages it was shown). Use as
    ``server.on(match, ToolLoop("lookup", {...}))``."""

    def __init__(self, tool: str, arguments: dict[str, Any] | str, *, calls: int = 2,
                 pause: float = 1.0, final: Sequence[Step] = ()) -> None:
        self.tool = tool
        self.arguments = arguments
        self.calls = calls
        self.pause = pause
        self.final = list(final)

    def __call__(self, body: dict[str, Any]) -> Reply:
        done = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
        if done < self.calls:
            return [ToolCall(self.tool, self.arguments), Silence(self.pause)]
        return [*self.final, Seen()]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "")
        for part in content or []
        if isinstance(part, dict) and part.get("type") == "text"
    )


def user_texts(body: dict[str, Any]) -> list[str]:
    """The text of every ``user`` message of a Chat Completions request body, in order."""
    return [_content_text(m.get("content")) for m in body.get("messages") or []
            if m.get("role") == "user"]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last ``user`` message of a Chat Completions request body."""
    texts = user_texts(body)
    return texts[-1] if texts else ""


def tool_results(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(tool name, content)`` of the tool messages that end a request body (none when the
    last message is not a tool result), named after the assistant tool calls they answer."""
    messages = body.get("messages") or []
    names = {
        call.get("id"): (call.get("function") or {}).get("name", "")
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or []
    }
    trailing: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append((names.get(message.get("tool_call_id"), "?"),
                         str(message.get("content"))))
    return trailing[::-1]


def call_then_report(*calls: ToolCall) -> Callable[[dict[str, Any]], Reply]:
    """A reply that calls the tools ``calls``, then, once the request ends with tool results
    (an output, an error or a denial), says what it got: ``Got get_weather: {"sky": "sun"};
    other: Tool execution denied.`` (one ``name: content`` per result, in order)."""

    def reply(body: dict[str, Any]) -> Reply:
        results = tool_results(body)
        if not results:
            return list(calls)
        return [Text("Got " + "; ".join(f"{name}: {content}" for name, content in results))]

    return reply


_TOKEN = re.compile(r"\s*\S+\s*|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into word tokens that concatenate back to exactly ``text``."""
    return _TOKEN.findall(text)
