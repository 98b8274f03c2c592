"""Which tool the offline demo model calls: only for questions about the weather or the time."""

from __future__ import annotations

import pytest

from chatworker.testing.demo_model import demo_reply
from chatworker.testing.script import Text, ToolCall

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {}}}
         for name in ("get_weather", "get_time")]


def tool_called(text: str) -> str | None:
    """The tool the demo model calls first for this user message (None: it answers in text)."""
    steps = demo_reply({"messages": [{"role": "user", "content": text}], "tools": TOOLS},
                       tokens_per_second=None)
    calls = [step for step in steps if isinstance(step, ToolCall)]
    if not calls:
        assert any(isinstance(step, Text) for step in steps)
        return None
    return calls[0].name


@pytest.mark.parametrize("text", [
    "What's the weather in Oslo?",
    "weather in Paris",
    "Will it rain in London tomorrow?",
    "Is it sunny in Rome?",
    "Do I need an umbrella in Berlin?",
    "Give me the forecast for Madrid",
])
def test_weather_questions_call_the_weather_tool(text: str) -> None:
    assert tool_called(text) == "get_weather"


@pytest.mark.parametrize("text", [
    "I took the train to work",
    "My brain hurts",
    "Brainstorm three names for a cat",
    "I love the sound of rain.",
    "Tell me a story about a time machine",
    "It was a long time ago",
])
def test_other_messages_call_no_tool(text: str) -> None:
    assert tool_called(text) is None


@pytest.mark.parametrize("text", ["What time is it in Asia/Tokyo?", "What's the time?",
                                  "time in UTC please"])
def test_time_questions_call_the_time_tool(text: str) -> None:
    assert tool_called(text) == "get_time"
