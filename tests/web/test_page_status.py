"""What the demo page says about a reply beyond its text, in a real browser: a reply the user
stopped is labelled so (live and after a reload), a new chat asks the server for nothing that
fails, and a reply whose worker died says it is waiting for one within seconds.

The same real stack as ``test_browser.py`` (its fixtures): the built page, gunicorn, celery,
Redis and the scripted model server.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect

from chatworker.testing import ModelServer

from ..support import Worker
from . import test_browser
from .browser_support import DemoStack, demo_stack
from .test_browser import assistant_text, chat_id_of, send, shot, wait_run_idle, wait_words

# test_browser's fixtures: the model server, Chromium, the demo stack and a page on it.
model, browser, demo, page = test_browser.model, test_browser.browser, test_browser.demo, \
    test_browser.page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_a_stopped_reply_is_labelled_live_and_after_reload(page: Page, demo: DemoStack) -> None:
    send(page, "stop me please")
    wait_words(page, 5)
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
    stopped = page.locator("[data-testid=message][data-role=assistant] [data-testid=stopped]")
    expect(stopped).to_have_count(1)
    expect(stopped).to_have_text("stopped")
    shot(page, "10-stopped-label")
    wait_run_idle(demo, chat_id_of(page))
    page.reload()
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(1)
    expect(stopped).to_have_count(1)
    # A reply answered in full gets no label; the stopped one keeps its label after it.
    send(page, "slow story after the stop")
    expect(page.locator("[data-testid=message][data-role=assistant]")).to_have_count(2)
    expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
    wait_run_idle(demo, chat_id_of(page))
    page.reload()
    replies = page.locator("[data-testid=message][data-role=assistant]")
    expect(replies).to_have_count(2)
    expect(replies.nth(0).get_by_test_id("stopped")).to_have_count(1)
    expect(replies.nth(1).get_by_test_id("stopped")).to_have_count(0)


def test_a_new_chat_makes_no_failing_request(browser: Browser, demo: DemoStack) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    failed: list[str] = []
    errors: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.request.method} {response.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("response", on_response)
    page.on("console", on_console)
    # The transport ends a finished reply's stream itself (aborted): that is no failure.
    page.on("requestfailed", lambda request: request.failure != "net::ERR_ABORTED"
            and failed.append(f"{request.failure} {request.url}"))
    try:
        page.goto(demo.url + "/")  # opens on a new chat
        expect(page.get_by_test_id("composer-input")).to_be_visible()
        page.get_by_test_id("new-chat").click()
        expect(page.get_by_test_id("composer-input")).to_be_visible()
        send(page, "hello there")
        expect(assistant_text(page)).to_have_text("Hello from the scripted model.")
        page.get_by_test_id("new-chat").click()
        expect(page.get_by_test_id("message")).to_have_count(0)
        page.reload()  # a new chat's URL, reloaded before its first message
        expect(page.get_by_test_id("composer-input")).to_be_visible()
        page.wait_for_timeout(500)
    finally:
        context.close()
    assert not failed, failed
    assert not errors, errors


def test_a_reply_whose_worker_died_says_it_waits_for_one(
    browser: Browser, redis_url: str, model: ModelServer, tmp_path: Path
) -> None:
    """Only one worker, killed mid-reply: nothing takes the run over until a new one starts."""
    with demo_stack(redis_url, 13, model.base_url, tmp_path / "demo.sqlite3") as stack:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto(stack.url + "/")
        send(page, "stop me please")
        wait_words(page, 5)
        expect(page.get_by_test_id("stall")).to_have_count(0)  # a healthy stream
        stack.worker.stop(signal.SIGKILL)
        # Seconds after the kill (the lease lapses, the gateway notices); the transport would
        # give up on the reply only much later.
        expect(page.get_by_test_id("stall")).to_have_text(
            "Waiting for the chat worker…", timeout=20_000
        )
        expect(page.get_by_test_id("stop")).to_be_visible()
        shot(page, "11-waiting-for-a-worker")
        rescuer = Worker(stack.worker.env, pool="gevent", concurrency=20, name="rescuer").start()
        try:
            # The new worker takes the run over and answers again: the notice goes.
            expect(page.get_by_test_id("stall")).to_have_count(0, timeout=30_000)
        finally:
            context.close()
            rescuer.stop()


def test_a_reply_whose_gateway_died_says_it_waits(
    browser: Browser, redis_url: str, model: ModelServer, tmp_path: Path
) -> None:
    """The connection itself is gone (the only gateway killed): the notice comes within seconds,
    while the transport still tries to reconnect."""
    with demo_stack(redis_url, 13, model.base_url, tmp_path / "demo.sqlite3") as stack:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        context.set_default_timeout(20_000)
        page = context.new_page()
        try:
            page.goto(stack.url + "/")
            send(page, "stop me please")
            wait_words(page, 5)
            assert stack.gateway.proc is not None
            os.killpg(stack.gateway.proc.pid, signal.SIGKILL)
            expect(page.get_by_test_id("stall")).to_have_text(
                "Waiting for the chat worker…", timeout=20_000
            )
        finally:
            context.close()
