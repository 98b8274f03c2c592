"""The demo chat task ``demo-openai-agents``: an OpenAI Agents SDK agent answering in a chat run.

Needs the ``openai-agents`` extra. ``web.demo_frameworks`` loads it when the Agents SDK is
installed (as ``chatworker dev`` does); alone, load it next to the demo task with
``CHATWORKER_TASKS=web.demo_tasks,web.demo_openai_agents`` (worker and gateway). The agent uses
the same model as ``demo-chat`` (OpenAI with ``OPENAI_API_KEY``, else the offline demo model at
``CHATWORKER_DEMO_MODEL_URL``) and the demo's weather and time tools.
"""

from __future__ import annotations

import os
from typing import Any

from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from chatworker import chat
from chatworker.integrations.openai_agents import stream
from chatworker.testing import demo

from .demo_tasks import DEFAULT_DEMO_MODEL_URL, model_name, persist_turns, uses_demo_model

__all__ = ["DEMO_OPENAI_AGENTS_TASK_ID", "demo_agent", "demo_openai_agents"]

DEMO_OPENAI_AGENTS_TASK_ID = "demo-openai-agents"

INSTRUCTIONS = (
    "You are the chatworker demo assistant, an OpenAI Agents SDK agent: friendly and brief. You "
    "can look up the weather (get_weather) and the time (get_time); their data is for "
    "demonstration only."
)


def get_weather(city: str) -> Any:
    """Get the current weather for a city (made-up demo data)."""
    assert demo.get_weather.execute is not None
    return demo.get_weather.execute(demo.WeatherArgs(city=city))


def get_time(timezone: str = "UTC") -> Any:
    """Get the current time in a time zone (an IANA name, e.g. 'Europe/Paris')."""
    assert demo.get_time.execute is not None
    return demo.get_time.execute(demo.TimeArgs(timezone=timezone))


def demo_agent() -> Agent[Any]:
    """The agent, with an HTTP client of its own: build one per turn (a client's connections
    belong to the event loop that opened them)."""
    if uses_demo_model():
        url = os.environ.get("CHATWORKER_DEMO_MODEL_URL") or DEFAULT_DEMO_MODEL_URL
        client = AsyncOpenAI(base_url=url, api_key="offline-demo")
        set_tracing_disabled(True)  # no OpenAI key to send traces with
    else:
        client = AsyncOpenAI()
    model = OpenAIChatCompletionsModel(model=model_name(), openai_client=client)
    tools: list[Any] = [function_tool(get_weather), function_tool(get_time)]
    return Agent(name="demo", instructions=INSTRUCTIONS, model=model,
                 model_settings=ModelSettings(include_usage=True), tools=tools)


@persist_turns
@chat.task(id=DEMO_OPENAI_AGENTS_TASK_ID, warm_timeout_in_seconds=30, turn_timeout="1h")
def demo_openai_agents(run: Any) -> Any:
    """Answer with the Agents SDK agent."""
    return stream(demo_agent(), run)
