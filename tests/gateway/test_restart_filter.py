"""What the ``/ui`` routes send for a turn started again after its worker died (pure logic)."""

from __future__ import annotations

import json

from chatworker.gateway.restart import RESET_STEP, RestartFilter
from chatworker.protocol.accumulator import derive_id


def raw(chunk: dict[str, object]) -> str:
    return json.dumps(chunk, separators=(",", ":"))


START = raw({"type": "start", "messageId": "m"})
STEP = raw({"type": "start-step"})
TEXT = raw({"type": "text-delta", "id": "t", "delta": "w "})
LOST = raw({"type": "abort", "reason": "worker lost"})


def test_a_lost_attempt_is_reset_and_its_step_start_reused() -> None:
    f = RestartFilter()
    sent = [c for chunk in (START, STEP, TEXT, LOST) for c in f.chunk(chunk)]
    assert sent == [START, STEP, TEXT]  # the abort is held back
    sent = f.restart() + [c for chunk in (START, STEP, TEXT) for c in f.chunk(chunk)]
    assert sent == [RESET_STEP, START, TEXT]  # reset-step kept the step-start part
    # A second step of the new attempt is a step of its own.
    assert f.chunk(STEP) == [STEP]


def test_a_lost_attempt_without_a_step_keeps_the_new_attempts_step() -> None:
    f = RestartFilter()
    assert f.chunk(START) == [START] and f.chunk(LOST) == []
    assert f.restart() == [RESET_STEP]
    assert f.chunk(STEP) == [STEP]


def test_a_held_abort_stands_when_the_turn_does_not_start_again() -> None:
    f = RestartFilter()
    f.chunk(START)
    assert f.chunk(LOST) == []
    assert f.release() == [LOST]
    assert f.release() == []
    stopped = raw({"type": "abort", "reason": "stopped"})
    assert f.chunk(stopped) == [stopped]  # only a lost worker's abort is held


def test_derived_message_ids_are_stable_and_distinct() -> None:
    first = derive_id("run_a", "i0")
    assert first == derive_id("run_a", "i0")
    assert len(first) == 16 and first.isalnum()
    ids = {derive_id("run_a", f"i{n}") for n in range(200)} | {derive_id("run_b", "i0")}
    assert len(ids) == 201
