"""A ``stream_text`` run as AI SDK UI message chunks: ``toUIMessageStream`` and its options.

The options mean what they mean in the AI SDK: ``original_messages`` makes the response continue
a trailing assistant message (its id is reused), ``generate_message_id`` names a new response,
``message_metadata`` is asked for every part, and ``on_finish`` gets the assembled response once
the stream ends, however it ends (finished, aborted, or closed early by its reader).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chatworker.loops import run_sync
from chatworker.protocol.assemble import MessageAssembler
from chatworker.protocol.messages import UIMessage, parse_ui_message

__all__ = ["UIMessageStreamFinishEvent", "UIStreamOptions", "ui_message_chunks"]

log = logging.getLogger("chatworker.ai")

ErrorHandler = Callable[[BaseException], str]


@dataclass
class UIMessageStreamFinishEvent:
    """Passed to ``to_ui_message_stream(on_finish=...)`` once, when the UI stream ends."""

    messages: list[UIMessage]
    """``original_messages`` with the response appended (or replacing the continued message)."""
    response_message: UIMessage
    is_continuation: bool
    """True when the response continued the last of ``original_messages`` (an assistant's)."""
    is_aborted: bool
    """True when an ``abort`` chunk was sent or the reader closed the stream before its end."""
    finish_reason: str | None


@dataclass
class UIStreamOptions:
    """The options of :meth:`StreamTextResult.to_ui_message_stream` (see its docstring)."""

    message_id: str | None = None
    send_reasoning: bool = True
    send_sources: bool = False
    on_error: ErrorHandler | None = None
    send_start: bool = True
    send_finish: bool = True
    message_metadata: Callable[[dict[str, Any]], Any] | None = None
    original_messages: Sequence[UIMessage | dict[str, Any]] | None = None
    generate_message_id: Callable[[], str] | None = None
    on_finish: Callable[[UIMessageStreamFinishEvent], Any] | None = None


def ui_message_chunks(
    parts: Iterator[dict[str, Any]],
    options: UIStreamOptions,
    default_error_text: Callable[[BaseException], str],
    close_run: Callable[[], None],
) -> Iterator[dict[str, Any]]:
    """The UI chunks of ``parts``; ``close_run`` ends the run when the reader stops early."""
    originals = [parse_ui_message(m) for m in options.original_messages or []]
    last = originals[-1] if originals and originals[-1].role == "assistant" else None
    message_id = last.id if last is not None else options.message_id
    if message_id is None and options.generate_message_id is not None:
        message_id = options.generate_message_id()
    assembler = (MessageAssembler(message_id or "", previous=last)
                 if options.on_finish is not None else None)
    ended = False
    try:
        for part in parts:
            for chunk in _chunks_of(part, options, message_id, default_error_text):
                if assembler is not None:
                    assembler.feed(chunk)
                yield chunk
        ended = True
    finally:
        if not ended:
            close_run()
        if assembler is not None and options.on_finish is not None:
            _call_on_finish(options.on_finish, assembler, originals, last, aborted=not ended)


def _chunks_of(part: dict[str, Any], options: UIStreamOptions, message_id: str | None,
               default_error_text: Callable[[BaseException], str]) -> list[dict[str, Any]]:
    """The chunks one part becomes: itself (unless an option drops it), with metadata."""
    kind = part["type"]
    metadata = (_call_metadata(options.message_metadata, part)
                if options.message_metadata is not None else None)
    chunk = _to_chunk(part, options, message_id, default_error_text)
    out: list[dict[str, Any]] = []
    if chunk is not None and kind in ("start", "finish") and metadata is not None:
        chunk["messageMetadata"] = metadata
    if chunk is not None and kind != "finish-step":
        out.append(chunk)
    if metadata is not None and kind not in ("start", "finish"):
        out.append({"type": "message-metadata", "messageMetadata": metadata})
    if chunk is not None and kind == "finish-step":
        out.append(chunk)
    return out


def _to_chunk(part: dict[str, Any], options: UIStreamOptions, message_id: str | None,
              default_error_text: Callable[[BaseException], str]) -> dict[str, Any] | None:
    kind = part["type"]
    if kind == "start":
        if not options.send_start:
            return None
        return {"type": "start", "messageId": message_id} if message_id else {"type": "start"}
    if kind == "finish" and not options.send_finish:
        return None
    if kind.startswith("reasoning-") and not options.send_reasoning:
        return None
    if kind == "source-url" and not options.send_sources:
        return None
    chunk = {key: value for key, value in part.items() if key != "error"}
    if "error" in part:
        chunk["errorText"] = _error_text(options.on_error, part["error"], default_error_text)
    return chunk


def _error_text(on_error: ErrorHandler | None, error: BaseException,
                default: Callable[[BaseException], str]) -> str:
    if on_error is None:
        return default(error)
    try:
        text = on_error(error)
    except Exception:
        log.exception("on_error callback failed")
        return default(error)
    return text if isinstance(text, str) else str(text)


def _call_metadata(fn: Callable[[dict[str, Any]], Any], part: dict[str, Any]) -> Any:
    try:
        return fn({key: value for key, value in part.items()})
    except Exception:
        log.exception("message_metadata callback failed")
        return None


def _call_on_finish(fn: Callable[[UIMessageStreamFinishEvent], Any], assembler: MessageAssembler,
                    originals: list[UIMessage], last: UIMessage | None, *, aborted: bool) -> None:
    response = assembler.message
    continuation = last is not None and response.id == last.id
    before = originals[:-1] if continuation else originals
    event = UIMessageStreamFinishEvent(
        messages=[*before, response], response_message=response, is_continuation=continuation,
        is_aborted=aborted or assembler.aborted, finish_reason=assembler.finish_reason,
    )
    try:
        result = fn(event)
        if inspect.isawaitable(result):
            run_sync(result)  # an async def callback, on the run's loop
    except Exception:
        log.exception("to_ui_message_stream: on_finish callback failed")
