"""Where a turn's chunks leave: written to the run's output stream and folded into the response.

Every turn reaches clients as one complete AI SDK message stream, whatever ``run`` produced:
exactly one ``start`` carrying the response ``messageId`` (added when missing), the chunks, and
one closing ``finish`` (or ``abort`` for a stopped turn). Several pipes in one turn therefore
make one message, and the captured response's id is the id the browser shows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import metrics
from ..protocol.assemble import MessageAssembler
from ..protocol.chunks import to_chunk_dict
from ..protocol.messages import UIMessage
from ..store.streams import OutputStream

log = logging.getLogger("chatworker.capture")

#: Chunks counted as streamed tokens, and chunks that frame a message without content.
_DELTAS = frozenset({"text-delta", "reasoning-delta"})
_FRAMING = frozenset({"start", "start-step", "finish-step", "message-metadata"})


class TurnOutput:
    """One turn's output: the stream writer plus the response being assembled from it."""

    def __init__(self, stream: OutputStream, message_id: str,
                 continues: UIMessage | None = None) -> None:
        self.stream = stream
        self.message_id = message_id
        # A turn continuing an assistant message (a tool result, an approval) captures the
        # whole message, as the client shows it: its earlier parts, then this turn's.
        self.assembler = MessageAssembler(message_id, previous=continues)
        self.started = False
        self.finish: dict[str, Any] | None = None
        self.aborted = False
        self.closed = False
        # For the metrics: the task, and when the turn took its input (set by the driver).
        self.task = ""
        self.taken_at = time.monotonic()
        self.first_written = False

    def write(self, chunk: Any) -> None:
        """Send one chunk (a dict or chunk model) to clients and capture it."""
        if self.closed:
            raise RuntimeError("this turn is over: write chunks only while it runs")
        data = to_chunk_dict(chunk)
        kind = data.get("type")
        if kind == "start":
            if self.started:
                if "messageMetadata" in data:
                    metadata = data["messageMetadata"]
                    self._emit({"type": "message-metadata", "messageMetadata": metadata})
                return
            if data.get("messageId"):
                self.message_id = str(data["messageId"])
            else:
                data = {**data, "messageId": self.message_id}
            self.started = True
        elif kind == "finish":
            # Held back: several sources may finish within one turn; one finish closes it.
            self.finish = data
            return
        elif not self.started and not str(kind).startswith("__"):
            self._emit({"type": "start", "messageId": self.message_id})
            self.started = True
        if kind == "abort":
            if self.aborted:
                return
            self.aborted = True
        self._emit(data)

    def _emit(self, data: dict[str, Any]) -> None:
        self.assembler.feed(data)
        if data.get("type") == "start":
            # Written at once: the turn goes on to build its model request, and a queued
            # ``start`` would wait behind that work for the writer's turn.
            self.stream.write(data)
        else:
            # Queued, not awaited: the writer batches a reply's chunks, and the turn reads on.
            # ``close`` (and the driver before its marker) waits until they are all in Redis.
            self.stream.send(data)
        kind = str(data.get("type"))
        if kind in _DELTAS:
            metrics.tokens(self.task)
        if not self.first_written and kind not in _FRAMING and not kind.startswith("__"):
            self.first_written = True
            metrics.first_chunk(self.task, time.monotonic() - self.taken_at)

    def close(self, stopped: bool) -> None:
        """End the message: ``abort`` for a stopped turn, otherwise ``finish``."""
        if self.closed:
            return
        if not self.started:
            self._emit({"type": "start", "messageId": self.message_id})
            self.started = True
        if stopped or self.aborted:
            if not self.aborted:
                self._emit({"type": "abort", "reason": "stopped"})
                self.aborted = True
        else:
            self._emit(self.finish or {"type": "finish", "finishReason": "stop"})
        self.closed = True
        self.stream.flush()

    @property
    def response(self) -> UIMessage | None:
        """The captured response, or None when the turn produced no parts."""
        message = self.assembler.message
        return message if message.parts else None
