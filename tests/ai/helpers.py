"""Reading a ``stream_text`` result as a client would: its UI message chunks, checked."""

from __future__ import annotations

from typing import Any

from chatworker.ai import StreamTextResult
from chatworker.testing.checks import assert_valid_ui_stream

#: The one-message conversation most tests send.
USER = [{"role": "user", "content": "hello"}]


def ui(result: StreamTextResult, **options: Any) -> list[dict[str, Any]]:
    """The result's UI message chunks, validated against the AI SDK's chunk schema."""
    chunks = list(result.to_ui_message_stream(**options))
    assert_valid_ui_stream(chunks)
    return chunks


def types(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["type"] for c in chunks]
