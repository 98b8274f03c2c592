"""The demo page's agents: a new chat may be answered by ``demo-chat`` or by the agent of each
installed framework (pydantic-ai, the OpenAI Agents SDK, LangGraph), each talking to the offline
demo model; a chat keeps its agent across a reload.

Everything is real: the built page in headless Chromium, a gunicorn gateway, a celery worker
loading ``web.demo_tasks,web.demo_frameworks`` (as ``chatworker dev`` does), Redis, and the
offline demo model server.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from chatworker.testing import ModelServer

from ..gateway.conftest_helpers import Gunicorn, call, db_url, gateway_env
from .browser_support import DemoStack, demo_stack
from .test_browser import assistant_text, browser, chat_id_of, send, shot, wait_run_idle

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    pass

__all__ = ["browser"]  # the module's Chromium, shared with test_browser

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TASKS = "web.demo_tasks,web.demo_frameworks"

#: Each framework's demo task: its label on the page, the package it needs, what its
#: instructions call it (the model sees them), and the city its test asks about.
FRAMEWORKS = {
    "demo-pydantic-ai": ("pydantic-ai", "pydantic_ai", "a pydantic-ai agent", "Lima"),
    "demo-openai-agents": ("OpenAI Agents SDK", "agents", "an OpenAI Agents SDK agent", "Oslo"),
    "demo-langgraph": ("LangGraph", "langgraph", "a LangGraph agent", "Rome"),
}
INSTALLED = [task for task, (_, package, _, _) in FRAMEWORKS.items()
             if importlib.util.find_spec(package) is not None]


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = ModelServer(port=0, demo=True, demo_tokens_per_second=None).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo(
    redis_url: str, model: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    path = tmp_path_factory.mktemp("agents") / "demo.sqlite3"
    with demo_stack(redis_url, 10, model.base_url, path, tasks=TASKS) as stack:
        yield stack
    assert "Traceback" not in stack.gateway.log(), stack.logs()
    assert "Traceback" not in stack.worker.log(), stack.logs()


@pytest.fixture
def page(browser: Browser, demo: DemoStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(demo.url + "/")
    yield page
    context.close()
    assert not errors, errors


def system_texts(body: dict[str, Any]) -> str:
    """The system / developer messages of a model request, as one text."""
    texts = []
    for message in body["messages"]:
        if message.get("role") in ("system", "developer"):
            content = message.get("content")
            parts = content if isinstance(content, list) else [{"text": content}]
            texts += [str(part.get("text", "")) for part in parts if isinstance(part, dict)]
    return "\n".join(texts)


def asked(model: ModelServer, words: str) -> list[dict[str, Any]]:
    """The model requests whose last user message contains ``words``."""
    out = []
    for body in list(model.requests):
        users = [m for m in body["messages"] if m.get("role") == "user"]
        if users and words in str(users[-1].get("content")):
            out.append(body)
    return out


# -- the tests ------------------------------------------------------------------------------------


def test_the_page_offers_the_demo_chat_and_each_installed_framework(page: Page) -> None:
    agent = page.get_by_test_id("agent")
    expect(agent).to_be_enabled()
    expect(agent).to_have_value("demo-chat")
    labels = ["chatworker (stream_text)"] + [FRAMEWORKS[task][0] for task in INSTALLED]
    expect(agent.locator("option")).to_have_text(labels)


@pytest.mark.parametrize("task", INSTALLED)
def test_a_framework_agent_answers_a_new_chat_and_keeps_it(
    page: Page, demo: DemoStack, model: ModelServer, task: str
) -> None:
    label, _, persona, city = FRAMEWORKS[task]
    page.get_by_test_id("agent").select_option(label=label)
    expect(page.get_by_test_id("agent")).to_have_value(task)
    send(page, f"What's the weather in {city}?")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-tool", "get_weather")
    expect(tool.get_by_test_id("tool-input")).to_contain_text(f'"city": "{city}"')
    reply = assistant_text(page).last
    expect(reply).to_contain_text("(offline demo model)")
    expect(reply).to_contain_text(city)
    # Chosen once, the chat's agent is fixed: the selector shows it and cannot change it.
    expect(page.get_by_test_id("agent")).to_be_disabled()
    shot(page, f"agent-{task}")
    chat_id = chat_id_of(page)
    stored = wait_run_idle(demo, chat_id)
    assert stored["taskId"] == task, stored
    session = stored["session"]
    assert demo.run_info(session["runId"], session["publicAccessToken"])["taskId"] == task
    requests = asked(model, f"weather in {city}")
    assert requests and all(persona in system_texts(body) for body in requests), requests

    # Reloaded, the chat is still this agent's, and it answers the next message.
    page.reload()
    expect(page.get_by_test_id("agent")).to_have_value(task)
    expect(page.get_by_test_id("agent")).to_be_disabled()
    expect(assistant_text(page).last).to_contain_text(city)
    send(page, "What time is it in Europe/Paris?")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)
    expect(assistant_text(page).last).to_contain_text("Europe/Paris")
    later = wait_run_idle(demo, chat_id, until=lambda s: len(s.get("messages") or []) >= 4)
    assert later["taskId"] == task
    assert [m["role"] for m in later["messages"]] == ["user", "assistant"] * 2
    follow_up = asked(model, "Europe/Paris")
    assert follow_up and persona in system_texts(follow_up[-1])
    assert any(f"weather in {city}" in str(m.get("content")) for m in follow_up[-1]["messages"])


def test_the_api_lists_the_agents_and_refuses_other_tasks(demo: DemoStack) -> None:
    status, config, _ = call(demo.url, "GET", "/api/demo/config")
    assert status == 200, config
    assert config["tasks"] == [{"id": "demo-chat", "label": "chatworker (stream_text)"}] + [
        {"id": task, "label": FRAMEWORKS[task][0]} for task in INSTALLED]
    for agent in config["tasks"]:
        status, body, _ = call(demo.url, "GET", f"/api/demo/tasks/{agent['id']}/token")
        assert status == 200 and body["taskId"] == agent["id"] and body["accessToken"], body
    status, body, _ = call(demo.url, "GET", "/api/demo/tasks/no-such-agent/token")
    assert status == 404, body
    assert body["error"] == "unknown_task"
    assert "'no-such-agent' is not one of the demo's agents" in body["message"]
    assert "demo-chat" in body["message"]


def test_a_missing_framework_is_not_offered(redis_url: str) -> None:
    """Without LangGraph and the Agents SDK the demo app starts and offers the others; a task
    that is loaded but not the demo's own cannot be chosen either."""
    env = gateway_env(db_url(redis_url, 10), CHATWORKER_TASKS=f"{TASKS},tests.tasks")
    app = "tests.web.browser_support:create_demo_app_without('langgraph', 'agents')"
    gateway = Gunicorn(env, name="agents-missing", app=app, ready_path="/api/demo/config")
    gateway.start()
    try:
        status, config, _ = call(gateway.url, "GET", "/api/demo/config")
        assert status == 200, config
        offered = [agent["id"] for agent in config["tasks"]]
        assert offered == ["demo-chat"] + (
            ["demo-pydantic-ai"] if "demo-pydantic-ai" in INSTALLED else [])
        for task in ("demo-langgraph", "echo"):  # not installed; loaded but not the demo's
            status, body, _ = call(gateway.url, "GET", f"/api/demo/tasks/{task}/token")
            assert status == 404 and body["error"] == "unknown_task", body
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.log(), gateway.log()[-3000:]
