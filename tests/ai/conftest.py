"""What the model-layer tests share: a scripted OpenAI-compatible server per test and the
``openai`` model pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatworker.ai import openai
from chatworker.ai.providers import OpenAIChatModel
from chatworker.testing import ModelServer


@pytest.fixture()
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture()
def model(server: ModelServer) -> OpenAIChatModel:
    return openai("test-model", base_url=server.base_url, api_key="k", max_retries=0)
