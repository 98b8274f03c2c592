"""A worker killed while the demo page watches it answer: the page shows the recovered reply once.

Everything is real, as in ``test_browser.py``: the built page, a gunicorn gateway, celery worker
processes, Redis, a scripted model server. The worker streaming the reply is killed with
SIGKILL; a new worker takes the run over from its lease and answers the turn again.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatworker.store import keys
from chatworker.testing import ModelServer, Text

from ..support import ARTIFACTS, ROOT, Worker
from .browser_support import CHROMIUM_ARGS, DemoStack, chromium_path, demo_stack

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SHOTS = ARTIFACTS / "browser"
DIST = ROOT / "web" / "dist" / "index.html"

#: A reply whose words are all distinct, so any repeated text shows.
REPLY = " ".join(f"k{i}" for i in range(1, 81)) + "."
ASSISTANT = "[data-testid=message][data-role=assistant]"


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = ModelServer(port=0, default_reply=[Text("Hello from the scripted model.")])
    server.on("recover", [Text(REPLY, tokens_per_second=20)])
    yield server.start()
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


def open_page(browser: Browser, url: str, errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(40_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return page


def bubbles(page: Page) -> list[str]:
    """The text of every assistant message on the page."""
    return [
        " ".join(m.get_by_test_id("text").all_inner_texts())
        for m in page.locator(ASSISTANT).all()
    ]


def stream_of(stack: DemoStack) -> list[dict[str, Any]]:
    """Every chunk of the (only) run's output stream, as Redis holds it."""
    names = [k for k in stack.redis.scan_iter(keys.output("*"))]
    assert len(names) == 1, names
    return [json.loads(f["c"]) for _, f in stack.redis.xrange(names[0], "-", "+")]


def test_killed_worker_mid_reply_page_shows_the_recovered_reply_once(
    browser: Browser, redis_url: str, model: ModelServer, tmp_path: Path
) -> None:
    with demo_stack(redis_url, 15, model.base_url, tmp_path / "demo.sqlite3") as stack:
        rescuer: Worker | None = None
        errors: list[str] = []
        try:
            page = open_page(browser, stack.url + "/", errors)
            page.get_by_test_id("composer-input").fill("recover this story")
            page.get_by_test_id("send").click()
            # The reply is streaming: a partial bubble is on the page.
            deadline = time.monotonic() + 20
            while len((bubbles(page) or [""])[-1].split()) < 8:
                assert time.monotonic() < deadline, f"no partial reply: {bubbles(page)}"
                page.wait_for_timeout(50)
            stack.worker.stop(signal.SIGKILL)
            partial = bubbles(page)
            assert len(partial) == 1 and 8 <= len(partial[0].split()) < 81, partial
            rescuer = Worker(stack.worker.env, pool="gevent", concurrency=20, name="rescuer15")
            rescuer.start()

            # A page opened while the turn is answered again replays it from the lost attempt.
            deadline = time.monotonic() + 30
            while sum(c["type"] == "__turn_start" for c in stream_of(stack)) < 2:
                assert time.monotonic() < deadline, "the turn was not started again"
                time.sleep(0.1)
            later = open_page(browser, page.url, errors)

            # While it recovers and after, the open page never shows a second bubble.
            deadline = time.monotonic() + 40
            while (now := bubbles(page)) != [REPLY]:
                assert len(now) <= 1, f"a second assistant bubble appeared: {now}"
                assert time.monotonic() < deadline, (
                    f"the page shows {now}; stream {[c['type'] for c in stream_of(stack)]}")
                page.wait_for_timeout(50)
            expect(page.get_by_test_id("conversation")).to_have_attribute("data-status", "ready")
            page.screenshot(path=str(SHOTS / "10-recovered-once.png"))
            expect(later.locator(ASSISTANT)).to_have_count(1)
            expect(later.locator(ASSISTANT).get_by_test_id("text")).to_have_text(REPLY)
            assert bubbles(page) == [REPLY]  # settled: still once

            # The stream really carried a lost attempt and its restart, under one message id.
            chunks = stream_of(stack)
            assert {"type": "abort", "reason": "worker lost"} in chunks
            starts = [c["messageId"] for c in chunks if c["type"] == "start"]
            assert len(starts) == 2 and starts[0] == starts[1], starts
            assert page.locator(ASSISTANT).get_attribute("data-id") == starts[0]

            # The stored history has the answer once, under the id the page shows.
            chat_id = page.url.split("chat=")[1].split("&")[0]
            deadline = time.monotonic() + 20
            while True:
                stored = stack.stored_chat(chat_id) or {}
                messages = stored.get("messages", [])
                if len(messages) == 2:
                    break
                assert time.monotonic() < deadline, stored
                time.sleep(0.1)
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert messages[1]["id"] == starts[0]
            texts = [p["text"] for p in messages[1]["parts"] if p["type"] == "text"]
            assert texts == [REPLY]

            # A page loaded afterwards shows it once too.
            page.reload()
            expect(page.locator(ASSISTANT)).to_have_count(1)
            expect(page.locator(ASSISTANT).get_by_test_id("text")).to_have_text(REPLY)
            assert not errors, errors
        finally:
            if rescuer is not None:
                rescuer.stop()
