"""The chat task of the LangGraph integration tests: a ReAct agent whose ``ChatOpenAI`` talks to
the scripted model server (``OPENAI_BASE_URL``), returned with one line from the chat task."""

from __future__ import annotations

import os
from typing import Any

import openai
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

from chatworker import chat
from chatworker.integrations.langgraph import require_approval, stream


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def book_table(place: str) -> str:
    """Book a table (the user must agree)."""
    return f"booked at {place}"


@chat.task(id="langgraph-agent", warm_timeout_in_seconds=5)
def langgraph_agent(ctx: Any) -> Any:
    model = ChatOpenAI(model="scripted-model", base_url=os.environ["OPENAI_BASE_URL"],
                       api_key="k", max_retries=0, stream_usage=True,
                       http_async_client=openai.DefaultAsyncHttpxClient())
    tools = [get_weather, require_approval(book_table)]
    return stream(create_react_agent(model, tools), ctx)
