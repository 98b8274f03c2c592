"""The demo chat task ``demo-chat``: a model with four demo tools, persisted in SQLite.

``write_report`` runs as a Celery task on the ``tools`` queue and streams its progress
(``web.demo_report``); the worker must consume that queue too (``-Q chat,tools``).

Load it with ``CHATWORKER_TASKS=web.demo_tasks`` (worker and gateway). The model is
``openai(CHATWORKER_MODEL or "gpt-4o-mini")`` when ``OPENAI_API_KEY`` is set; otherwise the
offline demo model served at ``CHATWORKER_DEMO_MODEL_URL`` (``python -m
chatworker.testing.model_server --demo``), so the demo runs with no key and no network.

``CHATWORKER_DEMO_WARM_TIMEOUT`` (seconds, default 30) and ``CHATWORKER_DEMO_TURN_TIMEOUT``
(default ``1h``) set how long a run waits for the next message; once it has ended, the next
message continues the chat in a new run.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from chatworker import ChatTask, chat
from chatworker.ai import OpenAIChatModel, StreamTextResult, openai, stream_text
from chatworker.protocol.messages import dump
from chatworker.testing.demo import DEMO_TOOLS

from .demo_report import write_report_tool
from .demo_store import get_store

__all__ = [
    "DEMO_TASK_ID", "demo_chat", "demo_model", "model_name", "persist_turns", "uses_demo_model",
]

log = logging.getLogger("chatworker.demo")

DEMO_TASK_ID = "demo-chat"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_DEMO_MODEL_URL = "http://127.0.0.1:8900/v1"
OFFLINE_MODEL_ID = "chatworker-offline-demo"

SYSTEM = (
    "You are the chatworker demo assistant: friendly and brief. You can look up the weather "
    "(get_weather) and the time (get_time), book a table at a restaurant (book_table: the "
    "user approves each booking first, and nothing is really booked), and write a short "
    "report (write_report); say that their data is for demonstration only."
)


def uses_demo_model() -> bool:
    """True when no ``OPENAI_API_KEY`` is set, so the offline demo model answers."""
    return not os.environ.get("OPENAI_API_KEY")


def model_name() -> str:
    """The model id the demo uses (for the page's header)."""
    return (
        OFFLINE_MODEL_ID if uses_demo_model() else os.environ.get("CHATWORKER_MODEL", DEFAULT_MODEL)
    )


def demo_model() -> OpenAIChatModel:
    """The model handle: OpenAI with a key, else the offline demo model server."""
    if not uses_demo_model():
        return openai(model_name())
    url = os.environ.get("CHATWORKER_DEMO_MODEL_URL") or DEFAULT_DEMO_MODEL_URL
    return openai(OFFLINE_MODEL_ID, base_url=url, api_key="offline-demo", max_retries=0)


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %s", name, raw, default)
        return default


def _turn_timeout() -> str | float:
    raw = os.environ.get("CHATWORKER_DEMO_TURN_TIMEOUT")
    if not raw:
        return "1h"
    try:
        return float(raw)
    except ValueError:
        return raw  # a duration string such as "15m"


@chat.task(
    id=DEMO_TASK_ID,
    warm_timeout_in_seconds=_seconds("CHATWORKER_DEMO_WARM_TIMEOUT", 30),
    turn_timeout=_turn_timeout(),
    ui_message_stream_options={"send_reasoning": True},
)
def demo_chat(ctx: Any) -> StreamTextResult:
    """Answer with the configured model; it may call the demo tools (three steps at most)."""
    return stream_text(
        model=demo_model(),
        system=SYSTEM,
        tools={**DEMO_TOOLS, "write_report": write_report_tool},
        messages=ctx.messages,
        abort_signal=ctx.signal,
        max_steps=3,
    )


def _stopped_marks(
    chat_id: str, messages: list[dict[str, Any]], stopped_id: str | None = None
) -> list[dict[str, Any]]:
    """The messages with ``metadata.stopped`` on each reply the user stopped: ``stopped_id``
    and those already stored so (the run's own history does not carry the mark)."""
    stored = get_store().get_chat(chat_id)
    stopped = {m.get("id") for m in (stored.messages if stored else []) if _is_stopped(m)}
    if stopped_id is not None:
        stopped.add(stopped_id)
    for message in messages:
        if message.get("id") in stopped and message.get("role") == "assistant":
            metadata = message.get("metadata")
            message["metadata"] = {**(metadata if isinstance(metadata, dict) else {}),
                                   "stopped": True}
    return messages


def _is_stopped(message: dict[str, Any]) -> bool:
    metadata = message.get("metadata")
    return isinstance(metadata, dict) and metadata.get("stopped") is True


def persist_turns(task: ChatTask) -> ChatTask:
    """Store the chats of ``task`` in the demo's database (``demo-chat`` and the framework demo
    tasks do): the sidebar lists them, and a reloaded page shows them and resumes their reply."""
    task.on_turn_start(lambda event: _persist_turn_start(task.id, event))
    task.on_turn_complete(lambda event: _persist_turn_complete(task.id, event))
    return task


def _persist_turn_start(task_id: str, event: Any) -> None:
    # The user's message is saved before the answer starts, with the run's session: a page
    # reloaded mid-reply shows the question and resumes the answer from the run.
    get_store().save_turn(
        event.chat_id,
        _stopped_marks(event.chat_id, [dump(m) for m in event.ui_messages]),
        task_id=task_id,
        run_id=event.run_id,
        token=event.chat_access_token,
        last_event_id=None,
        keep_last_event_id=True,
    )


def _persist_turn_complete(task_id: str, event: Any) -> None:
    # The answer is saved with the marker's id: resuming after it waits for the next turn. A
    # reply the user stopped is saved marked so (``metadata.stopped``): the page labels it.
    response = event.response_message
    stopped_id = response.id if event.stopped and response is not None else None
    get_store().save_turn(
        event.chat_id,
        _stopped_marks(event.chat_id, [dump(m) for m in event.ui_messages], stopped_id),
        task_id=task_id,
        run_id=event.run_id,
        token=event.chat_access_token,
        last_event_id=event.last_event_id,
    )


persist_turns(demo_chat)
