"""The delivery store's schema migrations on real files: a new database, one made by the release
before migrations (with its rows, read back through the store), refusals, the `migrate` modes
and two processes opening one new file at the same moment."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from delivery.drivers.sqlite import SCHEMA
from delivery.store import SqliteDeliveryStore
from infra.jsonio import dumps_str
from infra.migrations import ChecksumMismatch, DatabaseTooNew, PendingMigrations
from mingpian.settings import PROJECT_ROOT

INITIAL = SCHEMA.migrations[0].sql  # the schema as the release before migrations created it
DAY = "2026-11-30"
T0 = 1_795_000_000.0


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def recorded(path: Path) -> list[tuple[int, str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version").fetchall()


def expected() -> list[tuple[int, str, str]]:
    return [(m.version, m.name, m.checksum) for m in SCHEMA.migrations]


def previous_release_db(path: Path) -> None:
    """A database as the release before migrations left it: its schema (0001, run the way it ran
    it, with executescript), the call-event `dedupe` table older releases kept in it, and rows: an
    enterprise, a line, a delivery, its attempt, a charge, a receipt's message id."""
    db = sqlite3.connect(path)
    db.executescript(INITIAL)
    db.executescript(
        "CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;"
    )
    ent = {"id": "sf", "name": "顺丰速运有限公司", "signature": "顺丰速运"}
    line = {"number": "+8613800000001", "kind": "mobile", "verified": True}
    db.execute("INSERT INTO objects VALUES ('enterprise', '', 'sf', ?)", (dumps_str(ent),))
    db.execute("INSERT INTO objects VALUES ('line', 'sf', '+8613800000001', ?)", (dumps_str(line),))
    for eid, bot in [("b", "sip:106500@bot.example"), ("a", " 106500 "), ("c", "sip:777@bot.example")]:
        other = {"id": eid, "name": "N", "signature": "N", "chatbot": bot}
        db.execute("INSERT INTO objects VALUES ('enterprise', '', ?, ?)", (eid, dumps_str(other)))
    db.execute("INSERT INTO dedupe VALUES ('sf:c1:ended', ?)", (T0 + 86400,))
    db.execute(
        "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            "d1",
            "c1",
            "ended",
            "sf",
            "+8613800000001",
            "+8613912345678",
            "hangup",
            "courier-hangup",
            "hangup",
            dumps_str({"parcel": "SF1234"}),
            dumps_str(["ussd", "sms"]),
            1,
            "delivered",
            "",
            "sms",
            T0,
            T0,
            T0 + 5,
        ),
    )
    db.execute(
        "INSERT INTO attempts (id, delivery, step, channel, state, segments, units, started, deadline, "
        "done, detail) VALUES (1, 'd1', 1, 'sms', 'delivered', 1, 1, ?, ?, ?, '')",
        (T0 + 1, T0 + 61, T0 + 4),
    )
    db.execute("INSERT INTO message_ids VALUES ('m1', 1, 'DELIVRD')")
    db.execute(
        "INSERT INTO charges VALUES ('d1/1', 'sf', 'sf/pool1', '+8613800000001', 'sms', 1, 0, 0.05, ?, ?, 0)",
        (DAY, T0 + 1),
    )
    db.commit()
    db.close()


async def test_a_new_database_gets_every_migration(tmp_path: Path) -> None:
    path = tmp_path / "delivery.sqlite3"
    store = SqliteDeliveryStore(path)
    store.open()
    await store.put("enterprise", "", "sf", {"id": "sf"})
    store.close()
    assert recorded(path) == expected()
    assert {"objects", "deliveries", "charges", "schema_migrations"} <= tables(path)
    assert "dedupe" not in tables(path)
    store.open()  # again: nothing to do, nothing refused
    assert await store.get("enterprise", "", "sf") == {"id": "sf"}
    store.close()


