"""Two windows on one chat, in headless Chromium: each follows the other live (follow mode).

Each window is its own browser context (no shared storage: two devices). Everything is real:
the built page, a gunicorn gateway, a celery worker running ``web.demo_tasks``, Redis, and a
scripted model server with slow replies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatworker.testing import ModelServer, Text

from ..support import ARTIFACTS, ROOT
from .browser_support import CHROMIUM_ARGS, DemoStack, chromium_path, demo_stack

try:
    from playwright.sync_api import Browser, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SHOTS = ARTIFACTS / "browser"
DIST = ROOT / "web" / "dist" / "index.html"


def story(tag: str, words: int) -> str:
    """A reply whose words are all distinct, so any duplicated text shows."""
    return " ".join(f"{tag}{i}" for i in range(1, words + 1)) + "."


FIRST = story("a", 40)
SECOND = story("b", 40)
THIRD = story("c", 40)
LONG = story("l", 200)


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    server = ModelServer(port=0, default_reply=[Text("Hello from the scripted model.")])
    server.on("first story", [Text(FIRST, tokens_per_second=20)])
    server.on("second story", [Text(SECOND, tokens_per_second=20)])
    server.on("third story", [Text(THIRD, tokens_per_second=20)])
    server.on("long story", [Text(LONG, tokens_per_second=20)])
    server.on("regen", [Text("First answer.")], once=True)
    server.on("regen", [Text("Second answer.")])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("the `playwright` Python package is missing: pip install playwright")
    if not DIST.is_file():
        pytest.fail("web/dist is missing: run `npm ci && npm run build` in web (builds the page)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(
    redis_url: str, model: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    path = tmp_path_factory.mktemp("follow") / "demo.sqlite3"
    with demo_stack(redis_url, 14, model.base_url, path) as stack:
        yield stack
    assert "Traceback" not in stack.gateway.log(), stack.logs()


class Window:
    """One browser window of its own (a device): its page and the errors it raised."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1100, "height": 800})
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(url)
        self.page.get_by_test_id("composer-input").wait_for()

    def send(self, text: str) -> None:
        self.page.get_by_test_id("composer-input").fill(text)
        self.page.get_by_test_id("send").click()

    def messages(self) -> list[tuple[str, str]]:
        """Every message shown: (role, its text)."""
        found = self.page.locator("[data-testid=message]")
        return [
            (found.nth(i).get_attribute("data-role") or "", found.nth(i).locator(".parts")
             .inner_text().strip())
            for i in range(found.count())
        ]  # fmt: skip

    def last_reply(self) -> object:
        return self.page.locator("[data-testid=message][data-role=assistant]").last.get_by_test_id(
            "text"
        )

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def windows(browser: Browser, demo: DemoStack) -> Iterator[tuple[Window, Window]]:
    one = Window(browser, demo.url + "/")
    # The second window opens the same chat (its address), before anything was said in it.
    two = Window(browser, one.page.url)
    yield one, two
    one.close()
    two.close()


def same_messages(one: Window, two: Window, count: int) -> list[tuple[str, str]]:
    """Wait until both windows show the same ``count`` messages; return them."""
    deadline = time.monotonic() + 20
    while True:
        seen = one.messages(), two.messages()
        if seen[0] == seen[1] and len(seen[0]) == count:
            return seen[0]
        assert time.monotonic() < deadline, f"the windows differ: {seen}"
        time.sleep(0.1)


def test_two_windows_follow_each_other(windows: tuple[Window, Window]) -> None:
    one, two = windows
    one.send("first story please")
    # The other window shows the message and the reply while it streams, without a reload.
    expect(two.page.locator("[data-testid=message][data-role=user] .parts")).to_have_text(
        ["first story please"]
    )
    expect(two.page.get_by_test_id("conversation")).to_have_attribute(
        "data-following", "streaming"
    )
    expect(two.last_reply()).to_have_text(FIRST)
    expect(two.page.get_by_test_id("conversation")).to_have_attribute("data-following", "idle")
    expect(one.last_reply()).to_have_text(FIRST)
    two.page.screenshot(path=str(SHOTS / "follow-01-second-window.png"))

    # And the other way round: the second window sends, the first follows.
    two.send("second story please")
    expect(one.page.get_by_test_id("conversation")).to_have_attribute(
        "data-following", "streaming"
    )
    expect(one.last_reply()).to_have_text(SECOND)
    shown = same_messages(one, two, 4)
    assert shown == [
        ("user", "first story please"),
        ("assistant", FIRST),
        ("user", "second story please"),
        ("assistant", SECOND),
    ]

    # A regenerate in one window replaces the reply in the other.
    one.send("regen please")
    expect(two.last_reply()).to_have_text("First answer.")
    expect(one.last_reply()).to_have_text("First answer.")
    one.page.get_by_test_id("regenerate").click()
    expect(two.last_reply()).to_have_text("Second answer.")
    shown = same_messages(one, two, 6)
    assert shown[-2:] == [("user", "regen please"), ("assistant", "Second answer.")]


