"""The demo's booking: ``book_table`` asks the user's approval before it runs (made-up effects).

The tool (:data:`book_table`, ``needs_approval=True``) and what the offline demo model makes of
it: which messages ask for a table (:func:`booking_request`), and how it words the result or the
denial it gets back (:func:`describe_booking`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, Field

from chatworker.ai import Tool, tool

__all__ = ["BookingArgs", "book_table", "booking_request", "describe_booking"]


class BookingArgs(BaseModel):
    """Arguments of ``book_table``."""

    restaurant: str = Field(description="The restaurant's name, e.g. 'Luigi's'.")
    time: str = Field(default="19:00", description="When, e.g. '8pm' or '20:00'.")
    people: int = Field(default=2, ge=1, le=20, description="How many people.")


def _book(args: BookingArgs) -> dict[str, Any]:
    digest = hashlib.sha256(f"{args.restaurant}|{args.time}|{args.people}".encode()).hexdigest()
    return {
        "booked": True,
        "restaurant": args.restaurant,
        "time": args.time,
        "people": args.people,
        "confirmation": f"DEMO-{digest[:6].upper()}",
        "note": "made-up booking: no restaurant was contacted",
    }


book_table: Tool = tool(
    description=(
        "Book a table at a restaurant (a demo: nothing is really booked). The user must "
        "approve each booking before it is made."
    ),
    parameters=BookingArgs,
    execute=_book,
    needs_approval=True,
)

_ASKS = re.compile(
    r"\b(?:book|reserve)\b[^.?!]*\btable\b|\btable\s+for\s+\w+|\b(?:make|need)\s+a\s+reservation\b",
    re.IGNORECASE,
)
_WHERE = re.compile(r"\b(?:at|in)\s+((?:[A-Z][\w'&-]*)(?:\s+[A-Z][\w'&-]*)*)")
_WHEN = re.compile(
    r"\b(\d{1,2}(?::\d{2})?\s*(?:am|pm)|\d{1,2}:\d{2}|noon|midnight|tonight|tomorrow)\b",
    re.IGNORECASE,
)
_PEOPLE = re.compile(r"\bfor\s+(\d{1,2}|one|two|three|four|five|six|seven|eight)\b", re.IGNORECASE)
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def booking_request(user_text: str) -> dict[str, Any] | None:
    """``book_table``'s arguments when the message asks for a table, else None.

    "Book a table for 2 at Luigi's at 8pm" → ``{"restaurant": "Luigi's", "time": "8pm",
    "people": 2}`` (a restaurant is made up when none is named).
    """
    if not _ASKS.search(user_text):
        return None
    where = _WHERE.search(user_text)
    when = _WHEN.search(user_text)
    people = _PEOPLE.search(user_text)
    count = people.group(1).lower() if people else "2"
    return {
        "restaurant": where.group(1) if where else "Trattoria Demo",
        "time": when.group(1) if when else "19:00",
        "people": int(count) if count.isdigit() else _NUMBERS[count],
    }


def describe_booking(content: Any) -> str:
    """The demo model's words for ``book_table``'s tool message: the booking, or its denial."""
    raw = content if isinstance(content, str) else json.dumps(content)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("booked") is True:
        return (
            f"Done: a table for {data.get('people')} at {data.get('restaurant')} at "
            f"{data.get('time')}, confirmation {data.get('confirmation')}."
        )
    said = raw.strip().strip('"')
    why = f" ({said})" if said and "denied" not in said.lower() else ""
    return f"You did not approve the booking{why}, so I did not book the table."
