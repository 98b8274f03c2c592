"""The demo chat task ``demo-pydantic-ai``: a pydantic-ai agent answering inside a chat run.

Needs the ``pydantic-ai`` extra. ``web.demo_frameworks`` loads it when pydantic-ai is installed
(as ``chatworker dev`` does); alone, load it next to the demo task with
``CHATWORKER_TASKS=web.demo_tasks,web.demo_pydantic_ai`` (worker and gateway). The agent uses
the same model as ``demo-chat`` (OpenAI with ``OPENAI_API_KEY``, else the offline demo model at
``CHATWORKER_DEMO_MODEL_URL``) and the demo's weather and time tools.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from chatworker import chat
from chatworker.integrations.pydantic_ai import PydanticAIStream, stream
from chatworker.testing import demo

from .demo_tasks import DEFAULT_DEMO_MODEL_URL, model_name, persist_turns, uses_demo_model

__all__ = ["DEMO_PYDANTIC_AI_TASK_ID", "demo_agent", "demo_pydantic_ai"]

DEMO_PYDANTIC_AI_TASK_ID = "demo-pydantic-ai"

INSTRUCTIONS = (
    "You are the chatworker demo assistant, a pydantic-ai agent: friendly and brief. You can "
    "look up the weather (get_weather) and the time (get_time); their data is for "
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


def demo_agent() -> Agent[None, str]:
    """The agent: the demo's model (its provider makes its own HTTP client) and two tools."""
    if uses_demo_model():
        url = os.environ.get("CHATWORKER_DEMO_MODEL_URL") or DEFAULT_DEMO_MODEL_URL
        provider = OpenAIProvider(base_url=url, api_key="offline-demo")
    else:
        provider = OpenAIProvider()
    return Agent(OpenAIChatModel(model_name(), provider=provider), instructions=INSTRUCTIONS,
                 tools=[get_weather, get_time])


_AGENT: Agent[None, str] | None = None


@persist_turns
@chat.task(id=DEMO_PYDANTIC_AI_TASK_ID, warm_timeout_in_seconds=30, turn_timeout="1h",
           ui_message_stream_options={"send_reasoning": True})
def demo_pydantic_ai(run: Any) -> PydanticAIStream:
    """Answer with the pydantic-ai agent."""
    global _AGENT
    if _AGENT is None:
        _AGENT = demo_agent()
    return stream(_AGENT, run)
