"""SQLite persistence for the demo chat: chats, their task, messages, and each chat's run session.

The demo tasks write here from its ``on_turn_start`` / ``on_turn_complete`` hooks (in the
worker) and the demo API reads here (in the gateway), so a reloaded page gets its conversation
and the session ``{runId, publicAccessToken, lastEventId}`` it needs to resume a reply in flight.
The file is ``CHATWORKER_DEMO_DB`` (default ``.chatworker/demo.sqlite3``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ChatRecord", "DemoStore", "Session", "default_path", "get_store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    task_id TEXT NOT NULL DEFAULT '',
    messages TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    chat_id TEXT PRIMARY KEY REFERENCES chats(id) ON DELETE CASCADE,
    run_id TEXT NOT NULL,
    public_access_token TEXT NOT NULL,
    last_event_id TEXT
);
"""

TITLE_LENGTH = 60


def default_path() -> Path:
    """``CHATWORKER_DEMO_DB``, or ``.chatworker/demo.sqlite3`` in the working directory."""
    return Path(os.environ.get("CHATWORKER_DEMO_DB") or ".chatworker/demo.sqlite3")


@dataclass(frozen=True)
class Session:
    """What the browser transport needs to reach a chat's run."""

    run_id: str
    public_access_token: str
    last_event_id: str | None

    def to_json(self) -> dict[str, Any]:
        """The transport's session shape (camelCase; ``lastEventId`` omitted when unknown)."""
        body: dict[str, Any] = {"runId": self.run_id, "publicAccessToken": self.public_access_token}
        if self.last_event_id:
            body["lastEventId"] = self.last_event_id
        return body


@dataclass(frozen=True)
class ChatRecord:
    """A stored chat: its title, the task answering it ('' in a database older than the column),
    UI messages (AI SDK JSON) and session, if any."""

    id: str
    title: str
    task_id: str
    messages: list[dict[str, Any]]
    created_at: float
    updated_at: float
    session: Session | None

    def summary(self) -> dict[str, Any]:
        """The sidebar entry of the chat (with its session, so a page can restore it)."""
        return {
            "id": self.id,
            "title": self.title,
            "taskId": self.task_id or None,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "session": self.session.to_json() if self.session else None,
        }

    def to_json(self) -> dict[str, Any]:
        """The chat with its messages."""
        return {**self.summary(), "messages": self.messages}


def title_of(messages: list[dict[str, Any]]) -> str:
    """The chat's title: the start of its first user message."""
    for message in messages:
        if message.get("role") != "user":
            continue
        text = " ".join(
            str(part.get("text", ""))
            for part in message.get("parts", [])
            if part.get("type") == "text"
        )
        text = " ".join(text.split())
        if text:
            return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 1] + "…"
    return ""


class DemoStore:
    """The demo's SQLite database (one short connection per call: safe across processes)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(chats)")}
            if "task_id" not in columns:  # a database from before chats had a task
                db.execute("ALTER TABLE chats ADD COLUMN task_id TEXT NOT NULL DEFAULT ''")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        try:
            with db:
                yield db
        finally:
            db.close()

    def save_turn(
        self,
        chat_id: str,
        messages: list[dict[str, Any]],
        *,
        task_id: str,
        run_id: str,
        token: str,
        last_event_id: str | None,
        keep_last_event_id: bool = False,
    ) -> None:
        """Store the conversation and the session of ``run_id``; a new chat is ``task_id``'s
        (a chat keeps the task it was created with).

        With ``keep_last_event_id`` (a turn starting) the stored position is kept when it belongs
        to the same run, since the turn's own marker does not exist yet.
        """
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT INTO chats (id, title, task_id, messages, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "title = CASE WHEN chats.title = '' THEN excluded.title ELSE chats.title END, "
                "messages = excluded.messages, updated_at = excluded.updated_at",
                (chat_id, title_of(messages), task_id, json.dumps(messages), now, now),
            )
            if keep_last_event_id:
                row = db.execute(
                    "SELECT run_id, last_event_id FROM sessions WHERE chat_id = ?", (chat_id,)
                ).fetchone()
                if row is not None and row["run_id"] == run_id:
                    last_event_id = row["last_event_id"]
            db.execute(
                "INSERT INTO sessions (chat_id, run_id, public_access_token, last_event_id) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(chat_id) DO UPDATE SET run_id = excluded.run_id, "
                "public_access_token = excluded.public_access_token, "
                "last_event_id = excluded.last_event_id",
                (chat_id, run_id, token, last_event_id),
            )

    def list_chats(self, limit: int = 200) -> list[ChatRecord]:
        """The most recently updated chats first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT c.*, s.run_id, s.public_access_token, s.last_event_id FROM chats c "
                "LEFT JOIN sessions s ON s.chat_id = c.id ORDER BY c.updated_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_record(row) for row in rows]

    def get_chat(self, chat_id: str) -> ChatRecord | None:
        """One chat with its messages and session, or None."""
        with self._connect() as db:
            row = db.execute(
                "SELECT c.*, s.run_id, s.public_access_token, s.last_event_id FROM chats c "
                "LEFT JOIN sessions s ON s.chat_id = c.id WHERE c.id = ?",
                (chat_id,),
            ).fetchone()
        return _record(row) if row is not None else None

    def delete_chat(self, chat_id: str) -> Session | None:
        """Forget a chat; returns its session (so the caller can cancel the run) or None."""
        record = self.get_chat(chat_id)
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE chat_id = ?", (chat_id,))
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
        return record.session if record else None


def _record(row: sqlite3.Row) -> ChatRecord:
    session = None
    if row["run_id"]:
        session = Session(row["run_id"], row["public_access_token"], row["last_event_id"])
    return ChatRecord(
        id=row["id"],
        title=row["title"],
        task_id=row["task_id"],
        messages=json.loads(row["messages"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        session=session,
    )


_stores: dict[Path, DemoStore] = {}


def get_store() -> DemoStore:
    """The store at :func:`default_path` (created on first use)."""
    path = default_path().resolve()
    store = _stores.get(path)
    if store is None:
        store = _stores[path] = DemoStore(path)
    return store
