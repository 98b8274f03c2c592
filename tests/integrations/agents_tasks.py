"""A chat task whose turns an OpenAI Agents SDK agent answers (for a worker that has the SDK)."""

from __future__ import annotations

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

set_tracing_disabled(True)


@function_tool
def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "sky": "sunny"}


def make_agent() -> Agent[Any]:
    # A client per turn: its connections belong to the turn's event loop.
    # OPENAI_BASE_URL points it at the scripted server.
    model = OpenAIChatCompletionsModel(model="scripted-model",
                                       openai_client=AsyncOpenAI(max_retries=0))
    return Agent(name="assistant", instructions="Be brief.", model=model,
                 model_settings=ModelSettings(include_usage=True), tools=[get_weather])


def agent_trouble(error: BaseException) -> str:
    return f"agent trouble: {type(error).__name__}"


@chat.task(id="openai-agents", warm_timeout_in_seconds=5)
def agents_chat(run: Any) -> Any:
    return stream(make_agent(), run, on_error=agent_trouble)


def model_name(part: dict[str, Any]) -> dict[str, Any] | None:
    return {"model": "scripted-model"} if part["type"] in ("start", "finish") else None


@chat.task(id="openai-agents-options", warm_timeout_in_seconds=5,
           ui_message_stream_options={"message_metadata": model_name, "send_reasoning": False,
                                      "on_error": lambda error: "the task's error text"})
def agents_with_options(run: Any) -> Any:
    return stream(make_agent(), run)
