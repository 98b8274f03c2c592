"""A run's dashboard timeline, from control chunks and record fields as the engine writes them."""

from __future__ import annotations

from chatworker.gateway.timeline import timeline


def test_turns_stops_suspension_resume_recovery_and_end() -> None:
    record = {"task_id": "t", "created_at": "1000", "suspended_at": "5000", "recoveries": "1",
              "status": "completed", "updated_at": "9000"}
    chunks = [
        ("1100-0", {"type": "__turn_start", "turn": 0, "trigger": "submit-message"}),
        ("1500-0", {"type": "__turn_complete", "turn": 0, "stopped": False}),
        ("2000-0", {"type": "__turn_start", "turn": 1, "inputId": "i1"}),
        ("2100-0", {"type": "abort", "reason": "worker lost"}),
        ("2600-0", {"type": "__turn_start", "turn": 1, "inputId": "i1"}),
        ("2900-0", {"type": "abort", "reason": "stopped"}),
        ("3000-0", {"type": "__turn_complete", "turn": 1, "stopped": True}),
        ("6000-0", {"type": "__turn_start", "turn": 2, "inputId": "i2"}),
        ("6100-0", {"type": "error", "errorText": "model down"}),
        ("6200-0", {"type": "__turn_complete", "turn": 2, "stopped": False}),
        ("7000-0", {"type": "__run_end", "status": "completed", "reason": "turn_timeout"}),
    ]
    events = timeline(record, chunks)
    assert [(e["at"], e["kind"]) for e in events] == [
        (1000, "created"), (1100, "turn"), (1500, "turn-end"), (2000, "turn"),
        (2100, "recovered"), (2600, "turn"), (3000, "stopped"),
        (5000, "suspended"), (6000, "resumed"), (6000, "turn"), (6100, "error"),
        (6200, "turn-end"), (7000, "ended"),
    ]
    assert events[-1]["text"] == "run completed (turn_timeout)"
    assert "model down" in events[10]["text"]


def test_a_suspended_run_and_a_recovery_between_turns() -> None:
    record = {"created_at": "1000", "suspended_at": "3000", "status": "suspended",
              "recoveries": "1", "updated_at": "2500"}
    chunks = [("1100-0", {"type": "__turn_start", "turn": 0}),
              ("1200-0", {"type": "__turn_complete", "turn": 0, "stopped": False})]
    kinds = [e["kind"] for e in timeline(record, chunks)]
    assert kinds == ["created", "turn", "turn-end", "recovered", "suspended"]
