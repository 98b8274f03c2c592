"""A turn started again after its worker died, as a single-message UI stream shows it.

A worker that dies mid-reply leaves ``abort{reason:"worker lost"}`` in the run's stream; another
worker then answers the same turn again: a second ``__turn_start`` of that turn, and a new attempt
under the same message id. A stream that carries one turn to ``useChat`` (the ``/ui`` routes)
must not show the lost attempt's partial reply before the new one: :class:`RestartFilter`
withholds that ``abort`` and, when the turn starts again, sends ``reset-step`` (the AI SDK chunk
that removes the parts of the current step), so the page shows the answer once.
"""

from __future__ import annotations

import json

__all__ = ["RESET_STEP", "WORKER_LOST", "RestartFilter"]

#: The ``abort`` reason recovery writes for a reply whose worker died.
WORKER_LOST = "worker lost"
#: The chunk that clears the current step's parts on the page.
RESET_STEP = json.dumps({"type": "reset-step"}, separators=(",", ":"))


def _kind(raw: str) -> str:
    """The chunk's type, read only for the chunks this filter acts on (the rest pass as is)."""
    if '"abort"' not in raw and '"start-step"' not in raw:
        return ""
    try:
        chunk = json.loads(raw)
    except ValueError:
        return ""
    if not isinstance(chunk, dict):
        return ""
    kind = chunk.get("type")
    if kind == "abort" and chunk.get("reason") == WORKER_LOST:
        return "lost"
    return kind if isinstance(kind, str) else ""


class RestartFilter:
    """Feed it the turn's UI chunks (raw JSON) and its restarts; it returns what to send."""

    def __init__(self) -> None:
        self.steps = 0  # `start-step` chunks sent in the current attempt
        self.skip_start_step = False
        self.held: str | None = None  # a lost attempt's `abort`, until we know it stands

    def chunk(self, raw: str) -> list[str]:
        """The chunks to send for ``raw`` (none while it is held back or dropped)."""
        kind = _kind(raw)
        if kind == "lost":
            self.held = raw
            return []
        out = self.release()
        if kind == "start-step":
            if self.skip_start_step:
                self.skip_start_step = False
                return out
            self.steps += 1
        out.append(raw)
        return out

    def restart(self) -> list[str]:
        """The turn started again: clear the lost attempt's step. ``reset-step`` keeps that
        step's ``step-start`` part, so the new attempt's first ``start-step`` is not sent."""
        self.held = None
        self.skip_start_step = self.steps > 0
        self.steps = 0
        return [RESET_STEP]

    def release(self) -> list[str]:
        """A withheld ``abort`` stands after all (the turn or the run ended instead)."""
        held, self.held = self.held, None
        return [held] if held is not None else []
