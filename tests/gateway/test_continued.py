"""The /ui replay filter: a turn continuing a message (an approval's answer) loses its start."""

from __future__ import annotations

import json

from chatworker.gateway.continued import ContinuedStart

START = json.dumps({"type": "start", "messageId": "m1"})


def feed(*chunks: dict[str, object]) -> list[str]:
    continued = ContinuedStart()
    out = [sent for chunk in chunks for sent in continued.chunk(json.dumps(chunk))]
    return [json.loads(sent)["type"] for sent in out + continued.release()]


def test_a_continuing_turn_loses_its_start() -> None:
    for outcome in ("tool-output-available", "tool-output-denied", "tool-output-error"):
        assert feed({"type": "start", "messageId": "m1"}, {"type": outcome, "toolCallId": "c"},
                     {"type": "start-step"}) == [outcome, "start-step"]  # fmt: skip


def test_a_new_message_keeps_its_start() -> None:
    assert feed({"type": "start"}, {"type": "start-step"}, {"type": "text-start", "id": "t"}) == [
        "start", "start-step", "text-start",
    ]  # fmt: skip


def test_a_start_alone_goes_out_when_the_turn_ends() -> None:
    assert feed({"type": "start"}) == ["start"]
    assert feed({"type": "start-step"}) == ["start-step"]


def test_a_restarted_attempt_of_a_continuing_turn_loses_its_start_too() -> None:
    assert feed({"type": "start"}, {"type": "tool-output-available", "toolCallId": "c"},
                {"type": "abort"}, {"type": "start"}, {"type": "start-step"}) == [
        "tool-output-available", "abort", "start-step",
    ]  # fmt: skip
    assert feed({"type": "start"}, {"type": "start-step"}, {"type": "start"}) == [
        "start", "start-step", "start",
    ]  # fmt: skip