async def test_a_database_of_the_previous_release_is_adopted_and_migrated_with_its_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "delivery.sqlite3"
    previous_release_db(path)
    assert "schema_migrations" not in tables(path)
    store = SqliteDeliveryStore(path)
    store.open()
    try:
        assert recorded(path) == expected()  # 0001 adopted (recorded), 0002 and 0003 applied
        assert "dedupe" not in tables(path)
        assert (await store.get("enterprise", "", "sf"))["signature"] == "顺丰速运"  # type: ignore[index]
        assert await store.find("line", "+8613800000001") == (
            "sf",
            {"number": "+8613800000001", "kind": "mobile", "verified": True},
        )
        d = await store.delivery("d1")
        assert d is not None and d.state == "delivered" and d.data == {"parcel": "SF1234"}
        assert d.chain == ["ussd", "sms"]
        [attempt] = await store.attempts("d1")
        assert (attempt.channel, attempt.state, attempt.done) == ("sms", "delivered", T0 + 4)
        assert await store.attempt_of_message("m1") == (1, "")  # rows from before days: none
        # chatbot owners backfilled: of two enterprises sharing an address, the first by id keeps it
        assert not await store.claim_chatbot("b", "106500")
        assert not await store.claim_chatbot("sf", "777")
        assert await store.claim_chatbot("a", "106500")
        assert await store.usage("sf", ("day", "channel")) == [
            {"day": DAY, "channel": "sms", "messages": 1, "units": 1, "overage_units": 0, "cost": 0.05}
        ]
        [stats] = await store.delivery_stats("sf")
        assert (stats["channel"], stats["outcome"], stats["attempts"]) == ("sms", "delivered", 1)
        assert stats["mean_seconds"] == 3.0
        await store.update_delivery("d1", reason="still writable")
        assert (await store.delivery("d1")).reason == "still writable"  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_changed_migration_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "delivery.sqlite3"
    SqliteDeliveryStore(path).open()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2")
    store = SqliteDeliveryStore(path)
    with pytest.raises(
        ChecksumMismatch,
        match=r"^delivery/migrations/sqlite/0002_drop_dedupe\.sql: changed after it was applied to "
        + str(path),
    ):
        store.open()
    with pytest.raises(RuntimeError, match="not open"):
        store.db.connection  # noqa: B018 - the refused store stays closed


def test_a_database_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "delivery.sqlite3"
    SqliteDeliveryStore(path).open()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', 0, 'x')")
    with pytest.raises(
        DatabaseTooNew, match=r"has migration 0099_from_the_future applied, newer than this code"
    ):
        SqliteDeliveryStore(path).open()


async def test_check_refuses_a_pending_migration_and_off_leaves_the_schema_alone(tmp_path: Path) -> None:
    path = tmp_path / "delivery.sqlite3"
    previous_release_db(path)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in SCHEMA.migrations)
    with pytest.raises(
        PendingMigrations, match=rf"{len(SCHEMA.migrations)} delivery migration\(s\) pending \({names}\)"
    ):
        SqliteDeliveryStore(path).open("check")
    store = SqliteDeliveryStore(path)
    store.open("off")  # the rows are there, in the old schema (which this code's reads may not know)
    assert await store.db.one("SELECT id FROM deliveries WHERE id = 'd1'") is not None
    store.close()
    assert "schema_migrations" not in tables(path) and "dedupe" in tables(path)
    SqliteDeliveryStore(path).open("auto")
    store = SqliteDeliveryStore(path)
    store.open("check")  # up to date now
    store.close()


OPENER = """
import logging, sys, time
from pathlib import Path
from delivery.store import SqliteDeliveryStore
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s %(message)s")
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()  # ready
while not go.exists():
    time.sleep(0.0005)
store = SqliteDeliveryStore(Path(sys.argv[1]))
store.open()
store.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("start", ["new", "previous release"])
def test_two_processes_opening_one_file_at_once_apply_each_migration_once(tmp_path: Path, start: str) -> None:
    path = tmp_path / "delivery.sqlite3"
    if start == "previous release":
        previous_release_db(path)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path), str(go), str(r)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    deadline = time.monotonic() + 30
    while not all(r.exists() for r in ready):  # both imported and waiting
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    done = [line for out, _ in outs for line in out.splitlines() if line.startswith("infra.migrations ")]
    assert sorted(line.split()[2] for line in done) == [m.file for m in SCHEMA.migrations], done
    assert recorded(path) == expected()
