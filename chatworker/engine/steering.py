"""The run's steering source: messages sent with the ``steer`` policy join the streaming turn.

The send script leaves such a message in the run's inbox marked for the input being answered;
at each step boundary of that turn ``stream_text`` asks :meth:`RunSteering.take`, which moves
the marked messages from the inbox into the processing list atomically (they are then answered
with that input: recovery puts them back with it). A message the turn never took is taken as a
turn of its own when the turn ends: never dropped.

A message is only steered once its turn has written ``__turn_start``, and the send script then
announces it to the owning worker (the mailbox counts such notices per run). A step boundary
that heard no notice since the turn's take skips the script: most turns are never steered, and
the first step's check sat between a turn's start and its first chunk. A notice still in flight
only delays the message to a later step boundary, or to a turn of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import ValidationError

from ..ai.steering import SteeringMessage, steering_parts
from ..store.records import split_item
from ..store.run_store import RunStore
from ..tracing import unstamp
from .payload import ChatWirePayload

log = logging.getLogger("chatworker.steering")


class RunSteering:
    """The steering source of one turn (the input ``input_id`` of run ``run_id``)."""

    def __init__(self, store: RunStore, run_id: str, token: str, input_id: str, *,
                 news: Callable[[], int] | None = None, seen: int = 0) -> None:
        self.store = store
        self.run_id = run_id
        self.token = token
        self.input_id = input_id
        self._news = news
        self._seen = seen

    def take(self) -> list[SteeringMessage]:
        out: list[SteeringMessage] = []
        if self._news is not None:
            heard = self._news()
            if heard == self._seen:
                return out  # no message announced since the last look: none was steered
            self._seen = heard
        for item in self.store.steer_take(self.run_id, self.token, self.input_id):
            steered_id, body = split_item(item)
            body = unstamp(body)[0]
            try:
                payload = ChatWirePayload.model_validate_json(body)
            except ValidationError:
                log.error("run %s: steered message %s is unreadable; not delivered",
                          self.run_id, steered_id)
                continue
            if not payload.messages:
                continue
            message = payload.messages[-1]
            log.info("run %s: %s steered into the turn answering %s", self.run_id, steered_id,
                     self.input_id)
            out.append(SteeringMessage(message.id, steering_parts(message.parts)))
        return out
