"""What the seed-example tests share: the two forms, scripted replies, and reading what a user
(and the app's database, and the model) saw."""

from __future__ import annotations

import json
from typing import Any

import redis

from chatworker import runs
from chatworker.errors import ChatworkerError
from chatworker.testing import ModelServer, Text
from chatworker.testing.script import Step, last_user_text

from ..support import read_until

#: Every example is ported twice: plain functions, and ``async def`` with ``await``.
FORMS = ["sync", "async"]


def answer_for(body: dict[str, Any]) -> list[Step]:
    """The scripted model's reply: ``answer to <last word of the user's message>``."""
    return [Text(f"answer to {last_user_text(body).split()[-1]}")]


def script(model_server: ModelServer, chat_id: str, reply: Any = answer_for) -> None:
    """Answer every message of ``chat_id`` (its texts start with the chat id) with ``reply``."""
    model_server.on(chat_id, reply)


def requests_of(model_server: ModelServer, chat_id: str) -> list[dict[str, Any]]:
    """The chat completion requests the model received for ``chat_id``, in order."""
    return [b for b in list(model_server.requests) if chat_id in json.dumps(b)]


def said(body: dict[str, Any]) -> list[tuple[str, str]]:
    """A request's conversation as ``(role, text)`` pairs (stripped): what the model was shown."""
    out = []
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
        out.append((message["role"], (content or "").strip()))
    return out


def db_row(r: redis.Redis, table: str, id: str) -> dict[str, Any] | None:
    raw = r.get(f"test:db:{table}:{id}")
    return json.loads(raw) if raw else None


def db_ops(r: redis.Redis, table: str, id: str) -> list[str]:
    """The operations the app's code did on a row, in order (``create``, ``update``...)."""
    return [json.loads(e)["op"] for e in r.lrange(f"test:db:log:{table}:{id}", 0, -1)]


def texts(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p["type"] == "text")


def run_end(r: redis.Redis, run_id: str, after: str = "0-0") -> dict[str, Any]:
    """The run's ``__run_end`` chunk, once it is written."""
    entries = read_until(r, run_id, lambda c: c["type"] == "__run_end", after)
    return entries[-1][1]


def end(run_id: str) -> None:
    """Cancel a run a test left waiting, so the shared worker stays quiet."""
    try:
        runs.cancel(run_id)
    except ChatworkerError:
        pass
