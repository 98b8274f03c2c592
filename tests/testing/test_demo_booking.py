"""The demo's ``book_table``: which messages the offline demo model books a table for, and what
it says once the user approved (the booking) or denied (no booking, and why)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatworker.testing.demo import DEMO_TOOLS
from chatworker.testing.demo_booking import BookingArgs, book_table, booking_request
from chatworker.testing.demo_model import demo_reply
from chatworker.testing.script import Text, ToolCall

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {}}} for name in DEMO_TOOLS]


def reply(messages: list[dict[str, Any]]) -> list[Any]:
    return demo_reply({"messages": messages, "tools": TOOLS}, tokens_per_second=None)


def test_book_table_needs_approval() -> None:
    assert DEMO_TOOLS["book_table"] is book_table
    assert book_table.needs_approval is True


@pytest.mark.parametrize(("text", "args"), [
    ("Book a table for 2 at Luigi's at 8pm",
     {"restaurant": "Luigi's", "time": "8pm", "people": 2}),
    ("Please book a table for four at Chez Anna",
     {"restaurant": "Chez Anna", "time": "19:00", "people": 4}),
    ("Can you reserve a table at Nonna Rosa for 3 at 7:30?",
     {"restaurant": "Nonna Rosa", "time": "7:30", "people": 3}),
    ("book me a table tonight",
     {"restaurant": "Trattoria Demo", "time": "tonight", "people": 2}),
])  # fmt: skip
def test_table_requests_call_book_table(text: str, args: dict[str, Any]) -> None:
    assert booking_request(text) == args
    calls = [step for step in reply([{"role": "user", "content": text}])
             if isinstance(step, ToolCall)]  # fmt: skip
    assert [(c.name, c.arguments) for c in calls] == [("book_table", args)]
    BookingArgs.model_validate(args)


@pytest.mark.parametrize("text", ["The table is wobbly", "I read a book", "What's the weather?"])
def test_other_messages_book_nothing(text: str) -> None:
    assert booking_request(text) is None


def after(content: str) -> str:
    """The demo model's answer once the booking's tool message says ``content``."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "book_table", "arguments": "{}"}}  # fmt: skip
    steps = reply([
        {"role": "user", "content": "Book a table for 2 at Luigi's at 8pm"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": content},
    ])
    assert not any(isinstance(step, ToolCall) for step in steps)
    return " ".join(step.text for step in steps if isinstance(step, Text))


def test_the_answer_after_an_approved_booking() -> None:
    output = book_table.run(BookingArgs(restaurant="Luigi's", time="8pm", people=2), None)  # type: ignore[arg-type]
    assert output["booked"] is True and output["confirmation"].startswith("DEMO-")
    assert f"Done: a table for 2 at Luigi's at 8pm, confirmation {output['confirmation']}." in (
        after(json.dumps(output))
    )


def test_the_answer_after_a_denial() -> None:
    assert "You did not approve the booking, so I did not book the table." in after(
        "Tool execution denied."
    )
    assert "You did not approve the booking (Not tonight), so I did not" in after("Not tonight")
