"""The store's two drivers: SQLite reads the statements' PostgreSQL spelling, both answer alike, and
the aggregates' modules hold SQL only (no database library of their own)."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from delivery.drivers.postgres import changed_rows
from delivery.drivers.sqlite import SqliteDriver, to_sqlite
from delivery.store import PgDeliveryStore, SqliteDeliveryStore, Store

ROWS = Path(__file__).resolve().parents[2] / "delivery" / "rows"


def test_sqlite_reads_postgresql_parameters_casts_lists_and_ilike() -> None:
    assert to_sqlite("SELECT a FROM t WHERE b=$1 AND ($2::text IS NULL OR c=$2)") == (
        "SELECT a FROM t WHERE b=?1 AND (?2 IS NULL OR c=?2)",
        (),
    )
    assert to_sqlite("DELETE FROM t WHERE k = ANY($3::text[]) AND o=$1 AND n = ANY($2::bigint[])") == (
        "DELETE FROM t WHERE k IN (SELECT value FROM json_each(?3)) AND o=?1 "
        "AND n IN (SELECT value FROM json_each(?2))",
        (2, 1),
    )
    assert to_sqlite("SELECT round(sum(cost)::numeric, 4)::float8 FROM c WHERE id ILIKE $1") == (
        "SELECT round(sum(cost), 4) FROM c WHERE id LIKE ?1",
        (),
    )
    # a parameter past 9 keeps its number; a cast's name inside a word is not a cast
    assert to_sqlite("VALUES ($10, $1::int, 'x::textual')")[0] == "VALUES (?10, ?1, 'x::textual')"


def test_command_statuses_count_the_rows_changed() -> None:
    assert [changed_rows(s) for s in ("INSERT 0 1", "UPDATE 3", "DELETE 0", "SELECT 2", "BEGIN")] == [
        1, 3, 0, 2, 0,
    ]  # fmt: skip


def test_the_aggregates_hold_sql_over_the_driver_and_import_no_database_library() -> None:
    for path in sorted(ROWS.glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"sqlite3", "asyncpg"}, (
            f"{path.name} imports {imported & {'sqlite3', 'asyncpg'}}"
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteDeliveryStore(tmp_path / "d.sqlite3")
    else:
        s = PgDeliveryStore(request.getfixturevalue("postgres_url"))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_both_drivers_answer_one_statement_alike(store: Store) -> None:
    db = store.db
    assert await db.run("INSERT INTO optouts VALUES ($1,$2,$3,$4,$5)", "sf", "+86138", 1.0, "sms", "TD") == 1
    assert await db.run("INSERT INTO optouts VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING", "sf", "+86138", 2.0, "sms", "TD") == 0  # fmt: skip
    await db.run_many(
        "INSERT INTO optouts VALUES ($1,$2,$3,$4,$5)",
        [("sf", f"+8613{i}", float(i), "ussd", "退订") for i in range(3)],
    )
    rows = await db.all(
        "SELECT number, at FROM optouts WHERE enterprise=$1 AND number = ANY($2::text[]) ORDER BY at",
        "sf",
        ["+86131", "+86132", "+86139"],
    )
    assert [tuple(r) for r in rows] == [("+86131", 1.0), ("+86132", 2.0)]
    assert (await db.one("SELECT count(*) FROM optouts WHERE text ILIKE $1", "td"))[0] == 1  # type: ignore[index]
    gone = await db.all("DELETE FROM optouts WHERE channel=$1 RETURNING number", "ussd")
    assert sorted(r[0] for r in gone) == ["+86130", "+86131", "+86132"]
    async with db.transaction():
        await db.run("DELETE FROM optouts")
        assert await db.one("SELECT number FROM optouts") is None
        async with db.transaction():  # a nested block is a savepoint
            await db.run("INSERT INTO optouts VALUES ($1,$2,$3,$4,$5)", "jd", "+86137", 3.0, "sms", "退订")
    assert [tuple(r) for r in await db.all("SELECT enterprise, number FROM optouts")] == [("jd", "+86137")]


async def test_a_rolled_back_block_drops_the_read_caches(store: Store) -> None:
    await store.put("card", "sf", "c1", {"id": "c1", "v": 1})
    assert (await store.get("card", "sf", "c1")) == {"id": "c1", "v": 1}
    before = store.generation
    with pytest.raises(RuntimeError):
        async with store.tx():
            await store.put("card", "sf", "c1", {"id": "c1", "v": 2})
            assert (await store.get("card", "sf", "c1")) == {"id": "c1", "v": 2}  # cached inside
            raise RuntimeError("refused")
    assert store.generation > before
    assert (await store.get("card", "sf", "c1")) == {"id": "c1", "v": 1}


def test_the_sqlite_driver_rewrites_each_statement_once(tmp_path: Path) -> None:
    d = SqliteDriver(tmp_path / "d.sqlite3")
    d.open()
    try:
        sql = "SELECT count(*) FROM objects WHERE kind=$1"
        first = d._spelling(sql)
        assert d._spelling(sql) is first
    finally:
        d.close()
