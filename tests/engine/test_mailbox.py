"""The per-process mailbox: notices reach the runs it owns, in-process against a real Redis."""

from __future__ import annotations

import pytest

from chatworker import runs
from chatworker.engine.driver import RunDriver
from chatworker.engine.mailbox import Mailbox
from chatworker.engine.registry import get_task

from ..support import isolated_db, payload, user_message

pytestmark = pytest.mark.integration


def _quiet_mailbox() -> Mailbox:
    """A mailbox without its listener and maintenance threads: the test delivers notices."""
    mailbox = Mailbox()
    mailbox._started = True
    return mailbox


def test_a_stop_notice_racing_the_take_still_stops_that_turn(redis_url: str) -> None:
    # No worker listens on this database: the test plays the worker process itself.
    with isolated_db(redis_url, 12):
        handle = runs.trigger("sleepy", payload("race", user_message("first")))
        mailbox = _quiet_mailbox()
        verdict, local = mailbox.claim(handle.run_id)
        assert verdict == "ok" and local is not None
        driver = RunDriver(get_task("sleepy"), handle.run_id, local)
        input_id = runs.send_message(handle.run_id, payload("race", user_message("second")))

        # The stop's Pub/Sub notice is dispatched while the take's reply is in flight: the
        # run is not streaming that input yet, and Redis has no stop flag for it either.
        mailbox._dispatch(f"s {handle.run_id} {input_id} user")
        first = driver.take()
        assert first is not None and first.input_id != input_id
        assert local.stop is not None and not local.stop.signal.aborted  # not this turn's stop

        second = driver.take()
        assert second is not None and second.input_id == input_id
        assert local.stop is not None and local.stop.signal.aborted
        assert local.stop.signal.reason == "user"


def test_notices_for_runs_it_does_not_own_are_ignored(redis_url: str) -> None:
    with isolated_db(redis_url, 12):
        handle = runs.trigger("sleepy", payload("other", user_message("hi")))
        mailbox = _quiet_mailbox()
        verdict, local = mailbox.claim(handle.run_id)
        assert verdict == "ok" and local is not None
        mailbox._dispatch("m some-other-run")
        mailbox._dispatch("c some-other-run")
        assert not local.wake.is_set() and not local.cancel.signal.aborted
        mailbox._dispatch(f"m {handle.run_id}")
        assert local.wake.is_set()
        mailbox._dispatch(f"c {handle.run_id}")
        assert local.cancel.signal.aborted