def test_a_message_sent_mid_reply_carries_the_composer_choice(
    windows: tuple[Window, Window],
) -> None:
    one, two = windows
    one.send("long story please")
    expect(two.page.get_by_test_id("conversation")).to_have_attribute(
        "data-following", "streaming"
    )
    # While the reply streams, the composer of either window offers what to do with a message.
    choice = two.page.get_by_test_id("while-streaming")
    expect(choice).to_have_value("queue")
    expect(choice.locator("option")).to_have_text(["Queue", "Interrupt", "Steer"])
    requests: list[dict[str, object]] = []
    two.page.on(
        "request",
        lambda request: requests.append(request.post_data_json)
        if request.method == "POST" and "/input/messages" in request.url
        else None,
    )
    two.send("third story please")
    # Queued: the message shows at once, and is answered after the reply in progress.
    expect(two.page.locator("[data-testid=message][data-role=user] .parts")).to_have_text(
        ["long story please", "third story please"]
    )
    expect(one.last_reply()).to_have_text(THIRD, timeout=30_000)
    shown = same_messages(one, two, 4)
    assert [text for _, text in shown] == [
        "long story please", LONG, "third story please", THIRD,
    ]
    assert requests and requests[-1]["whileStreaming"] == "queue"
    assert [p["parts"][0]["text"] for p in requests[-1]["messages"]] == [  # type: ignore[index]
        "third story please"
    ]


def test_following_goes_on_in_a_continuation_run(
    browser: Browser, redis_url: str, model: ModelServer, tmp_path: Path
) -> None:
    """The chat's run ends (short turn timeout); the next message, from the other window,
    continues it in a new run, which the first window follows too."""
    env = {"CHATWORKER_DEMO_WARM_TIMEOUT": "0.3", "CHATWORKER_DEMO_TURN_TIMEOUT": "1.5"}
    with demo_stack(redis_url, 15, model.base_url, tmp_path / "demo.sqlite3", **env) as stack:
        one = Window(browser, stack.url + "/")
        two = Window(browser, one.page.url)
        one.send("hello there")
        expect(two.last_reply()).to_have_text("Hello from the scripted model.")
        chat_id = one.page.url.split("chat=")[1].split("&")[0]
        deadline = time.monotonic() + 20
        while True:
            stored = stack.stored_chat(chat_id) or {}
            session = stored.get("session") or {}
            if session:
                info = stack.run_info(session["runId"], session["publicAccessToken"])
                if info["status"] == "completed":
                    break
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.2)
        first_run = session["runId"]
        two.send("second story please")
        expect(one.page.get_by_test_id("conversation")).to_have_attribute(
            "data-following", "streaming"
        )
        expect(one.last_reply()).to_have_text(SECOND)
        shown = same_messages(one, two, 4)
        assert [role for role, _ in shown] == ["user", "assistant"] * 2
        deadline = time.monotonic() + 10
        while (stack.stored_chat(chat_id) or {}).get("session", {}).get("runId") == first_run:
            assert time.monotonic() < deadline, "no continuation run"
            time.sleep(0.1)
        # The first window now sends to the new run as well.
        one.send("third story please")
        expect(two.last_reply()).to_have_text(THIRD)
        same_messages(one, two, 6)
        one.close()
        two.close()


def test_interrupt_from_the_other_window_stops_the_reply_and_answers_next(
    windows: tuple[Window, Window],
) -> None:
    one, two = windows
    one.send("long story please")
    expect(two.page.get_by_test_id("conversation")).to_have_attribute(
        "data-following", "streaming"
    )
    expect(two.last_reply()).to_contain_text("l3 ")
    two.page.get_by_test_id("while-streaming").select_option("interrupt")
    two.send("third story please")
    # The reply in progress stops where it was (in both windows), and the new message is
    # answered next.
    expect(one.last_reply()).to_have_text(THIRD, timeout=30_000)
    shown = same_messages(one, two, 4)
    assert [text for _, text in shown][2:] == ["third story please", THIRD]
    partial = shown[1][1]
    assert partial.startswith("l1 l2") and "l200." not in partial


def test_steer_from_the_other_window_joins_the_reply_in_both(
    windows: tuple[Window, Window],
) -> None:
    one, two = windows
    one.send("long story please")
    expect(two.last_reply()).to_contain_text("l3 ")
    two.page.get_by_test_id("while-streaming").select_option("steer")
    two.send("third story please")
    # The message joins the reply in progress (shown inside it, in both windows), and the
    # reply goes on to answer it: one user message, one reply.
    for window in (one, two):
        reply = window.page.locator("[data-testid=message][data-role=assistant]").last
        expect(reply.get_by_test_id("steering")).to_have_text("↪ third story please",
                                                             timeout=30_000)  # fmt: skip
        expect(reply.get_by_test_id("text").last).to_have_text(THIRD, timeout=30_000)
    shown = same_messages(one, two, 2)
    assert shown[0] == ("user", "long story please")
    assert LONG in shown[1][1] and shown[1][1].endswith(THIRD)
