"""The migration runner on real SQLite files: order, one transaction each, the record, adoption
without re-running the baseline, and its refusals (changed file, newer database, out of order,
a failing statement, an adoptable database that lacks part of the baseline)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.migrations import (
    ChecksumMismatch,
    DatabaseTooNew,
    Migration,
    MigrationError,
    Migrations,
    PendingMigrations,
    checksum,
    migrate_sqlite,
    sql_statements,
    status_sqlite,
)

# 0001 has no IF NOT EXISTS: running it on a database that has table `a` fails, so an adopted
# database proves it was recorded without being run.
FILES = {
    1: ("initial", "CREATE TABLE a (x INTEGER);\nCREATE INDEX a_x ON a (x);\n"),
    2: ("add_b", "-- a comment; with a semicolon\nCREATE TABLE b (y TEXT DEFAULT 'p;q');\n"),
    3: ("fill_b", "INSERT INTO b (y) SELECT 'n' || x FROM a;"),
}


def migrations(files: dict[int, tuple[str, str]] = FILES) -> Migrations:
    return Migrations(
        "test",
        "sqlite",
        "t/migrations/sqlite",
        tuple(
            Migration(v, name, sql, checksum(sql), f"t/migrations/sqlite/{v:04d}_{name}.sql")
            for v, (name, sql) in sorted(files.items())
        ),
        adopt_if_table="a",
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    yield conn
    conn.close()


def versions(db: sqlite3.Connection) -> list[tuple[int, str]]:
    return db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()


def test_a_new_database_gets_every_migration_in_order_and_recorded(db: sqlite3.Connection) -> None:
    steps = migrate_sqlite(db, migrations())
    assert [(s.migration.version, s.adopted) for s in steps] == [(1, False), (2, False), (3, False)]
    assert versions(db) == [(1, "initial"), (2, "add_b"), (3, "fill_b")]
    row = db.execute("SELECT applied_at, checksum FROM schema_migrations WHERE version = 2").fetchone()
    assert row[0] > 0 and row[1] == checksum(FILES[2][1])
    assert db.execute("SELECT dflt_value FROM pragma_table_info('b')").fetchone() == ("'p;q'",)
    assert migrate_sqlite(db, migrations()) == []  # nothing left: nothing done
    st = status_sqlite(db, migrations())
    assert [a.version for a in st.applied] == [1, 2, 3] and st.pending == ()


def test_a_database_made_before_migrations_is_adopted_without_running_0001(db: sqlite3.Connection) -> None:
    db.executescript(FILES[1][1])
    db.execute("INSERT INTO a VALUES (7)")
    st = status_sqlite(db, migrations())
    assert st.adopt and [m.version for m in st.pending] == [1, 2, 3]
    steps = migrate_sqlite(db, migrations())  # 0001 run again would fail: table a exists
    assert [(s.migration.version, s.adopted) for s in steps] == [(1, True), (2, False), (3, False)]
    assert versions(db) == [(1, "initial"), (2, "add_b"), (3, "fill_b")]
    assert db.execute("SELECT x FROM a").fetchall() == [(7,)]
    assert db.execute("SELECT y FROM b").fetchall() == [("n7",)]


def test_adoption_refuses_a_database_missing_part_of_the_baseline(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE a (x INTEGER)")  # no index a_x: made by an older build
    with pytest.raises(
        MigrationError,
        match=r"t\.sqlite3: made before migrations but lacks what "
        r"t/migrations/sqlite/0001_initial\.sql creates \(index a_x\)",
    ):
        migrate_sqlite(db, migrations())
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'schema_migrations'").fetchone() is None


def test_each_migration_is_its_own_transaction(db: sqlite3.Connection) -> None:
    """A failing statement takes its whole migration back, and only that one."""
    bad = {**FILES, 3: ("broken", "CREATE TABLE c (z INTEGER);\nINSERT INTO nowhere VALUES (1);\n")}
    with pytest.raises(MigrationError, match=r"t/migrations/sqlite/0003_broken\.sql: no such table: nowhere"):
        migrate_sqlite(db, migrations(bad))
    assert versions(db) == [(1, "initial"), (2, "add_b")]
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'c'").fetchone() is None
    assert not db.in_transaction


def test_a_changed_migration_is_refused_naming_its_file(db: sqlite3.Connection) -> None:
    migrate_sqlite(db, migrations())
    edited = {**FILES, 2: ("add_b", FILES[2][1] + "CREATE INDEX b_y ON b (y);\n")}
    for mode in ("auto", "check"):
        with pytest.raises(
            ChecksumMismatch,
            match=r"^t/migrations/sqlite/0002_add_b\.sql: changed after it "
            r"was applied to .*t\.sqlite3",
        ):
            migrate_sqlite(db, migrations(edited), mode)
    assert migrate_sqlite(db, migrations(edited), "off") == []  # off: no checks at all
    # line endings alone are not a change
    crlf = {v: (n, sql.replace("\n", "\r\n")) for v, (n, sql) in FILES.items()}
    assert migrate_sqlite(db, migrations(crlf)) == []


def test_a_database_of_a_newer_release_is_refused(db: sqlite3.Connection) -> None:
    migrate_sqlite(db, migrations())
    older = {v: FILES[v] for v in (1, 2)}
    with pytest.raises(
        DatabaseTooNew,
        match=r"t\.sqlite3: has migration 0003_fill_b applied, newer than "
        r"this code knows \(its latest is t/migrations/sqlite/0002_add_b\.sql\)",
    ):
        migrate_sqlite(db, migrations(older))


def test_a_pending_migration_numbered_below_an_applied_one_is_refused(db: sqlite3.Connection) -> None:
    migrate_sqlite(db, migrations())
    db.execute("DELETE FROM schema_migrations WHERE version = 2")
    with pytest.raises(MigrationError, match=r"0002_add_b\.sql: pending on .* but the later 0003_fill_b"):
        migrate_sqlite(db, migrations())


def test_check_mode_changes_nothing_and_names_what_is_pending(db: sqlite3.Connection) -> None:
    migrate_sqlite(db, migrations({1: FILES[1]}))
    with pytest.raises(
        PendingMigrations,
        match=r"t\.sqlite3: 2 test migration\(s\) pending "
        r"\(0002_add_b, 0003_fill_b\)$",
    ) as info:
        migrate_sqlite(db, migrations(), "check")
    assert [m.version for m in info.value.pending] == [2, 3]
    assert versions(db) == [(1, "initial")]
    assert migrate_sqlite(db, migrations({1: FILES[1]}), "check") == []


def test_statements_split_where_sqlite_says_they_end() -> None:
    script = (
        "-- header; not a statement\n"
        "CREATE TABLE t (v TEXT DEFAULT ';');\n"
        "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN UPDATE t SET v = 'a;b'; END;\n"
        "/* trailing; comment */\n"
    )
    got = list(sql_statements(script))
    assert len(got) == 2 and got[1].startswith("CREATE TRIGGER") and got[1].endswith("END;")
    with pytest.raises(MigrationError, match=r"x\.sql: the last statement does not end with ';'"):
        list(sql_statements("CREATE TABLE t (v);\nCREATE TABLE u (w)", "x.sql"))


def test_the_shipped_migration_sets_load() -> None:
    from chatbot.store.sqlite import SCHEMA as CHATBOT
    from delivery.drivers.sqlite import SCHEMA as DELIVERY

    labels = [m.label for m in DELIVERY.migrations]
    assert labels[:4] == [
        "0001_initial",
        "0002_drop_dedupe",
        "0003_charges_by_enterprise",
        "0004_media_library",
    ]
    assert [m.version for m in DELIVERY.migrations] == list(
        range(1, len(labels) + 1)
    )  # numbered without gaps
    assert DELIVERY.migrations[1].file == "delivery/migrations/sqlite/0002_drop_dedupe.sql"
    assert [m.label for m in CHATBOT.migrations][:1] == ["0001_initial"]
    from delivery.drivers.postgres import MIGRATIONS as DELIVERY_PG

    pg = [m.label for m in DELIVERY_PG.migrations]
    assert pg[:3] == ["0001_initial", "0002_charges_by_enterprise", "0003_media_library"]
    assert [m.version for m in DELIVERY_PG.migrations] == list(range(1, len(pg) + 1))
    assert CHATBOT.folder == "chatbot/store/migrations/sqlite"
