"""The input of a tool call while it streams: a JSON prefix, parsed like the AI SDK's
``parsePartialJson`` so the assistant message shows the same partial input the browser does.
"""

from __future__ import annotations

import re
from typing import Any

import jiter

__all__ = ["parse_partial_json"]

# jiter drops a value cut off at the very end ('{"a": tr' -> {}), where the AI SDK completes a
# literal ('tr' -> true) and trims a number to its digits ('1.5e' -> 1.5); such a tail, when it
# is not inside a string (an even number of unescaped quotes), is finished before jiter runs.
_CUT_TAIL = re.compile(r"(?:^|(?<=[\s\[:,]))(t|tr|tru|f|fa|fal|fals|n|nu|nul)$|(?<=\d)[.eE+-]+$")
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_ESCAPE = re.compile(r"\\.", re.DOTALL)


def parse_partial_json(text: str) -> Any:
    """Best-effort parse of a JSON prefix (streamed tool input); None when nothing parses.

    Open strings, arrays and objects are closed, partial literals completed and a trailing
    incomplete key dropped.
    """
    cut = _CUT_TAIL.search(text, max(0, len(text) - 8))  # only the tail can be cut off
    if cut and _ESCAPE.sub("", text).count('"') % 2 == 0:
        literal = cut.group(1)
        text = text[: cut.start()] + (_LITERALS[literal[0]] if literal else "")
    try:
        return jiter.from_json(
            text.encode(), partial_mode="trailing-strings", allow_inf_nan=False, cache_mode="keys"
        )
    except ValueError:  # not JSON (or nothing yet); also a lone surrogate that cannot be encoded
        return None
