"""The chatbot SQLite store's schema migrations on real files: a new database, and one made by the
release before migrations, adopted with its conversations and outbox intact."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from chatbot.store.sqlite import SCHEMA, SqliteStore
from infra.migrations import PendingMigrations


def recorded(path: Path) -> list[tuple[int, str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version").fetchall()


async def test_a_new_database_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "chatbot.sqlite3"
    store = SqliteStore(path)
    await store.open()
    assert (await store.load("c1", "m1")).state is None
    await store.close()
    assert recorded(path) == [(m.version, m.name, m.checksum) for m in SCHEMA.migrations]


async def test_a_database_of_the_previous_release_is_adopted_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "chatbot.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.migrations[0].sql)  # as that release's open ran it
    db.execute("INSERT INTO dedupe VALUES ('m1', ?)", (time.time(),))
    db.execute("INSERT INTO conv VALUES ('c1', 3, '{\"node\": \"ask\"}')")
    db.execute(
        "INSERT INTO outbox (message_id, conv, body, created) VALUES ('out1', 'c1', '{\"text\": \"hi\"}', ?)",
        (time.time(),),
    )
    db.commit()
    db.close()

    with pytest.raises(
        PendingMigrations,
        match=rf"{len(SCHEMA.migrations)} chatbot migration\(s\) pending "
        rf"\({', '.join(f'{m.version:04d}_{m.name}' for m in SCHEMA.migrations)}\)",
    ):
        await SqliteStore(path, migrate="check").open()
    store = SqliteStore(path)
    await store.open()
    try:
        assert recorded(path) == [(m.version, m.name, m.checksum) for m in SCHEMA.migrations]
        assert (await store.load("c1", "m1")).seen
        loaded = await store.load("c1", "m2")
        assert (loaded.state, loaded.version) == ({"node": "ask"}, 3)
        assert await store.pending() == 1
        [item] = await store.claim(10, time.time(), 30)
        assert (item.message_id, item.body) == ("out1", '{"text": "hi"}')
    finally:
        await store.close()
    store = SqliteStore(path, migrate="check")  # up to date now
    await store.open()
    await store.close()
