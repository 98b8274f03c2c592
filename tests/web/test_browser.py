"""The demo page in a real browser (headless Chromium through Playwright), end to end.

Everything is real: the built page (``web/dist``), a gunicorn gateway, a celery worker running
``web.demo_tasks``, Redis, and an OpenAI-compatible model server with scripted, slow replies.
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatworker.testing import ModelServer, Reasoning, Text, ToolCall

from ..support import ARTIFACTS, ROOT, wait_for
from .browser_support import CHROMIUM_ARGS, DemoStack, chromium_path, demo_stack

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SHOTS = ARTIFACTS / "browser"
DIST = ROOT / "web" / "dist" / "index.html"


def story(tag: str, words: int) -> str:
    """A reply whose words are all distinct, so any duplicated text shows."""
    return " ".join(f"{tag}{i}" for i in range(1, words + 1)) + "."


STORY = story("s", 60)
RELOAD = story("r", 100)
TAB = story("t", 50)
LONG = story("x", 200)
WEATHER = "It is 7 degrees and windy in Oslo (made-up demo data)."


def scripted_model() -> ModelServer:
    """The model: each test's message picks its reply; tool results get a summary."""
    server = ModelServer(port=0, default_reply=[Text("Hello from the scripted model.")])
    server.on(lambda body: body["messages"][-1].get("role") == "tool", [Text(WEATHER)])
    server.on(
        "weather",
        [Reasoning("I should call get_weather."), ToolCall("get_weather", {"city": "Oslo"})],
    )
    server.on(
        "slow story",
        [
            Reasoning("Let me think of a story.", tokens_per_second=50),
            Text(STORY, tokens_per_second=25),
        ],
    )
    server.on("reload story", [Text(RELOAD, tokens_per_second=20)])
    server.on("two tabs", [Text(TAB, tokens_per_second=20)])
    server.on("stop me", [Text(LONG, tokens_per_second=20)])
    server.on("regen", [Text("First answer.")], once=True)
    server.on("regen", [Text("Second answer.")])
    return server.start()


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = scripted_model()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("the `playwright` Python package is missing: pip install playwright")
    if not DIST.is_file():
        pytest.fail("web/dist is missing: run `npm ci && npm run build` in web (builds the page)")
    try:
        executable = chromium_path()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(
    redis_url: str, model: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    with demo_stack(redis_url, 11, model.base_url, path) as stack:
        yield stack
    assert "Traceback" not in stack.gateway.log(), stack.logs()


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


def shot(page: Page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def send(page: Page, text: str) -> None:
    page.get_by_test_id("composer-input").fill(text)
    page.get_by_test_id("send").click()


def assistant_text(page: Page) -> Any:
    """The last assistant message's text, as a locator."""
    return page.locator("[data-testid=message][data-role=assistant]").last.get_by_test_id("text")


def conversation(page: Page) -> Any:
    return page.get_by_test_id("conversation")


def word_count(page: Page) -> int:
    texts = page.locator("[data-testid=message][data-role=assistant]").last.get_by_test_id("text")
    if texts.count() == 0:
        return 0
    return len(texts.first.inner_text().split())


def wait_words(page: Page, at_least: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while (count := word_count(page)) < at_least:
        assert time.monotonic() < deadline, f"only {count} words arrived"
        page.wait_for_timeout(50)
    return count


def chat_id_of(page: Page) -> str:
    match = re.search(r"[?&]chat=([^&]+)", page.url)
    assert match, page.url
    return match.group(1)


def wait_run_idle(demo: DemoStack, chat_id: str, timeout: float = 10,
                  until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Wait until the chat's run has no turn in flight (and, with ``until``, the stored chat
    satisfies it: the demo stores a turn in ``on_turn_complete``, a moment after its marker);
    returns the stored chat."""
    deadline = time.monotonic() + timeout
    while True:
        stored = demo.stored_chat(chat_id)
        session = (stored or {}).get("session")
        if session and (until is None or until(dict(stored or {}))):
            info = demo.run_info(session["runId"], session["publicAccessToken"])
            if not info["isStreaming"]:
                return dict(stored or {})
        assert time.monotonic() < deadline, f"run of {chat_id} still streaming"
        time.sleep(0.1)


# -- the tests ------------------------------------------------------------------------------------


def test_send_and_watch_it_stream(page: Page, demo: DemoStack) -> None:
    expect(page.get_by_test_id("demo-note")).to_have_text(
        "Offline demo model (no OPENAI_API_KEY set)"
    )
    send(page, "Tell me a slow story")
    expect(conversation(page)).to_have_attribute("data-status", "streaming")
    seen = wait_words(page, 5)
    assert seen < 60, "the reply should still be streaming"
    expect(page.get_by_test_id("stop")).to_be_visible()
    shot(page, "01-streaming")
    expect(assistant_text(page)).to_have_text(STORY)
    expect(conversation(page)).to_have_attribute("data-status", "ready")
    reasoning = page.get_by_test_id("reasoning")
    expect(reasoning).to_have_count(1)
    assert reasoning.get_attribute("open") is None, "reasoning is folded"
    reasoning.locator("summary").click()
    expect(reasoning).to_contain_text("Let me think of a story.")
    expect(page.locator("[data-testid=chat-item]", has_text="Tell me a slow story")).to_be_visible()
    shot(page, "02-complete")


def test_tool_call_shows_input_and_output(page: Page) -> None:
    send(page, "What is the weather in Oslo?")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-tool", "get_weather")
    expect(tool.get_by_test_id("tool-input")).to_contain_text('"city": "Oslo"')
    expect(tool.get_by_test_id("tool-output")).to_contain_text("temperature_c")
    expect(assistant_text(page).last).to_have_text(WEATHER)
    page.get_by_test_id("reasoning").locator("summary").click()
    shot(page, "03-tool-call")


def test_stop_mid_reply(page: Page, demo: DemoStack) -> None:
    send(page, "stop me please")
    wait_words(page, 5)
    page.get_by_test_id("stop").click()
    expect(conversation(page)).to_have_attribute("data-status", "ready")
    chat_id = chat_id_of(page)
    wait_run_idle(demo, chat_id)
    words = word_count(page)
    page.wait_for_timeout(700)
    assert word_count(page) == words, "text kept arriving after stop"
    assert words < 200
    shot(page, "04-stopped")
    send(page, "slow story after the stop")
    expect(assistant_text(page)).to_have_text(STORY)
    # The demo stores each reply in on_turn_complete, just after the page saw the turn end.
    wait_for(lambda: (chat := demo.stored_chat(chat_id)) is not None and [
        m["role"] for m in chat["messages"]] == ["user", "assistant", "user", "assistant"] and chat)


def test_reload_mid_reply_resumes_without_duplicates(page: Page, demo: DemoStack) -> None:
    send(page, "reload story")
    wait_words(page, 8)
    assert word_count(page) < 100
    page.reload()
    user_texts = page.locator("[data-testid=message][data-role=user] [data-testid=text]")
    expect(user_texts).to_have_text(["reload story"])
    expect(conversation(page)).to_have_attribute("data-status", "streaming", timeout=5000)
    shot(page, "05-resumed")
    # The reply streams on for a while (slowly on a loaded machine): wait for all of it.
    expect(assistant_text(page)).to_have_text(RELOAD, timeout=60_000)
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(1)
    expect(conversation(page)).to_have_attribute("data-status", "ready", timeout=30_000)
    shot(page, "06-resumed-complete")


def test_second_tab_follows_the_same_chat(page: Page, demo: DemoStack) -> None:
    send(page, "two tabs please")
    wait_words(page, 3)
    other = page.context.new_page()
    other.goto(page.url)
    expect(assistant_text(other)).to_have_text(TAB)
    expect(assistant_text(page)).to_have_text(TAB)
    shot(other, "07-second-tab")
    # The second tab goes on with the conversation, in the same run.
    before = demo.stored_chat(chat_id_of(page))
    send(other, "slow story from the second tab")
    expect(assistant_text(other)).to_have_text(STORY)
    after = wait_run_idle(demo, chat_id_of(page))
    assert before is not None and after["session"]["runId"] == before["session"]["runId"]
    assert len(after["messages"]) == 4
    other.close()


def test_regenerate(page: Page, demo: DemoStack) -> None:
    send(page, "regen please")
    expect(assistant_text(page)).to_have_text("First answer.")
    page.get_by_test_id("regenerate").click()
    expect(assistant_text(page)).to_have_text("Second answer.")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(1)
    shot(page, "08-regenerated")
    chat_id = chat_id_of(page)
    stored = wait_run_idle(demo, chat_id)
    texts = [p.get("text") for m in stored["messages"] for p in m["parts"] if p["type"] == "text"]
    assert texts == ["regen please", "Second answer."]
    # New chat: an empty conversation; the sidebar takes us back to this one.
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("message")).to_have_count(0)
    assert chat_id_of(page) != chat_id
    page.locator(f"[data-testid=chat-item][data-chat-id='{chat_id}'] .chat-title").click()
    expect(assistant_text(page)).to_have_text("Second answer.")
    assert chat_id_of(page) == chat_id


def test_chat_outlives_its_run(
    browser: Browser, redis_url: str, model: ModelServer, tmp_path: Path
) -> None:
    """A run that ended (short turn timeout) is continued by a new run on the next message."""
    env = {"CHATWORKER_DEMO_WARM_TIMEOUT": "0.3", "CHATWORKER_DEMO_TURN_TIMEOUT": "1.5"}
    with demo_stack(redis_url, 12, model.base_url, tmp_path / "demo.sqlite3", **env) as stack:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto(stack.url + "/")
        send(page, "hello there")
        expect(assistant_text(page)).to_have_text("Hello from the scripted model.")
        chat_id = chat_id_of(page)
        first = wait_run_idle(stack, chat_id)["session"]
        deadline = time.monotonic() + 15
        while stack.run_info(first["runId"], first["publicAccessToken"])["status"] != "completed":
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.2)
        send(page, "slow story once the run has ended")
        expect(assistant_text(page)).to_have_text(STORY)
        second = wait_run_idle(stack, chat_id)
        assert second["session"]["runId"] != first["runId"]
        assert [m["role"] for m in second["messages"]] == ["user", "assistant"] * 2
        shot(page, "09-continued")
        context.close()
