"""Replaying a turn that continues a message the client already shows (an approval's answer).

After ``addToolApprovalResponse`` the next turn continues the same assistant message: its
``start`` carries that message's id and its first chunks are the outcomes of the answered calls
(``tool-output-available`` / ``-error`` / ``-denied``), which refer to tool parts of the earlier
turn. A client that replays a turn in flight from its start (the AI SDK's
``resumeStreamIsReplay``: a reload mid-answer) resets its message on the turn's first ``start``,
and those outcomes then name tool calls it no longer has. On such a replay the ``start`` of a
continuing turn is left out: the client goes on from the message as its history has it (the AI
SDK resumes onto the stored message whose tool part is ``approval-responded``), the same id.
"""

from __future__ import annotations

from .sse import parse_chunk

__all__ = ["CONTINUING_CHUNKS", "ContinuedStart"]

#: Chunk types that, first after ``start``, show that a turn continues an earlier tool call.
CONTINUING_CHUNKS = frozenset({
    "tool-output-available", "tool-output-error", "tool-output-denied", "tool-approval-response",
})  # fmt: skip


class ContinuedStart:
    """Feeds one turn's UI chunks (raw JSON, control chunks excluded) through, holding its
    ``start`` until the next chunk shows whether the turn continues a message (then it is
    dropped, and so is the ``start`` of an attempt restarted after a lost worker) or begins one
    (then it goes out first, unchanged)."""

    def __init__(self) -> None:
        self._held: str | None = None
        self._decided = False
        self._continues = False

    def chunk(self, raw: str) -> list[str]:
        """The chunks to send now for ``raw``."""
        if self._decided:
            if self._continues and '"start"' in raw and parse_chunk(raw).get("type") == "start":
                return []
            return [raw]
        kind = parse_chunk(raw).get("type")
        if self._held is None:
            if kind == "start":
                self._held = raw
                return []
            self._decided = True
            return [raw]
        self._decided = True
        held, self._held = self._held, None
        self._continues = kind in CONTINUING_CHUNKS
        return [raw] if self._continues else [held, raw]

    def release(self) -> list[str]:
        """The turn ends: a ``start`` still held goes out."""
        held, self._held = self._held, None
        self._decided = True
        return [held] if held is not None else []
