"""The demo page's tool approvals in a real browser (headless Chromium through Playwright).

The demo stack is real (a celery worker running ``web.demo_tasks``, a gunicorn gateway, Redis),
with the offline demo model, which calls ``book_table`` (it needs the user's approval) for "book
a table". The page shows the request with Approve / Deny; Approve runs the tool once and the
answer continues the same bubble; Deny shows the denial; both also after a reload while the
request waits. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatworker.testing import ModelServer, Text

from .browser_support import DemoStack, demo_stack
from .test_browser import browser, chat_id_of, send, shot, story, wait_run_idle, wait_words

__all__ = ["browser"]

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # pragma: no cover - depends on the machine
    pass

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


#: The answer after an approved booking at "Slow Lane": long and slow, to reload during it.
SLOW = story("b", 60)


def _answers_slow_lane(body: dict[str, Any]) -> bool:
    messages = body["messages"]
    return messages[-1].get("role") == "tool" and "Slow Lane" in json.dumps(messages)


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = ModelServer(port=0, demo=True, demo_tokens_per_second=200)
    server.on(_answers_slow_lane, [Text(SLOW, tokens_per_second=20)])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo(
    redis_url: str, model: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    path = tmp_path_factory.mktemp("approvals-page") / "demo.sqlite3"
    with demo_stack(redis_url, 14, model.base_url, path) as stack:
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


def reply(page: Page) -> Any:
    """The (only) assistant message."""
    replies = page.locator("[data-testid=message][data-role=assistant]")
    expect(replies).to_have_count(1)
    return replies.first


def booking_parts(stored: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for m in stored["messages"] for p in m["parts"] if p["type"] == "tool-book_table"]


def test_the_empty_chat_names_the_prompts(page: Page) -> None:
    hints = page.get_by_test_id("hints")
    expect(hints).to_contain_text("Book a table for 2 at Luigi's at 8pm")
    expect(hints).to_contain_text("Approve or Deny")


def test_approve_runs_the_tool_and_continues_the_same_bubble(
    page: Page, demo: DemoStack
) -> None:
    send(page, "Book a table for 2 at Luigi's at 8pm")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "approval-requested")
    expect(tool).to_have_attribute("data-tool", "book_table")
    expect(tool.get_by_test_id("tool-input")).to_contain_text('"restaurant": "Luigi\'s"')
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
    bubble = reply(page).get_attribute("data-id")
    expect(tool.get_by_test_id("tool-output")).to_have_count(0)
    shot(page, "20-approval-requested")
    tool.get_by_test_id("approve").click()
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(tool.get_by_test_id("tool-output")).to_contain_text('"booked": true')
    expect(tool.get_by_test_id("approval-outcome")).to_have_text("Approved.")
    expect(reply(page).get_by_test_id("text").last).to_contain_text(
        "Done: a table for 2 at Luigi's at 8pm, confirmation DEMO-"
    )
    assert reply(page).get_attribute("data-id") == bubble, "the answer is a new bubble"
    shot(page, "21-approved")
    stored = wait_run_idle(demo, chat_id_of(page), until=_settled)
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    [part] = booking_parts(stored)
    assert part["state"] == "output-available"
    # Reloaded, the page shows the same: the request, its approval, the output and the answer.
    page.reload()
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(tool.get_by_test_id("approval-outcome")).to_have_text("Approved.")
    expect(reply(page).get_by_test_id("text").last).to_contain_text("Done: a table for 2")


def test_deny_after_a_reload_while_waiting(page: Page, demo: DemoStack) -> None:
    send(page, "Please book a table for four at Chez Anna")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "approval-requested")
    wait_run_idle(demo, chat_id_of(page))
    page.reload()
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "approval-requested")
    expect(tool.get_by_test_id("approve")).to_be_enabled()
    tool.get_by_test_id("deny").click()
    expect(tool).to_have_attribute("data-state", "output-denied")
    expect(tool.get_by_test_id("approval-outcome")).to_contain_text("Denied")
    expect(tool.get_by_test_id("tool-output")).to_have_count(0)
    expect(reply(page).get_by_test_id("text").last).to_contain_text(
        "You did not approve the booking, so I did not book the table."
    )
    shot(page, "22-denied-after-reload")
    stored = wait_run_idle(demo, chat_id_of(page), until=_settled)
    [part] = booking_parts(stored)
    assert part["state"] == "output-denied"


def test_approve_after_a_reload_while_waiting(page: Page, demo: DemoStack) -> None:
    send(page, "Book a table at Nonna Rosa for 3 at 7pm")
    expect(page.get_by_test_id("tool")).to_have_attribute("data-state", "approval-requested")
    wait_run_idle(demo, chat_id_of(page))
    page.reload()
    tool = page.get_by_test_id("tool")
    tool.get_by_test_id("approve").click()
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(reply(page).get_by_test_id("text").last).to_contain_text(
        "Done: a table for 3 at Nonna Rosa at 7pm"
    )


def test_reload_while_the_approved_answer_streams(page: Page, demo: DemoStack) -> None:
    """The page reloaded mid-answer after Approve: the answer in flight is replayed onto the
    same bubble, after its request and approval, once."""
    send(page, "Book a table at Slow Lane for 2 at 8pm")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "approval-requested")
    tool.get_by_test_id("approve").click()
    wait_words(page, 5)
    page.reload()
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(reply(page).get_by_test_id("text").last).to_have_text(SLOW)
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
    expect(page.get_by_test_id("error")).to_have_count(0)
    shot(page, "23-reloaded-mid-approved-answer")


def test_a_task_backed_tool_shows_its_progress(page: Page, demo: DemoStack) -> None:
    """``write_report`` runs as a Celery task on the ``tools`` queue; its progress parts show as
    a bar with the stage it is at, then the tool's output and the answer."""
    send(page, "Write a report on tide pools")
    progress = page.locator("[data-testid=data-part][data-name=task-progress]")
    expect(progress).to_have_count(1)
    expect(progress.get_by_test_id("progress")).to_be_visible()
    expect(progress).to_contain_text("write_report")
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while progress.get_attribute("data-percent") != "100":
        seen.add(progress.get_by_test_id("progress-label").inner_text())
        assert time.monotonic() < deadline, f"the report never finished (saw {seen})"
        page.wait_for_timeout(50)
    shot(page, "24-task-progress")
    assert len(seen - {"Done"}) >= 2, f"only saw stages {seen}"
    expect(progress.get_by_test_id("progress-count")).to_have_text("5 / 5")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-tool", "write_report")
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(reply(page).get_by_test_id("text").last).to_contain_text("tide pools")


def test_a_request_left_unanswered_when_the_user_moves_on(page: Page, demo: DemoStack) -> None:
    send(page, "Book a table for 2 at Luigi's at 9pm")
    tool = page.get_by_test_id("tool")
    expect(tool).to_have_attribute("data-state", "approval-requested")
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
    send(page, "Never mind, tell me a joke")
    replies = page.locator("[data-testid=message][data-role=assistant]")
    expect(replies).to_have_count(2)
    expect(replies.last.get_by_test_id("text")).to_contain_text("Never mind")
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
    # The old request can no longer be answered: the model has moved on without it.
    expect(tool.get_by_test_id("approve")).to_be_disabled()
    expect(tool.get_by_test_id("deny")).to_be_disabled()
    expect(tool.get_by_test_id("approval")).to_contain_text("the conversation moved on")


def _settled(stored: dict[str, Any]) -> bool:
    """The stored chat holds the booking's answered state (no longer waiting on the user)."""
    parts = booking_parts(stored)
    return bool(parts) and parts[0]["state"] not in ("approval-requested", "approval-responded")
