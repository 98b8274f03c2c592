"""What a message that arrives while a turn of its run streams does: the ``while_streaming``
policy of its task (``chat.task(..., while_streaming=...)``) or its own ``whileStreaming``.

- ``queue``: answered in order, one turn each (the default);
- ``interrupt``: the streaming turn stops as a user stop does, and the message is answered next;
- ``steer``: the message joins the streaming turn at its next step boundary (or, if the turn
  ends first, is answered as a turn of its own);
- ``reject``: refused (``RunBusy``, HTTP 409 ``busy``); nothing is queued.

The policy only matters while a turn streams: otherwise every message starts a turn as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args

from ..errors import InvalidPayload

WhileStreaming = Literal["queue", "interrupt", "steer", "reject"]
POLICIES: tuple[str, ...] = get_args(WhileStreaming)
#: The stop reason of a turn stopped by an ``interrupt`` message.
INTERRUPTED = "interrupted"


def check_policy(value: Any, what: str = "while_streaming") -> str:
    """``value`` if it names a policy; ``ValueError`` saying which ones exist otherwise."""
    if value not in POLICIES:
        raise ValueError(f"{what} must be one of {', '.join(POLICIES)}; got {value!r}")
    return str(value)


def check_overrides(values: Iterable[str] | None) -> frozenset[str]:
    """The policies a task lets a message choose (None: every one)."""
    if values is None:
        return frozenset(POLICIES)
    if isinstance(values, str):
        values = [values]
    return frozenset(check_policy(v, "while_streaming_overrides") for v in values)


def resolve(task: Any, requested: str | None) -> str:
    """The policy for a message to ``task`` asking for ``requested`` (None: the task's).

    Raises :class:`InvalidPayload` when the task does not accept that override.
    """
    default = str(getattr(task, "while_streaming", "queue"))
    if requested is None or requested == default:
        return default
    allowed: frozenset[str] = getattr(task, "while_streaming_overrides", frozenset(POLICIES))
    if requested not in allowed:
        accepted = ", ".join(p for p in POLICIES if p in allowed) or "none"
        raise InvalidPayload(
            f"whileStreaming {requested!r} is not accepted by chat task "
            f"{getattr(task, 'id', '?')!r} (it accepts: {accepted}); leave it out to use the "
            f"task's policy, {default!r}"
        )
    return requested


def can_steer(task: Any) -> bool:
    """Whether a message to ``task`` may ever be steered (its turns then look for them)."""
    allowed: frozenset[str] = getattr(task, "while_streaming_overrides", frozenset(POLICIES))
    return getattr(task, "while_streaming", "queue") == "steer" or "steer" in allowed
