"""Chat tasks whose reply is a pydantic-ai agent's (loaded only by the integration tests' worker,
which has pydantic-ai installed)."""

from __future__ import annotations

import os
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from chatworker import chat
from chatworker.integrations.pydantic_ai import stream

from ..tasks import _hooks


def _agent() -> Agent[None, str]:
    # The scripted server (OPENAI_BASE_URL); the provider makes its own HTTP client.
    provider = OpenAIProvider(base_url=os.environ["OPENAI_BASE_URL"], api_key="k")
    agent: Agent[None, str] = Agent(OpenAIChatModel("scripted", provider=provider))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    return agent


AGENT = _agent()


@chat.task(id="pydantic-ai-agent", warm_timeout_in_seconds=5,
           ui_message_stream_options={"on_error": lambda exc: "the agent failed"})
def pydantic_ai_agent(run: Any) -> Any:
    return stream(AGENT, run)


_hooks(pydantic_ai_agent)


@chat.task(id="pydantic-ai-agent-async", warm_timeout_in_seconds=5)
async def pydantic_ai_agent_async(run: Any) -> None:
    await chat.pipe(stream(AGENT, run))


_hooks(pydantic_ai_agent_async)
