"""The offline demo model: answers any chat without network or API key, clearly labelled.

It reflects on the last user message, streams at a natural rate, and calls the demo tools
(``get_weather`` / ``get_time``) when asked about the weather or the time (whole words: a
"train" is no rain, and "I love the rain" asks nothing) and the request offers them; asked for
a report ("write a report on tide pools") it calls ``write_report``, a tool that runs as a
Celery task when the demo app offers it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .script import Reasoning, Step, Text, ToolCall, last_user_text

__all__ = ["DEMO_PREFIX", "demo_reply"]

DEMO_PREFIX = "(offline demo model) "

#: Words that ask for the weather on their own ("Weather in Oslo").
_WEATHER = re.compile(r"\b(weather|forecast|temperature)\b", re.IGNORECASE)
#: Words that ask for it only in a question ("Will it rain in Paris?", not "I love the rain").
_WEATHER_HINT = re.compile(
    r"\b(rain|raining|rainy|snow|snowing|snowy|sunny|umbrella|windy)\b", re.IGNORECASE
)
_TIME = re.compile(
    r"\bwhat(?:'s| is)?\s+(?:the\s+)?time\b|\btime\s+(?:is\s+it|now|in|at)\b|\bclock\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"\?\s*$|^\s*(?:what|what's|how|is|are|will|does|do|should|can|could|tell me)\b",
    re.IGNORECASE,
)
_REPORT = re.compile(r"\breport\b", re.IGNORECASE)
_TOPIC = re.compile(r"\b(?:on|about)\s+(.+?)(?:,?\s*please)?[\s.?!]*$", re.IGNORECASE)
_CITY = re.compile(r"\b(?:in|for|at)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_ZONE = re.compile(r"\b([A-Z][A-Za-z]+/[A-Za-z_]+(?:/[A-Za-z_]+)?|UTC)\b")


def demo_reply(body: dict[str, Any], tokens_per_second: float | None = 30.0) -> list[Step]:
    """The demo model's reply steps for a Chat Completions request body."""
    messages: list[dict[str, Any]] = body.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    after = messages[last_user + 1 :]
    offered = _offered_tools(body)
    rate = tokens_per_second
    results = [m for m in after if m.get("role") == "tool"]
    if results:
        names = _tool_names(after)
        facts = " ".join(
            _describe(names.get(str(m.get("tool_call_id")), "tool"), m) for m in results
        )
        text = f"{DEMO_PREFIX}{facts} (Demo tools make their data up.) Anything else?"
        return [
            Reasoning("I have the tool result, so I will summarise it.", tokens_per_second=rate),
            Text(text, tokens_per_second=rate),
        ]
    user_text = last_user_text(body)
    if _REPORT.search(user_text) and "write_report" in offered:
        match = _TOPIC.search(user_text)
        topic = match.group(1) if match else "chat workers"
        return [
            Reasoning(
                f"The user wants a report; I will call write_report on {topic}.",
                tokens_per_second=rate,
            ),
            ToolCall("write_report", {"topic": topic}),
        ]
    if _asks_weather(user_text) and "get_weather" in offered:
        match = _CITY.search(user_text)
        city = match.group(1) if match else "Berlin"
        return [
            Reasoning(
                f"The user asks about the weather; I will call get_weather for {city}.",
                tokens_per_second=rate,
            ),
            ToolCall("get_weather", {"city": city}),
        ]
    if _TIME.search(user_text) and "get_time" in offered:
        match = _ZONE.search(user_text)
        zone = match.group(1) if match else "UTC"
        return [
            Reasoning(
                f"The user asks for the time; I will call get_time for {zone}.",
                tokens_per_second=rate,
            ),
            ToolCall("get_time", {"timezone": zone}),
        ]
    return [
        Reasoning(_thought(user_text), tokens_per_second=rate),
        Text(DEMO_PREFIX + _reflection(user_text, offered), tokens_per_second=rate),
    ]


def _asks_weather(user_text: str) -> bool:
    """Whether the message asks about the weather (whole words only: not "train" or "brain")."""
    if _WEATHER.search(user_text):
        return True
    return bool(_WEATHER_HINT.search(user_text) and _QUESTION.search(user_text))


def _thought(user_text: str) -> str:
    count = len(user_text.split())
    return f"The user wrote {count} word{'s' if count != 1 else ''}; I will reflect on them."


def _reflection(user_text: str, offered: set[str]) -> str:
    words = user_text.split()
    if not words:
        return "Hello! I am a stand-in for a real model. Say something and I will reflect on it."
    quote = " ".join(words[:8]) + ("…" if len(words) > 8 else "")
    kind = "a question" if user_text.rstrip().endswith("?") else "a message"
    count = f"{len(words)} word{'s' if len(words) != 1 else ''}"
    text = (
        f"You sent {kind} of {count}, starting “{quote}”. I am a stand-in for a real model, "
        "so I can only reflect on what you write."
    )
    tools = sorted(offered & {"get_weather", "get_time"})
    if tools:
        topics = " or ".join("the weather" if t == "get_weather" else "the time" for t in tools)
        return f"{text} Would you like me to look up {topics} with my demo tools?"
    return f"{text} Could you tell me more about it?"


def _offered_tools(body: dict[str, Any]) -> set[str]:
    names = set()
    for entry in body.get("tools") or []:
        function = entry.get("function") if isinstance(entry, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def _tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[str(call.get("id"))] = (call.get("function") or {}).get("name", "tool")
    return names


def _describe(name: str, message: dict[str, Any]) -> str:
    content = message.get("content")
    raw = content if isinstance(content, str) else json.dumps(content)
    try:
        data = json.loads(raw)
    except ValueError:
        data = raw
    if name == "get_weather" and isinstance(data, dict) and "temperature_c" in data:
        return (
            f"The weather tool reports {data['temperature_c']} °C and "
            f"{data.get('conditions', 'unknown skies')} in {data.get('city', 'that city')}."
        )
    if name == "write_report" and isinstance(data, dict) and "summary" in data:
        return f"The report task (it ran on the tools queue) answered: {data['summary']}"
    if name == "write_report" and isinstance(data, dict) and data.get("cancelled"):
        return "The report task was cancelled."
    if name == "get_time" and isinstance(data, dict) and "time" in data:
        return f"The clock tool says it is {data['time']} in {data.get('timezone', 'UTC')}."
    text = raw if len(raw) <= 200 else raw[:197] + "..."
    return f"The {name} tool answered: {text}."
