"""Log output: plain text by default, or one JSON object per line with
``CHATWORKER_LOG_FORMAT=json``, carrying the run id, chat id, task and turn of the run whose code
logged (worker) or whose route was called (gateway) as fields.

The engine tells which run is current with :func:`bind` (a context variable: each run's greenlet
or thread has its own); records logged outside any run have no run fields.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

#: The run fields a log record may carry, in the order JSON lines show them.
FIELDS = ("run_id", "chat_id", "task", "turn")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "chatworker_log_context", default=None)


def log_format() -> str:
    """``CHATWORKER_LOG_FORMAT``: ``text`` (default) or ``json``."""
    value = (os.environ.get("CHATWORKER_LOG_FORMAT") or "text").strip().lower()
    return "json" if value == "json" else "text"


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add run fields (``run_id``, ``chat_id``, ``task``, ``turn``) to what this context's log
    records carry; returns the token :func:`reset` takes to undo it."""
    current = _context.get() or {}
    return _context.set({**current, **{k: v for k, v in fields.items() if v not in (None, "")}})


def reset(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def current() -> dict[str, Any]:
    """The run fields bound in this context."""
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the run fields
    bound when the record was made, ``exc_info`` (a traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = getattr(record, "chatworker", None)
        if bound is None:
            bound = _context.get() or {}
        for name in FIELDS:
            if name in bound:
                data[name] = bound[name]
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class RunFieldsFilter(logging.Filter):
    """Captures the bound run fields on each record as it is made (before any handler thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "chatworker"):
            record.chatworker = _context.get() or {}
        return True


def use_json(handlers: list[logging.Handler] | None = None) -> None:
    """Format ``handlers`` (default: the root logger's) as JSON lines."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, RunFieldsFilter) for f in handler.filters):
            handler.addFilter(RunFieldsFilter())


def configure(default_level: str = "INFO") -> None:
    """Set up the root logger for a gateway process: ``CHATWORKER_LOG_LEVEL`` and
    ``CHATWORKER_LOG_FORMAT`` (a host app that configured logging itself is left alone, except
    that JSON is applied to its handlers when asked for)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=os.environ.get("CHATWORKER_LOG_LEVEL", default_level).upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    if log_format() == "json":
        use_json()


def extra(**fields: Any) -> dict[str, Any]:
    """``extra=`` for one log call outside a run's context: the bound fields plus ``fields``."""
    bound = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v not in (None, "")}}
    return {"chatworker": bound}
