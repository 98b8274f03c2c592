"""The runs dashboard in a real browser (headless Chromium through Playwright), end to end.

A gunicorn gateway and a celery worker running ``web.demo_tasks`` on Redis, with a scripted
model server: the operator lists and filters the runs, opens one while it streams and watches
its text arrive as messages, cancels it, and sees its status change.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chatworker import tokens
from chatworker.testing import ModelServer, Text

from ..gateway.conftest_helpers import call
from ..support import ARTIFACTS
from .browser_support import CHROMIUM_ARGS, DemoStack, chromium_path, demo_stack

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

OPERATOR = "dashboard-operator-" + uuid.uuid4().hex[:8]
TASK = "demo-chat"
SHOTS = ARTIFACTS / "browser"
LONG = " ".join(f"x{i}" for i in range(1, 401)) + "."


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = ModelServer(port=0, default_reply=[Text("Hello from the scripted model.")])
    server.on("stream slowly", [Text(LONG, tokens_per_second=20)])
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("the `playwright` Python package is missing: pip install playwright")
    try:
        executable = chromium_path()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(redis_url: str, model: ModelServer,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    path = tmp_path_factory.mktemp("dash") / "demo.sqlite3"
    with demo_stack(redis_url, 15, model.base_url, path,
                    CHATWORKER_DASHBOARD_TOKEN=OPERATOR) as stack:
        yield stack
    assert "Traceback" not in stack.gateway.log(), stack.logs()


@pytest.fixture
def page(browser: Browser, demo: DemoStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1300, "height": 900},
                                  http_credentials={"username": "ops", "password": OPERATOR})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def start_run(demo: DemoStack, text: str) -> str:
    """Trigger a run of the demo task over HTTP, as a client app does; its run id."""
    body: dict[str, Any] = {"chatId": "chat-" + uuid.uuid4().hex[:8], "messages": [
        {"id": "u-" + uuid.uuid4().hex[:6], "role": "user", "parts": [{"type": "text",
                                                                         "text": text}]}]}
    status, started, _ = call(demo.url, "POST", f"/api/chat/tasks/{TASK}/runs", body,
                              token=tokens.create_trigger_token(TASK))
    assert status == 201, started
    return str(started["runId"])


def words(page: Page) -> int:
    text = page.locator("#messages .msg.assistant").last.inner_text()
    return len(re.findall(r"\bx\d+\b", text))


def test_without_the_credential_the_browser_is_refused(browser: Browser, demo: DemoStack) -> None:
    context = browser.new_context()
    try:
        for path in ("/dashboard", "/dashboard/api/runs"):
            response = context.request.get(demo.url + path)
            assert response.status == 401
            assert response.headers["www-authenticate"].startswith("Basic")
            assert "CHATWORKER_DASHBOARD_TOKEN" in response.text()
    finally:
        context.close()


def test_list_filter_open_watch_cancel(page: Page, demo: DemoStack) -> None:
    quick = start_run(demo, "hello there")
    slow = start_run(demo, "please stream slowly")
    page.goto(demo.url + "/dashboard")
    rows = page.locator("#runs tbody tr")
    expect(page.locator(f'tr[data-run-id="{quick}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{slow}"]')).to_be_visible()
    expect(page.locator('[data-count="runs"] b')).to_have_text("2")
    # the quick run answered and waits warm for the next message; the slow one streams
    expect(page.locator(f'tr[data-run-id="{quick}"]')).to_contain_text("waiting")
    page.select_option("#status", "waiting")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", quick)
    page.select_option("#status", "")
    page.select_option("#task", TASK)
    expect(rows).to_have_count(2)
    page.select_option("#task", "")

    page.locator(f'tr[data-run-id="{slow}"] a').click()
    expect(page).to_have_url(re.compile(rf"/dashboard/runs/{slow}$"))
    expect(page.locator("#messages .msg.user")).to_contain_text("please stream slowly")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "running")
    expect(page.locator("#messages .msg.assistant").last).to_contain_text("x5")
    seen = words(page)
    expect(page.locator("#messages .msg.assistant").last).to_contain_text(f"x{seen + 10} ")
    assert seen < 300, "the reply should still be streaming"
    expect(page.locator('#timeline li[data-kind="turn"]')).to_have_count(1)

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dashboard-run-streaming.png"))
    page.click("#show-raw")
    expect(page.locator("#raw")).to_contain_text('"type":"text-delta"')

    page.click("#cancel")
    expect(page.locator("#action-result")).to_have_text("cancel requested")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "canceled")
    expect(page.locator('#timeline li[data-kind="ended"]')).to_contain_text("canceled")
    final = words(page)
    assert final < 400, "the reply was cut short by the cancel"

    # Stop ends only the turn: the run stays, waiting for the next message
    stopped = start_run(demo, "stream slowly, then stop")
    page.goto(demo.url + f"/dashboard/runs/{stopped}")
    expect(page.locator("#messages .msg.assistant").last).to_contain_text("x5")
    page.click("#stop")
    expect(page.locator("#action-result")).to_have_text("stop requested")
    expect(page.locator('#timeline li[data-kind="stopped"]')).to_have_count(1)
    expect(page.locator("#run-status")).to_have_attribute("data-status", "waiting")

    page.goto(demo.url + "/dashboard")
    expect(page.locator(f'tr[data-run-id="{slow}"]')).to_contain_text("canceled")
    page.screenshot(path=str(SHOTS / "dashboard-runs.png"))
    page.select_option("#status", "active")
    expect(rows).to_have_count(2)
    expect(page.locator(f'tr[data-run-id="{slow}"]')).to_have_count(0)
