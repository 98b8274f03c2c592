"""The ``db`` the seed's examples write to, kept in Redis so tests read what an app would persist.

``db.chat.create(data=...)``, ``db.chat.update(where=..., data=...)``,
``db.chat_session.upsert(where=..., create=..., update=...)``, ``db.user.find_unique(where=...)``:
the seed's Prisma-style calls in snake_case. :data:`db` is the sync client, :data:`adb` the
``async def`` one (``await adb.chat.create(...)``), both over the same rows. Every call is also
logged (``test:db:log:<table>:<id>``) so tests can count how often a hook wrote.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..tasks import _plain, store


def _key(table: str, id: str) -> str:
    return f"test:db:{table}:{id}"


class Table:
    """One table: rows are JSON objects keyed by ``id``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, id: str, op: str, data: Any) -> None:
        store().rpush(f"test:db:log:{self.name}:{id}", json.dumps({"op": op, "data": _plain(data)}))

    def _write(self, id: str, row: dict[str, Any]) -> None:
        store().set(_key(self.name, id), json.dumps(_plain(row)))

    def find_unique(self, where: dict[str, Any]) -> dict[str, Any] | None:
        raw = store().get(_key(self.name, str(where["id"])))
        return json.loads(raw) if raw else None

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        self._log(str(data["id"]), "create", data)
        self._write(str(data["id"]), data)
        return data

    def update(self, where: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        id = str(where["id"])
        row = {**(self.find_unique(where) or {"id": id}), **data}
        self._log(id, "update", data)
        self._write(id, row)
        return row

    def upsert(self, where: dict[str, Any], create: dict[str, Any],
               update: dict[str, Any]) -> dict[str, Any]:
        id = str(where["id"])
        existing = self.find_unique(where)
        row = {**existing, **update} if existing else dict(create)
        self._log(id, "upsert", row)
        self._write(id, row)
        return row


class AsyncTable:
    """The same table for ``async def`` code: every method is awaited."""

    def __init__(self, name: str) -> None:
        self.table = Table(name)

    async def find_unique(self, where: dict[str, Any]) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return self.table.find_unique(where)

    async def create(self, data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self.table.create(data)

    async def update(self, where: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self.table.update(where, data)

    async def upsert(self, where: dict[str, Any], create: dict[str, Any],
                     update: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self.table.upsert(where, create, update)


class Db:
    def __init__(self) -> None:
        self.chat = Table("chat")
        self.chat_session = Table("chat_session")
        self.user = Table("user")
        self.analytics = Table("analytics")


class AsyncDb:
    def __init__(self) -> None:
        self.chat = AsyncTable("chat")
        self.chat_session = AsyncTable("chat_session")
        self.user = AsyncTable("user")
        self.analytics = AsyncTable("analytics")


db = Db()
adb = AsyncDb()


def track(chat_id: str, event: str, **fields: Any) -> None:
    """``// handle stop — e.g. log analytics``: recorded in ``test:events:<chat_id>``."""
    store().rpush(f"test:events:{chat_id}", json.dumps({"hook": event, **_plain(fields)}))
