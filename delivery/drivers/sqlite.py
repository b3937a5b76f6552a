"""The SQLite driver: the store's statements on one file, through the group-commit connection
(groupcommit.py). One server process owns the file, so a notification only reaches this process.

The store's statements are written once in PostgreSQL's spelling; this driver reads them as
SQLite does, rewriting each statement once (then cached):
- `$n` → `?n` (SQLite numbers its parameters the same way, a number may repeat);
- `= ANY($n::type[])` → `IN (SELECT value FROM json_each(?n))`, the list passed as JSON text;
- `::type` casts are dropped: SQLite's values carry their own types, and the casts are there to
  give PostgreSQL a type (a NULL parameter, an average as float8);
- `ILIKE` → `LIKE` (SQLite's LIKE already ignores the case of ASCII letters).
Everything else (upserts, `RETURNING`, window functions) is spelled alike by both since SQLite 3.35.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from infra import jsonio
from infra.migrations import Migrations

from ..groupcommit import GroupCommitDb
from . import Row

# The schema: numbered migrations in delivery/migrations/sqlite/, applied by open() (infra/migrations.py).
SCHEMA = Migrations.load("delivery", "sqlite", database="delivery", adopt_if_table="objects")
SPELLING = re.compile(r"= ANY\(\$(\d+)::\w+\[\]\)|\$(\d+)|::(?:text|float8|int|bigint|numeric)\b|\bILIKE\b")
CACHED = 1024  # statements rewritten and kept (the store builds a bounded set of shapes)


def to_sqlite(sql: str) -> tuple[str, tuple[int, ...]]:
    """A statement in SQLite's spelling, and the positions of its list parameters."""
    lists: list[int] = []

    def spell(m: re.Match[str]) -> str:
        if m[1]:
            lists.append(int(m[1]) - 1)
            return f"IN (SELECT value FROM json_each(?{m[1]}))"
        if m[2]:
            return f"?{m[2]}"
        return "LIKE" if m[0] == "ILIKE" else ""

    return SPELLING.sub(spell, sql), tuple(lists)


class SqliteDriver(GroupCommitDb):
    name = "sqlite"
    shared = False  # one process owns the file
    writes = None  # statements run at once, inside the group transaction

    def __init__(self, path: Path, synchronous: str = "NORMAL", migrate: str = "auto") -> None:
        super().__init__(path, SCHEMA, synchronous)
        self.migrate = migrate  # schema migrations at start: auto | check | off
        self._hear: list[Callable[[str], None]] = []
        self._spelled: dict[str, tuple[str, tuple[int, ...]]] = {}

    async def start(self) -> None:
        self.open(self.migrate)
        self.start_batching()

    async def stop(self) -> None:
        self.close()

    def _forget(self) -> None:
        for hear in self._hear:
            hear("rollback")

    transaction = GroupCommitDb.tx  # savepoints inside the group transaction

    def in_block(self) -> bool:
        return self._savepoints > 0

    async def ping(self) -> None:
        self.db.execute("SELECT 1")

    async def snapshot(self) -> list[str]:
        return sorted(self.db.iterdump())

    def _spelling(self, sql: str) -> tuple[str, tuple[int, ...]]:
        """`sql` in SQLite's spelling: each statement is rewritten once (the store builds a
        bounded set of shapes; the cache is emptied should it ever pass CACHED)."""
        hit = self._spelled.get(sql)
        if hit is None:
            if len(self._spelled) >= CACHED:
                self._spelled.clear()
            hit = self._spelled[sql] = to_sqlite(sql)
        return hit

    @staticmethod
    def _values(lists: tuple[int, ...], args: Sequence[Any]) -> Sequence[Any]:
        """The arguments, each list parameter as JSON text (for json_each)."""
        values = list(args)
        for i in lists:
            values[i] = jsonio.dumps_str(list(values[i]))
        return values

    # The statements run on every call event: the cache is read inline, lists are rare.
    async def one(self, sql: str, *args: Any) -> Row | None:
        text, lists = self._spelled.get(sql) or self._spelling(sql)
        return self.db.execute(text, self._values(lists, args) if lists else args).fetchone()  # type: ignore[no-any-return]

    async def all(self, sql: str, *args: Any) -> list[Row]:
        text, lists = self._spelled.get(sql) or self._spelling(sql)
        return self.db.execute(text, self._values(lists, args) if lists else args).fetchall()

    committed = all  # every statement has run: nothing is queued

    async def run(self, sql: str, *args: Any) -> int:
        text, lists = self._spelled.get(sql) or self._spelling(sql)
        return self.db.execute(text, self._values(lists, args) if lists else args).rowcount

    async def insert(self, sql: str, *args: Any) -> int:
        text, lists = self._spelled.get(sql) or self._spelling(sql)
        return int(self.db.execute(text, self._values(lists, args) if lists else args).lastrowid or 0)

    async def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, lists = self._spelling(sql)
        self.db.executemany(text, (self._values(lists, r) for r in rows) if lists else rows)

    async def lock(self, key: str) -> None:
        pass  # one process, and a transaction runs without yielding: nothing else can interleave

    async def notify(self, payload: str) -> None:
        for hear in self._hear:
            hear(payload)

    def listen(self, hear: Callable[[str], None]) -> None:
        self._hear.append(hear)

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection itself, for what only SQLite has (its counters, metering/sqlite.py)."""
        return self.db
