"""``ui_message_stream_options``: the options every task level accepts, in snake or camel case."""

from __future__ import annotations

from typing import Any

_STREAM_KEYS = {
    "on_error": "on_error", "onError": "on_error",
    "send_reasoning": "send_reasoning", "sendReasoning": "send_reasoning",
    "send_sources": "send_sources", "sendSources": "send_sources",
    "send_start": "send_start", "send_finish": "send_finish",
    "message_metadata": "message_metadata",
}


def normalize_stream_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Normalise ``ui_message_stream_options`` keys (snake or camel case); reject unknown ones."""
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key not in _STREAM_KEYS:
            raise ValueError(
                f"unknown ui_message_stream_options key {key!r} "
                f"(known: on_error, send_reasoning, send_sources)"
            )
        out[_STREAM_KEYS[key]] = value
    return out
