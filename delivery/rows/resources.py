"""Configuration documents (enterprises, lines, staff, cards, packages), the audit log, API keys
and chatbot owners.

Call events read documents and keys on every call, so each process keeps them in memory. A
change drops them everywhere: the driver tells this process at once and, on PostgreSQL, the
other workers when the writing transaction commits (NOTIFY); between that commit and the
notification's arrival (about a millisecond on one network) another worker may still read the
old document. `generation` is bumped on every drop, so derived caches can compare it.
"""

from __future__ import annotations

import time
from typing import Any

from infra import jsonio

from ..drivers import Driver

_GET = "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 AND id=$3"
GET_FOR_UPDATE_SQL = {False: _GET, True: _GET + " FOR UPDATE"}  # SQLite, PostgreSQL


class ResourceRows:
    db: Driver
    generation: int
    _docs: dict[tuple[Any, ...], Any]
    _keys: dict[str, tuple[str, str | None]]

    def _forget(self) -> None:
        self._docs.clear()
        self._keys.clear()
        self.generation += 1

    async def _changed(self) -> None:
        """Drop every process's caches (this one's now, the others' at commit)."""
        await self.db.notify("docs")

    async def put(self, kind: str, enterprise: str, id: str, body: dict[str, Any]) -> None:
        await self.db.run(
            "INSERT INTO objects VALUES ($1,$2,$3,$4) ON CONFLICT (kind, enterprise, id) "
            "DO UPDATE SET body = excluded.body",
            kind, enterprise, id, jsonio.dumps_str(body),
        )  # fmt: skip
        await self._changed()

    async def put_new(self, kind: str, enterprise: str, id: str, body: dict[str, Any]) -> bool:
        """Insert a document unless one has its key; whether it did. A concurrent insert of the
        same key waits for the other transaction, then finds its row: one of them wins."""
        n = await self.db.run(
            "INSERT INTO objects VALUES ($1,$2,$3,$4) ON CONFLICT (kind, enterprise, id) DO NOTHING",
            kind, enterprise, id, jsonio.dumps_str(body),
        )  # fmt: skip
        if n:
            await self._changed()
        return n > 0

    async def get_for_update(self, kind: str, enterprise: str, id: str) -> dict[str, Any] | None:
        """Inside a transaction: a document as the database has it (not the cache), held against
        every other writer until the transaction ends (PostgreSQL locks the row; on SQLite a
        transaction runs alone). What a change that depends on the document's state reads."""
        sql = GET_FOR_UPDATE_SQL[self.db.name == "postgresql"]
        row = await self.db.one(sql, kind, enterprise, id)
        return jsonio.loads(row[0]) if row else None  # type: ignore[no-any-return]

    async def get(self, kind: str, enterprise: str, id: str) -> dict[str, Any] | None:
        """A document (shared from the cache: callers copy before changing it)."""
        key = ("get", kind, enterprise, id)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        generation = self.generation
        row = await self.db.one(
            "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 AND id=$3", kind, enterprise, id
        )
        doc = jsonio.loads(row[0]) if row else None
        if generation == self.generation:  # not dropped while the query ran
            self._docs[key] = doc
        return doc  # type: ignore[no-any-return]

    async def find(self, kind: str, id: str) -> tuple[str, dict[str, Any]] | None:
        """An object by id in any enterprise (lines: a number belongs to one enterprise)."""
        key = ("find", kind, id)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        generation = self.generation
        row = await self.db.one("SELECT enterprise, body FROM objects WHERE kind=$1 AND id=$2", kind, id)
        hit = (row[0], jsonio.loads(row[1])) if row else None
        if generation == self.generation:
            self._docs[key] = hit
        return hit

    async def list(self, kind: str, enterprise: str | None = None) -> list[dict[str, Any]]:
        key = ("list", kind, enterprise)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        generation = self.generation
        if enterprise is None:
            rows = await self.db.all("SELECT body FROM objects WHERE kind=$1 ORDER BY id", kind)
        else:
            rows = await self.db.all(
                "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 ORDER BY id", kind, enterprise
            )
        out = [jsonio.loads(r[0]) for r in rows]
        if generation == self.generation:
            self._docs[key] = out
        return out

    async def delete(self, kind: str, enterprise: str, id: str) -> bool:
        n = await self.db.run(
            "DELETE FROM objects WHERE kind=$1 AND enterprise=$2 AND id=$3", kind, enterprise, id
        )
        await self._changed()
        return n > 0

    async def delete_enterprise(self, enterprise: str) -> None:
        async with self.db.transaction():
            await self.db.run("DELETE FROM objects WHERE enterprise=$1", enterprise)
            await self.db.run("DELETE FROM objects WHERE kind='enterprise' AND id=$1", enterprise)
            await self.db.run("DELETE FROM api_keys WHERE enterprise=$1", enterprise)
            await self.db.run("DELETE FROM chatbot_owners WHERE enterprise=$1", enterprise)
            await self.db.run("DELETE FROM media WHERE enterprise=$1", enterprise)
            await self._changed()

    async def claim_chatbot(self, enterprise: str, bot: str) -> bool:
        """Make `bot` (a `bot_id`; "" for none) the enterprise's one chatbot; False, changing
        nothing, if another enterprise owns it (a concurrent claim waits on the primary key)."""
        if bot:
            await self.db.run(
                "INSERT INTO chatbot_owners VALUES ($1,$2) ON CONFLICT (bot) DO NOTHING", bot, enterprise
            )
            row = await self.db.one("SELECT enterprise FROM chatbot_owners WHERE bot=$1", bot)
            if row is None or row[0] != enterprise:
                return False
        await self.db.run("DELETE FROM chatbot_owners WHERE enterprise=$1 AND bot<>$2", enterprise, bot)
        return True

    async def audit(
        self, actor: str, enterprise: str, target: str, action: str, detail: dict[str, Any]
    ) -> None:
        await self.db.run(
            "INSERT INTO audit (at, actor, enterprise, target, action, detail) VALUES ($1,$2,$3,$4,$5,$6)",
            time.time(), actor, enterprise, target, action, jsonio.dumps_str(detail),
        )  # fmt: skip

    async def audit_log(self, enterprise: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self.db.all(
            "SELECT at, actor, target, action, detail FROM audit WHERE enterprise=$1 "
            "ORDER BY seq DESC LIMIT $2",
            enterprise, limit,
        )  # fmt: skip
        return [
            {"at": r[0], "actor": r[1], "target": r[2], "action": r[3], "detail": jsonio.loads(r[4])}
            for r in rows
        ]

    # -- API keys ----------------------------------------------------------------------------
    async def add_key(self, key_hash: str, enterprise: str | None, label: str) -> None:
        await self.db.run(
            "INSERT INTO api_keys VALUES ($1,$2,$3,$4) ON CONFLICT (hash) DO UPDATE SET "
            "enterprise = excluded.enterprise, label = excluded.label, created = excluded.created",
            key_hash, enterprise, label, time.time(),
        )  # fmt: skip
        await self._changed()

    async def key(self, key_hash: str) -> tuple[str, str | None] | None:
        if key_hash in self._keys:
            return self._keys[key_hash]
        generation = self.generation
        row = await self.db.one("SELECT hash, enterprise FROM api_keys WHERE hash=$1", key_hash)
        hit = (row[0], row[1]) if row else None
        # unknown keys are not cached: a flood of guesses must not grow memory
        if hit is not None and generation == self.generation:
            self._keys[key_hash] = hit
        return hit
