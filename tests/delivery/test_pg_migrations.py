"""Schema migrations of the PostgreSQL delivery store: a database of the previous schema version,
with data in it, is upgraded when a worker starts; workers starting at once apply each migration
once; `mingpian migrate` reports and applies them too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import asyncpg
import pytest

from delivery.drivers.postgres import MIGRATIONS
from delivery.store import PgDeliveryStore
from infra.migrations import PendingMigrations
from mingpian.settings import PROJECT_ROOT

NAMES = [f"{m.version:04d}_{m.name}" for m in MIGRATIONS.migrations]  # 0001_initial, …
LATER = NAMES[1:]  # what a database of the previous version (0001 only) has pending


async def _previous_version(url: str) -> None:
    """The database as a release with only 0001 left it, with an enterprise and a charge."""
    conn = await asyncpg.connect(url)
    try:
        first = MIGRATIONS.migrations[0]
        await conn.execute(first.sql)
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at DOUBLE PRECISION NOT NULL, checksum TEXT NOT NULL)"
        )
        await conn.execute(
            "INSERT INTO schema_migrations VALUES (1, $1, $2, $3)", first.name, time.time(), first.checksum
        )
        await conn.execute(
            """INSERT INTO objects VALUES ('enterprise', '', 'sf', '{"id": "sf", "name": "SF"}')"""
        )
        for eid, bot in [("b", "sip:106500@bot.example"), ("a", " 106500 "), ("c", "sip:777@bot.example")]:
            body = f'{{"id": "{eid}", "name": "N", "chatbot": "{bot}"}}'
            await conn.execute("INSERT INTO objects VALUES ('enterprise', '', $1, $2)", eid, body)
        await conn.execute(
            "INSERT INTO charges VALUES ('d1#0', 'sf', 'pool', '+8613800000001', 'sms', 1, 0, 0.05, '2026-11-30', 1, 0)"
        )
        for did, state, lease in [("c1:ringing", "active", 100.0), ("c2:ended", "delivered", 0.0)]:
            await conn.execute(
                "INSERT INTO deliveries VALUES ($1, $2, 'ringing', 'sf', '+8613800000001', '+8613900000001', "
                "'card', 'tpl', 'identity', '{}', '[\"ussd\"]', 0, $3, '', '', 1, 1, 1, 'w1', $4)",
                did, did.partition(":")[0], state, lease,
            )  # fmt: skip
    finally:
        await conn.close()


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_a_database_of_the_previous_version_is_upgraded_with_its_data(postgres_url: str) -> None:
    await _previous_version(postgres_url)
    with pytest.raises(
        PendingMigrations,
        match=rf"{len(LATER)} delivery migration\(s\) pending \({', '.join(LATER)}\)",
    ):
        await PgDeliveryStore(postgres_url, migrate="check").start()
    store = PgDeliveryStore(postgres_url)
    await store.start()
    try:
        assert await _versions(postgres_url) == [m.version for m in MIGRATIONS.migrations]
        assert await store.get("enterprise", "", "sf") == {"id": "sf", "name": "SF"}
        # chatbot owners backfilled: of two enterprises sharing an address, the first by id keeps it
        assert not await store.claim_chatbot("b", "106500")
        assert not await store.claim_chatbot("sf", "777")
        assert await store.claim_chatbot("a", "106500")
        assert (await store.usage("sf", ("channel",)))[0]["messages"] == 1
        # the active delivery's lease moved to its own table; a worker takes it over from there
        assert await store.active_deliveries() == ["c1:ringing"]
        assert await store.claim_chains("w2", 200.0, 215.0, 10) == ["c1:ringing"]
    finally:
        await store.stop()


async def test_no_index_of_deliveries_covers_a_column_the_store_updates(postgres_url: str) -> None:
    """So PostgreSQL updates a delivery in place (HOT: no new index entries) when its chain moves
    on or finishes; leases live in `active_chains`."""
    from delivery.rows.calls import UPDATE_TYPES

    store = PgDeliveryStore(postgres_url)
    await store.start()
    try:
        indexed = await store.db.pool.fetch(
            "SELECT i.indexrelid::regclass::text, a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'deliveries'::regclass"
        )
        predicates = await store.db.pool.fetchval(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'deliveries'::regclass AND indpred IS NOT NULL"
        )
        assert {r[1] for r in indexed} & set(UPDATE_TYPES["deliveries"]) == set(), indexed
        assert predicates == 0
        assert "lease_until" not in {r[1] for r in indexed}
    finally:
        await store.stop()


async def test_workers_starting_at_once_apply_each_migration_once(postgres_url: str) -> None:
    stores = [PgDeliveryStore(postgres_url) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        assert await _versions(postgres_url) == [m.version for m in MIGRATIONS.migrations]
    finally:
        await asyncio.gather(*(s.stop() for s in stores))


def test_mingpian_migrate_reports_and_applies_postgres_migrations(
    postgres_url: str, tmp_path: object
) -> None:
    asyncio.run(_previous_version(postgres_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update({"MINGPIAN_DATABASE_URL": postgres_url, "MINGPIAN_DATA_DIR": str(tmp_path)})

    def mingpian(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mingpian", *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip

    out = mingpian("migrate", "--status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "delivery (PostgreSQL)"
    assert lines[1].split()[:2] == ["0001_initial", "applied"]
    assert [line.split() for line in lines[2 : 2 + len(LATER)]] == [[n, "pending"] for n in LATER]
    out = mingpian("migrate")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "delivery (PostgreSQL): " + ", ".join(f"applied {n}" for n in LATER)
    )
    assert asyncio.run(_versions(postgres_url)) == [m.version for m in MIGRATIONS.migrations]
