"""Steering: user messages that join a ``stream_text`` run at its next step boundary.

A steering source hands over the messages sent for the run since it last asked
(:meth:`SteeringSource.take`). The runner asks before each model call of a multi-step tool
loop, and once more when the model has finished its answer: messages found then make the run
continue for one more step. Each delivered message is yielded as a ``steering-message`` part
(``{type, id, parts}``) at the start of the step that received it, and the model sees it as a
user message after that step's tool results.

A source never loses a message: one the run did not take (it ended for a stop, a client-side
tool, ``max_steps``) stays with the source. Inside a chat turn the run's own source is used
(messages sent with the ``steer`` policy; see :mod:`chatworker.engine.steering`), so
``stream_text`` needs no argument there; :class:`Steering` is an in-memory source for code that
calls ``stream_text`` directly.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Steering",
    "SteeringMessage",
    "SteeringSource",
    "current_steering",
    "steering_parts",
]


@dataclass(frozen=True)
class SteeringMessage:
    """A user message for the run: its id and its UI parts (``text`` and ``file`` parts)."""

    id: str
    parts: list[dict[str, Any]] = field(default_factory=list)

    def model_message(self) -> dict[str, Any]:
        """The user model message the model sees."""
        content: list[dict[str, Any]] = []
        for part in self.parts:
            if part.get("type") == "text":
                content.append({"type": "text", "text": part.get("text", "")})
            elif part.get("type") == "file":
                item = {"type": "file", "mediaType": part.get("mediaType", ""),
                        "data": part.get("url", "")}
                if part.get("filename"):
                    item["filename"] = part["filename"]
                content.append(item)
        return {"role": "user", "content": content}

    def chunk(self) -> dict[str, Any]:
        """The ``steering-message`` part/chunk of the step that received it."""
        return {"type": "steering-message", "id": self.id, "parts": [dict(p) for p in self.parts]}


class SteeringSource(Protocol):
    """Where a run's steering messages come from."""

    def take(self) -> list[SteeringMessage]:
        """The messages not yet taken, now part of the run (an empty list when none)."""


def steering_parts(parts: Sequence[Any]) -> list[dict[str, Any]]:
    """The parts of a user message a steering message keeps: text and file parts, as dicts."""
    out: list[dict[str, Any]] = []
    for part in parts:
        data = part if isinstance(part, Mapping) else _dump(part)
        if data.get("type") in ("text", "file"):
            out.append({k: v for k, v in data.items() if v is not None and k != "state"})
    return out


def _dump(part: Any) -> dict[str, Any]:
    dump = getattr(part, "model_dump", None)
    if dump is None:
        return {}
    result: dict[str, Any] = dump(mode="json", by_alias=True, exclude_none=True)
    return result


class Steering:
    """An in-memory steering source: :meth:`steer` from any thread while ``stream_text`` runs.

    ``steering = Steering(); result = stream_text(..., steering=steering)``, then
    ``steering.steer("Use Paris, Texas instead.")``. Messages the run ended without taking
    are in :meth:`pending` (send them as the next turn).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[SteeringMessage] = []

    def steer(self, message: str | Mapping[str, Any], *, id: str | None = None) -> str:
        """Add a user message (text, or a UI message ``{id?, parts}``); returns its id."""
        if isinstance(message, str):
            parts: list[dict[str, Any]] = [{"type": "text", "text": message}]
        else:
            parts = steering_parts(message.get("parts") or [])
            id = id or message.get("id")
        item = SteeringMessage(id or f"steer-{uuid.uuid4().hex[:16]}", parts)
        with self._lock:
            self._pending.append(item)
        return item.id

    def take(self) -> list[SteeringMessage]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def pending(self) -> list[SteeringMessage]:
        """The messages not (yet) delivered."""
        with self._lock:
            return list(self._pending)

    def __iter__(self) -> Iterator[SteeringMessage]:
        return iter(self.pending())


#: The steering source of the chat turn in progress (set by the engine for each turn); used by
#: ``stream_text`` when it is not given ``steering=``.
current_steering: contextvars.ContextVar[SteeringSource | None] = contextvars.ContextVar(
    "chatworker_steering", default=None
)


class TurnSteering:
    """``stream_text``'s default source: the turn's, looked up where the run is consumed (the
    turn piping it), so it works however the code that called ``stream_text`` was reached."""

    def take(self) -> list[SteeringMessage]:
        source = current_steering.get()
        return [] if source is None else list(source.take())


#: Finish reasons after which the run never continues for steering (as in the AI SDK).
_NO_EXTRA_STEP = frozenset({"length", "content-filter", "error"})


class StepSteering:
    """The runner's side of steering: what it asks at each step boundary."""

    def __init__(self, source: SteeringSource | None, aborted: Any) -> None:
        self.source = source
        self._aborted = aborted  # () -> bool: the run's signal fired
        self._held: list[SteeringMessage] = []  # taken to continue a finished run

    def deliver(self, response_messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """At the start of a step: the messages that join the run here, as ``steering-message``
        parts; each becomes a user message of the model's input (after the tool results)."""
        taken, self._held = self._held or self._take(), []
        for message in taken:
            response_messages.append(message.model_message())
            yield message.chunk()

    def continues(self, step: Any, steps: Sequence[Any], stop_conditions: Sequence[Any]) -> bool:
        """The model finished its answer: continue for one more step when a message is waiting
        (never after a truncated or failed step, with client-side tool calls left, or once a
        stop condition such as ``max_steps`` is met: the message is then not taken)."""
        if self.source is None or step.tool_calls or step.finish_reason in _NO_EXTRA_STEP:
            return False
        if any(condition(list(steps)) for condition in stop_conditions):
            return False
        self._held = self._take()
        return bool(self._held)

    def _take(self) -> list[SteeringMessage]:
        if self.source is None or self._aborted():
            return []
        return list(self.source.take())
