"""The turn loop of ``chat.task``: how one chat run lives on a worker.

Read :meth:`ChatRun.live` top to bottom. A message enters in ``next_message`` (an atomic move
from the run's inbox list, :meth:`~chatworker.engine.driver.RunDriver.take`); chunks leave in
:meth:`ChatRun.turn` (``pipe_source`` → :class:`~chatworker.engine.capture.TurnOutput` → the
run's Redis Stream); the run sleeps in ``next_message`` too: warm on a local event, then
suspended — state in Redis, worker slot freed, resumed on any worker by the next message (see
``driver.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import AbortError
from ..protocol.convert import (
    cleanup_aborted_parts,
    convert_to_model_messages,
    strip_provider_metadata,
)
from ..protocol.messages import UIMessage, dump
from ..tokens import create_run_token
from ..types import (
    ChatRunContext,
    ChatStartEvent,
    ChatTaskDefinition,
    PreloadEvent,
    TurnCompleteEvent,
    TurnStartEvent,
)
from .driver import Input, RunCanceled, RunDriver, execute
from .payload import parse_client_data
from .turn_trace import traced_turn
from .turns import activate, call, call_hook, drop, pipe_source, run_deferred, settle

log = logging.getLogger("chatworker.run")


def execute_chat(task: ChatTaskDefinition, run_id: str) -> None:
    """Celery entry point of a ``chat.task`` run."""
    execute(task, run_id, ChatRun)


class ChatRun(RunDriver):
    """A ``chat.task`` run: accumulation, hooks and auto-piping around every turn."""

    task: ChatTaskDefinition

    def live(self) -> None:
        """Restore, (pre)load, then answer one message per turn until suspended or ended."""
        with self.ending_on_errors("the chat task"):
            self.restore()
            if self.hook_pending:
                self.replay_turn_complete()
            item = None
            if self.initial.trigger == "preload" and not self.preload_done:
                item = self.preload()
                if item is None:
                    return
            while True:
                if item is None:
                    item = self.next_message(self.warm_seconds(), self.turn_timeout_seconds())
                if item is None:
                    return  # suspended (or ended): the worker slot is free again
                with traced_turn(self, item):
                    self.turn(item)
                item = None
                if self.turn_number >= self.task.max_turns:
                    self.end("completed", "max_turns")
                    return

    def preload(self) -> Input | None:
        """Run ``on_preload``, then wait for the first message with the preload timeouts."""
        token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        client_data = parse_client_data(self.task, self.initial.metadata)
        log.info("run %s: preloaded, waiting for the first message", self.run_id)
        with activate(driver=self):
            call_hook(self.task.hooks["on_preload"],
                      PreloadEvent(chat_id=self.chat_id, run_id=self.run_id,
                                   chat_access_token=token, client_data=client_data))
        self.preload_done = True
        warm = self.initial.warm_timeout_in_seconds
        if warm is None:
            warm = self.task.preload_warm_timeout_in_seconds
        timeout = self.turn_timeout_override
        if timeout is None and self.task.preload_timeout is not None:
            timeout = self.task.preload_timeout_seconds
        return self.next_message(self.warm_seconds() if warm is None else warm,
                                 self.turn_timeout_seconds() if timeout is None else timeout)

    def turn(self, item: Input) -> None:
        """Accumulate → on_chat_start → on_turn_start → run → stream → marker → on_turn_complete."""
        payload, number = item.payload, self.turn_number
        client_data = parse_client_data(self.task, payload.metadata)
        self.accumulator.add_incoming(payload.messages, payload.trigger, number)
        token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        response_id = self.response_id(item)
        scope = self.open_turn(item, response_id, self.continued(response_id))
        context = ChatRunContext(
            messages=self.accumulator.model_messages, ui_messages=self.accumulator.ui_messages,
            chat_id=self.chat_id, run_id=self.run_id, turn=number, trigger=payload.trigger,
            message_id=payload.message_id, client_data=client_data,
            continuation=self.continuation, previous_run_id=self.previous_run_id,
            preloaded=self.preloaded, signal=scope.signal, stop_signal=scope.stop.signal,
            cancel_signal=self.local.cancel.signal, chat_access_token=token, extra=payload.extra,
        )

        with activate(scope, self):
            if number == 0:
                call_hook(self.task.hooks["on_chat_start"], ChatStartEvent(
                    chat_id=self.chat_id, messages=context.messages, client_data=client_data,
                    run_id=self.run_id, chat_access_token=token, continuation=self.continuation,
                    previous_run_id=self.previous_run_id, preloaded=self.preloaded))
            call_hook(self.task.hooks["on_turn_start"], TurnStartEvent(
                chat_id=self.chat_id, messages=context.messages, ui_messages=context.ui_messages,
                turn=number, run_id=self.run_id, chat_access_token=token,
                continuation=self.continuation, preloaded=self.preloaded,
                client_data=client_data))
            try:
                result = call(self.task.run_fn, context)
                if result is not None and scope.pipes == 0:
                    pipe_source(scope, result)  # chunks leave here, into the run's stream
                settle(scope)  # pipes async code started and did not await
            except AbortError:
                if not scope.signal.aborted:
                    raise
            finally:
                drop(scope)  # left running only when the run function failed
        if self.local.cancel.signal.aborted:
            if not self.local.lost:  # the stream may already belong to another worker
                scope.output.close(stopped=True)
            raise RunCanceled(str(self.local.cancel.signal.reason or "canceled"))

        stopped = scope.stop.signal.aborted
        scope.output.close(stopped)
        raw = scope.output.response
        response = cleanup_aborted_parts(raw) if stopped and raw is not None else raw
        if response is not None:
            response = self.accumulator.add_response(response)
        self.turn_number = number + 1
        self.last_turn = {
            "input_id": item.input_id, "turn": number, "stopped": stopped,
            "new_count": len(self.accumulator.new_ui_messages),
            "has_response": response is not None, "metadata": payload.metadata,
            "raw": dump(raw) if raw is not None else None,
        }
        marker_id = self.write_turn_complete(number, item.input_id, stopped, token,
                                             hook_pending=True)

        with activate(scope, self):
            run_deferred(scope.deferred)
            call_hook(self.task.hooks["on_turn_complete"], self.turn_complete_event(
                new_messages=self.accumulator.new_model_messages,
                new_ui_messages=self.accumulator.new_ui_messages, response_message=response,
                raw_response_message=raw, turn=number, chat_access_token=token,
                last_event_id=marker_id, stopped=stopped, client_data=client_data))
        self.hook_done()

    def replay_turn_complete(self) -> None:
        """After a crash between a turn's marker and its ``on_turn_complete``: run only the hook,
        rebuilt from the checkpoint, so it fires exactly once for that turn."""
        last = self.last_turn
        if last is None or last["input_id"] != self.hook_pending:
            self.hook_done()
            return
        ui = self.accumulator.ui_messages
        new_ui = ui[-last["new_count"]:] if last["new_count"] else []
        response = ui[-1] if last["has_response"] else None
        raw = UIMessage.model_validate(last["raw"]) if last["raw"] else None
        token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        marker_id = self.store.fields(self.run_id, "last_event_id")[0] or ""
        log.warning("run %s: re-running on_turn_complete of turn %d after recovery",
                    self.run_id, last["turn"])
        with activate(driver=self):
            call_hook(self.task.hooks["on_turn_complete"], self.turn_complete_event(
                new_messages=convert_to_model_messages(
                    [strip_provider_metadata(m) for m in new_ui]),
                new_ui_messages=new_ui, response_message=response, raw_response_message=raw,
                turn=last["turn"], chat_access_token=token, last_event_id=marker_id,
                stopped=last["stopped"],
                client_data=parse_client_data(self.task, last["metadata"])))
        self.hook_done()

    def turn_complete_event(self, **fields: Any) -> TurnCompleteEvent:
        """``on_turn_complete``'s event: the whole conversation now, plus the turn's ``fields``."""
        return TurnCompleteEvent(
            chat_id=self.chat_id, run_id=self.run_id, continuation=self.continuation,
            messages=self.accumulator.model_messages, ui_messages=self.accumulator.ui_messages,
            **fields,
        )

    def continued(self, response_id: str) -> UIMessage | None:
        """The assistant message this turn's response continues (as the history holds it)."""
        ui = self.accumulator.ui_messages
        last = ui[-1] if ui else None
        if last is not None and last.role == "assistant" and last.id == response_id:
            return last
        return None

    def response_id(self, item: Input) -> str:
        """The response continues the last message when that is the assistant's (tool results);
        otherwise it gets the turn's own id (the same for a turn restarted after a lost worker)."""
        messages = item.payload.messages
        last = messages[-1] if messages else None
        if last is not None and last.role == "assistant" and last.id:
            return last.id
        return self.turn_message_id(item)
