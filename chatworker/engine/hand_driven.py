"""The turn a hand-written loop answers: what manual tasks, sessions and raw primitives share.

A ``chat.task`` run opens and closes each turn itself. In manual mode the user's code does:
it waits for a message (a session or ``chat.messages.wait_with_warmup``), pipes to it, and
completes it. :class:`HandDrivenRun` keeps that open turn on the run's driver; sessions and raw
primitives find it with :func:`hand_driven` and never need the manual task itself.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..signals import AbortController
from ..tokens import create_run_token
from ..types import TaskDefinition
from .driver import Input, RunDriver
from .mailbox import LocalRun
from .turns import TurnScope, current_driver, drop, run_deferred, settle

log = logging.getLogger("chatworker.run")


class StopSource(Protocol):
    """A raw loop's managed stop signal (``chat.create_stop_signal``)."""

    controller: AbortController


class HandDrivenRun(RunDriver):
    """A run whose turns the user's code opens and completes."""

    def __init__(self, task: TaskDefinition, run_id: str, local: LocalRun) -> None:
        super().__init__(task, run_id, local)
        self.pending: Input | None = None
        self.scope: TurnScope | None = None
        self.stop_signal: StopSource | None = None  # set by chat.create_stop_signal()
        self.end_reason = "returned"

    def allow_turns(self, limit: int) -> None:
        """Accept further messages (a session or raw wait is listening) up to ``limit`` turns."""
        self.owner_set(max_turns=max(limit, 1))

    # -- the turn in progress -------------------------------------------------------------------
    def ensure_scope(self) -> TurnScope:
        """The open turn, opening one for the message being answered if needed."""
        if self.scope is not None:
            return self.scope
        if self.pending is None:
            raise RuntimeError(
                "no message to answer here: wait for one with chat.messages.wait_with_warmup()"
            )
        self.scope = self.open_turn(self.pending, self.turn_message_id(self.pending))
        return self.scope

    def new_stop_controller(self) -> AbortController:
        if self.stop_signal is not None:
            return self.stop_signal.controller
        return AbortController()

    def finish_turn(self, token: str | None = None) -> str | None:
        """Close the open turn's message and write its marker (always, so clients never hang)."""
        if self.scope is None and self.pending is None:
            return None
        scope = self.ensure_scope()
        settle(scope)  # what async code started for the turn ends before the turn does
        stopped = scope.stop.signal.aborted and not self.local.cancel.signal.aborted
        scope.output.close(stopped)
        run_deferred(scope.deferred)
        number = self.turn_number
        self.turn_number += 1
        if token is None:
            token = create_run_token(self.run_id, self.task.chat_access_token_ttl)
        marker = self.write_turn_complete(number, scope.input_id, stopped, token)
        self.scope, self.pending = None, None
        return marker

    def abandon_turn(self) -> None:
        """After a failure or cancel: close the partial message so no client shows it as final."""
        if self.scope is not None:
            drop(self.scope)  # what its async code left running
        if self.scope is not None and not self.scope.output.closed:
            try:
                self.scope.output.close(stopped=True)
            except Exception:
                log.exception("run %s: could not close the partial message", self.run_id)
        self.scope = None


def hand_driven(what: str) -> HandDrivenRun:
    """The run answering the current turn, if it is driven by hand; a clear error otherwise."""
    driver = current_driver.get()
    if not isinstance(driver, HandDrivenRun):
        raise RuntimeError(f"chat.{what}() works inside the run of a chatworker.task (manual mode)")
    return driver
