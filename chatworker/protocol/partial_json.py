"""A best-effort parser for a JSON prefix: the input of a tool call while it streams.

A port of the AI SDK's ``parsePartialJson`` (the standard library parses only whole documents),
so the assistant message shows the same partial tool input the browser does.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_partial_json"]

_MISSING: Any = object()
_LITERALS = (("true", True), ("false", False), ("null", None))
_WS = " \t\n\r"


class _Invalid(Exception):
    pass


class _PartialParser:
    """Parses a JSON prefix, returning the value a completion of it would at least contain."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.i = 0

    def skip_ws(self) -> None:
        while self.i < self.n and self.text[self.i] in _WS:
            self.i += 1

    def value(self) -> tuple[Any, bool]:
        """Return (value or _MISSING, complete)."""
        self.skip_ws()
        if self.i >= self.n:
            return _MISSING, False
        ch = self.text[self.i]
        if ch == "{":
            return self.obj()
        if ch == "[":
            return self.arr()
        if ch == '"':
            return self.string()
        if ch in "-0123456789":
            return self.number()
        return self.literal()

    def obj(self) -> tuple[Any, bool]:
        self.i += 1
        result: dict[str, Any] = {}
        while True:
            self.skip_ws()
            if self.i >= self.n:
                return result, False
            if self.text[self.i] == "}":
                self.i += 1
                return result, True
            if self.text[self.i] == ",":
                if not result:
                    raise _Invalid
                self.i += 1
                self.skip_ws()
                if self.i >= self.n:
                    return result, False
            if self.text[self.i] != '"':
                raise _Invalid
            key, complete = self.string()
            if not complete:
                return result, False
            self.skip_ws()
            if self.i >= self.n:
                return result, False
            if self.text[self.i] != ":":
                raise _Invalid
            self.i += 1
            item, complete = self.value()
            if item is _MISSING:
                return result, False
            result[key] = item
            if not complete:
                return result, False

    def arr(self) -> tuple[Any, bool]:
        self.i += 1
        result: list[Any] = []
        while True:
            self.skip_ws()
            if self.i >= self.n:
                return result, False
            if self.text[self.i] == "]":
                self.i += 1
                return result, True
            if self.text[self.i] == ",":
                if not result:
                    raise _Invalid
                self.i += 1
            item, complete = self.value()
            if item is _MISSING:
                return result, False
            result.append(item)
            if not complete:
                return result, False

    def string(self) -> tuple[Any, bool]:
        start = self.i
        self.i += 1
        while self.i < self.n:
            ch = self.text[self.i]
            if ch == "\\":
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return json.loads(self.text[start : self.i]), True
            self.i += 1
        # unterminated: close it, dropping a dangling escape sequence
        body = self.text[start + 1 :]
        for cut in range(len(body), max(len(body) - 6, -1), -1):
            try:
                return json.loads('"' + body[:cut] + '"'), False
            except ValueError:
                continue
        raise _Invalid

    def number(self) -> tuple[Any, bool]:
        start = self.i
        while self.i < self.n and self.text[self.i] in "+-0123456789.eE":
            self.i += 1
        token = self.text[start : self.i]
        at_end = self.i >= self.n
        try:
            return json.loads(token), not at_end
        except ValueError:
            if not at_end:
                raise _Invalid from None
        trimmed = token.rstrip("+-.eE")
        if not trimmed or trimmed == "-":
            return _MISSING, False
        try:
            return json.loads(trimmed), False
        except ValueError:
            raise _Invalid from None

    def literal(self) -> tuple[Any, bool]:
        rest = self.text[self.i : self.i + 5]
        for word, val in _LITERALS:
            if rest.startswith(word):
                self.i += len(word)
                return val, True
            if self.i + len(rest) >= self.n and word.startswith(rest):
                self.i = self.n
                return val, False
        raise _Invalid


def parse_partial_json(text: str) -> Any:
    """Best-effort parse of a JSON prefix (streamed tool input); None when nothing parses.

    Open strings, arrays and objects are closed, partial literals completed and a trailing
    incomplete key dropped, like the AI SDK's ``parsePartialJson``.
    """
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    parser = _PartialParser(text)
    try:
        value, _ = parser.value()
    except (_Invalid, ValueError, IndexError):
        return None
    return None if value is _MISSING else value
