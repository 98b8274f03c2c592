"""Demo tools (``get_weather``, ``get_time``, ``book_table``) for the offline demo chat; no network
needed. ``book_table`` needs the user's approval before it runs (made-up effects)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

from chatworker.ai import Tool, tool

from .demo_booking import book_table

__all__ = ["DEMO_TOOLS", "TimeArgs", "WeatherArgs", "book_table", "get_time", "get_weather"]

_CONDITIONS = ("sunny", "partly cloudy", "overcast", "light rain", "windy", "foggy", "snowy")


class WeatherArgs(BaseModel):
    """Arguments of ``get_weather``."""

    city: str = Field(description="The city, e.g. 'Berlin'.")


class TimeArgs(BaseModel):
    """Arguments of ``get_time``."""

    timezone: str = Field(default="UTC", description="An IANA time zone, e.g. 'Europe/Paris'.")


def _weather(args: WeatherArgs) -> dict[str, Any]:
    digest = hashlib.sha256(args.city.strip().lower().encode()).digest()
    return {
        "city": args.city,
        "temperature_c": digest[0] % 30 - 2,
        "conditions": _CONDITIONS[digest[1] % len(_CONDITIONS)],
        "note": "demo data, not a real forecast",
    }


def _time(args: TimeArgs) -> dict[str, Any]:
    try:
        zone = ZoneInfo(args.timezone)
        name = args.timezone
    except (ZoneInfoNotFoundError, ValueError):
        zone, name = ZoneInfo("UTC"), "UTC"
    now = dt.datetime.now(zone)
    return {"timezone": name, "time": now.strftime("%H:%M"), "iso": now.isoformat("T", "seconds")}


get_weather: Tool = tool(
    description="Get the current weather for a city (made-up demo data).",
    parameters=WeatherArgs,
    execute=_weather,
)

get_time: Tool = tool(
    description="Get the current time in a time zone.",
    parameters=TimeArgs,
    execute=_time,
)

DEMO_TOOLS: dict[str, Tool] = {
    "get_weather": get_weather,
    "get_time": get_time,
    "book_table": book_table,
}
"""Pass as ``stream_text(tools=DEMO_TOOLS, max_steps=2)`` in a demo chat task."""
