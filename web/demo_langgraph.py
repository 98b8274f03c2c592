"""The demo chat task ``demo-langgraph``: a LangGraph ReAct agent answering inside a chat run.

Needs the ``langgraph`` extra. ``web.demo_frameworks`` loads it when LangGraph is installed (as
``chatworker dev`` does); alone, load it next to the demo task with
``CHATWORKER_TASKS=web.demo_tasks,web.demo_langgraph`` (worker and gateway). The agent uses the
same model as ``demo-chat`` (OpenAI with ``OPENAI_API_KEY``, else the offline demo model at
``CHATWORKER_DEMO_MODEL_URL``) and the demo's weather and time tools.
"""

from __future__ import annotations

import os
from typing import Any

import openai
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

from chatworker import chat
from chatworker.integrations.langgraph import stream
from chatworker.testing import demo

from .demo_tasks import DEFAULT_DEMO_MODEL_URL, model_name, persist_turns, uses_demo_model

__all__ = ["DEMO_LANGGRAPH_TASK_ID", "demo_graph", "demo_langgraph"]

DEMO_LANGGRAPH_TASK_ID = "demo-langgraph"

PROMPT = (
    "You are the chatworker demo assistant, a LangGraph agent: friendly and brief. You can look "
    "up the weather (get_weather) and the time (get_time); their data is for demonstration only."
)


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Get the current weather for a city (made-up demo data)."""
    assert demo.get_weather.execute is not None
    return dict(demo.get_weather.execute(demo.WeatherArgs(city=city)))


@tool
def get_time(timezone: str = "UTC") -> dict[str, Any]:
    """Get the current time in a time zone (an IANA name, e.g. 'Europe/Paris')."""
    assert demo.get_time.execute is not None
    return dict(demo.get_time.execute(demo.TimeArgs(timezone=timezone)))


def demo_graph() -> Any:
    """The compiled graph, with an HTTP client of its own: build one per turn (a client's
    connections belong to the event loop that opened them, and each run has its own loop)."""
    options: dict[str, Any] = {}
    if uses_demo_model():
        options["base_url"] = os.environ.get("CHATWORKER_DEMO_MODEL_URL") or DEFAULT_DEMO_MODEL_URL
        options["api_key"] = "offline-demo"
    model = ChatOpenAI(model=model_name(), max_retries=0, stream_usage=True,
                       http_async_client=openai.DefaultAsyncHttpxClient(), **options)
    return create_react_agent(model, [get_weather, get_time], prompt=PROMPT)


@persist_turns
@chat.task(id=DEMO_LANGGRAPH_TASK_ID, warm_timeout_in_seconds=30, turn_timeout="1h",
           ui_message_stream_options={"send_reasoning": True})
def demo_langgraph(run: Any) -> Any:
    """Answer with the LangGraph agent."""
    return stream(demo_graph(), run)
