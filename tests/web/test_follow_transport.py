"""Follow mode under the real AI SDK client, on a stream the test writes itself (no worker runs
the run): what a follower shows of a turn started again after its worker died, and where a
reply goes when a message was added while it started."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatworker import runs, tokens

from ..gateway.conftest_helpers import Gunicorn, gateway_db, gateway_env, gateway_redis, xadd_chunks
from .test_transport import run_scenario

__all__ = ["gateway_db", "gateway_redis"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

USER = "restart-user"


@pytest.fixture(scope="module")
def gateway(gateway_db: str) -> Iterator[Gunicorn]:
    with Gunicorn(gateway_env(gateway_db), name="follow-restart") as gw:
        yield gw


def attempt(message_id: str, text: str, *, lost: bool) -> list[dict[str, Any]]:
    """One attempt at a reply: complete, or cut by the loss of its worker."""
    chunks: list[dict[str, Any]] = [
        {"type": "start", "messageId": message_id},
        {"type": "start-step"},
        {"type": "text-start", "id": f"t-{text}"},
        {"type": "text-delta", "id": f"t-{text}", "delta": text},
    ]
    if lost:
        return [*chunks, {"type": "abort", "reason": "worker lost"}]
    return [*chunks, {"type": "text-end", "id": f"t-{text}"}, {"type": "finish-step"},
            {"type": "finish", "finishReason": "stop"}]  # fmt: skip


def test_a_turn_started_again_shows_once_to_a_follower(
    gateway: Gunicorn, gateway_redis: redis.Redis, chat_id: str
) -> None:
    question = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "question"}]}
    # Tool results sent back: the next turn continues this assistant message.
    continued = {"id": "a2", "role": "assistant", "parts": [{"type": "text", "text": "before"}]}
    started = runs.trigger("echo", {"chatId": chat_id, "messages": [question]},
                           principal=tokens.subject_principal(USER))  # fmt: skip
    start0 = {"type": "__turn_start", "turn": 0, "trigger": "submit-message",
              "messages": [question], "history": True}  # fmt: skip
    following = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "next"}]}
    start1 = {"type": "__turn_start", "turn": 1, "inputId": "i1", "trigger": "submit-message",
              "messages": [following], "history": False}  # fmt: skip
    start2 = {"type": "__turn_start", "turn": 2, "inputId": "i2", "trigger": "submit-message",
              "messages": [continued], "history": False}  # fmt: skip
    xadd_chunks(gateway_redis, started.run_id, [
        start0, *attempt("m1", "partial ", lost=True),
        start0, *attempt("m1", "whole answer", lost=False),
        {"type": "__turn_complete", "turn": 0, "stopped": False},
        start1, *attempt("m2", "second answer", lost=False),
        {"type": "__turn_complete", "turn": 1, "stopped": False, "inputId": "i1"},
        start2, *attempt("a2", "lost", lost=True),
        start2, *attempt("a2", "after", lost=False),
        {"type": "__turn_complete", "turn": 2, "stopped": False, "inputId": "i2"},
    ])  # fmt: skip
    run_scenario(
        gateway, "followrestart",
        {"chatId": chat_id, "runId": started.run_id, "before": "before",
         "publicAccessToken": started.public_access_token},
        trigger_tokens={"echo": tokens.create_trigger_token("echo", multiple_use=True,
                                                            subject=USER)},
    )  # fmt: skip
