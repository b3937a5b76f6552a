"""Retention of the tables that grow with every call event: on PostgreSQL a day's partition made
ahead and dropped whole after its days, on SQLite the day deleted in batches; two workers pruning
at once; calls accepted while a prune runs (a drop waits at most a moment for its lock, never
holding intake up behind a long reader); lookups by id across days; a migration that moves
existing rows into the partitions; and reports saying when their range was pruned. On SQLite
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from delivery.metering import day_of
from delivery.open_store import open_store
from delivery.retention import TABLES, Retention
from delivery.rows import partitions
from delivery.store import Store
from mingpian.api.delivery import delivery_key

from .support import OPERATOR, AppFactory, auth, call

GROWING = tuple(t for t in TABLES if t != "delivery_events")  # the raw events: test_events.py


async def make_days(r: Retention, now: float, back: int) -> None:
    """PostgreSQL: the partitions of the `back` days before `now` (as the upkeep made them then)."""
    if r.rows.db.name == "postgresql":
        for k in range(back + 1):
            for t in GROWING:
                await r.make_ahead(t, now - k * 86400)


async def seed(store: Store, age: int, now: float, n: int = 1, tag: str = "") -> None:
    """`n` rows of every growing table written `age` days before `now`."""
    db, at = store.db, now - age * 86400
    day = day_of(at)
    pg = db.name == "postgresql"
    d = ", day" if pg else ""
    dv = lambda i: f", ${i}" if pg else ""  # noqa: E731
    tail = (day,) if pg else ()
    async with db.transaction():
        for i in range(n):
            key = f"{tag}{age}-{i}"
            aid = 900000 + age * 10000 + i + (5000 if tag else 0)
            await db.run(
                f"INSERT INTO calls (call_id, phase, at{d}) VALUES ($1, 'hangup', $2{dv(3)})", key, at, *tail
            )
            await db.run(
                "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, "
                f"data, chain, step, state, reason, channel, event_at, created, updated{d}) VALUES ($1, $1, "
                f"'hangup', 'sf', '+8610', '+8613800000000', 'courier', 't', 'hangup', '{{}}', '[\"sms\"]', 0, "
                f"'done', '', 'sms', $2, $2, $2{dv(3)})",
                key, at, *tail,
            )  # fmt: skip
            await db.run(
                "INSERT INTO attempts (id, delivery, step, channel, state, segments, units, started, deadline, "
                f"done, detail{d}) VALUES ($1, $2, 0, 'sms', 'delivered', 1, 1, $3, $3, $3, ''{dv(4)})",
                aid, key, at, *tail,
            )  # fmt: skip
            await db.run(f"INSERT INTO message_ids (message_id, attempt, stat{d}) VALUES ($1, $2, NULL{dv(3)})",
                         f"m{key}", aid, *tail)  # fmt: skip
            await db.run(f"INSERT INTO receipts (message_id, stat, at, source{d}) VALUES ($1, 'DELIVRD', $2, ''"
                         f"{dv(3)})", f"m{key}", at, *tail)  # fmt: skip
            await db.run(
                "INSERT INTO charges (key, enterprise, package, line, channel, units, overage, cost, day, at, "
                "refunded) VALUES ($1, 'sf', NULL, '+8610', 'sms', 1, 0, 0.05, $2, $3, 0)",
                f"{key}#0", day, at,
            )  # fmt: skip
            await db.run("INSERT INTO taps VALUES ('sf', 'courier', $1, $2, 1)", f"b{tag}{i}", day)
    await db.durable()


DAY_OF = {
    "calls": "at", "deliveries": "created", "attempts": "started", "receipts": "at",
}  # fmt: skip


async def days_held(store: Store, table: str) -> set[str]:
    """The days a table holds rows of."""
    if store.db.name == "postgresql" or table in ("charges", "taps"):
        return {r[0] for r in await store.db.all(f"SELECT DISTINCT day FROM {table}")}
    if table == "message_ids":
        rows = await store.db.all("SELECT a.started FROM message_ids m JOIN attempts a ON a.id = m.attempt")
    else:
        rows = await store.db.all(f"SELECT {DAY_OF[table]} FROM {table}")
    return {day_of(float(r[0])) for r in rows}


async def test_partitions_made_ahead_and_days_past_retention_pruned(store: Store) -> None:
    now = time.time()
    r = Retention(store.db, {t: 3 for t in GROWING} | {"charges": 5})
    await make_days(r, now, 6)
    for age in range(6):
        await seed(store, age, now)
    pruned = await r.maintain(now, GROWING)
    for t in GROWING:
        kept = 5 if t == "charges" else 3
        assert await days_held(store, t) == {day_of(now - a * 86400) for a in range(kept)}, t
        assert r.kept_since(t, now) == day_of(now - (kept - 1) * 86400)
        gone = {day_of(now - a * 86400) for a in range(kept, 6)}
        assert gone <= {p.day for p in pruned if p.table == t}, t
    if store.db.name == "postgresql":
        for t in GROWING:
            days = await r.rows.days(t)
            assert min(days) == r.kept_since(t, now)  # nothing older left
            assert {day_of(now + 86400), day_of(now + 2 * 86400)} <= days  # made ahead
            # a row of a day without a partition waits in the default one, dropped with its day
        await store.db.run("INSERT INTO receipts (message_id, stat, at, source, day) VALUES ('x', 'D', 0, '', "
                           "'2001-01-01')")  # fmt: skip
        assert any(p.day == "default" for p in await r.maintain(now, ("receipts",)))
        assert (await store.db.one("SELECT count(*) FROM receipts WHERE day = '2001-01-01'"))[0] == 0  # type: ignore[index]
    else:
        assert {(p.table, p.rows) for p in pruned} == {(t, 1) for t in GROWING}


async def test_an_old_day_goes_in_batches_or_whole(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite deletes an old day a batch at a time (intake runs between); PostgreSQL drops the
    day's partition with one statement and deletes no row."""
    monkeypatch.setattr(partitions, "BATCH", 7)
    now = time.time()
    r = Retention(store.db, {"receipts": 3})
    await make_days(r, now, 5)
    await seed(store, 4, now, n=30)
    await seed(store, 0, now, n=2)
    ran: list[str] = []
    run = store.db.run

    async def counted(sql: str, *args: Any) -> int:
        ran.append(sql)
        return await run(sql, *args)

    monkeypatch.setattr(store.db, "run", counted)
    pruned = await r.maintain(now, ("receipts",))
    deletes = [s for s in ran if s.startswith("DELETE FROM receipts")]
    if store.db.name == "postgresql":
        assert any(s.startswith("DROP TABLE receipts_") for s in ran)
        assert deletes == ["DELETE FROM receipts_default WHERE day < $1"]  # the default partition only
        assert day_of(now - 4 * 86400) not in await r.rows.days("receipts")
    else:
        assert len(deletes) == 5  # 30 rows, 7 a statement
        assert [(p.day, p.rows) for p in pruned] == [(day_of(now - 4 * 86400), 30)]
    assert await days_held(store, "receipts") == {day_of(now)}


async def test_two_workers_pruning_at_once(backend: dict[str, Any], tmp_path: Path) -> None:
    now = time.time()
    first = open_store(backend.get("database_url", ""), tmp_path / "delivery.db")
    await first.start()
    # a fleet's second worker has a pool of its own; one process owns a SQLite file
    second = open_store(backend["database_url"], tmp_path / "unused.db") if backend else first
    if second is not first:
        await second.start()
    try:
        days = {t: 2 for t in GROWING}
        a, b = Retention(first.db, days), Retention(second.db, days)
        await make_days(a, now, 5)
        for age in range(5):
            await seed(first, age, now, n=3)  # type: ignore[arg-type]
        both = await asyncio.gather(a.maintain(now, GROWING), b.maintain(now, GROWING))
        for t in GROWING:
            assert await days_held(first, t) == {day_of(now), day_of(now - 86400)}  # type: ignore[arg-type]
            got: dict[str, int] = {}
            for p in [*both[0], *both[1]]:
                if p.table == t and p.day != "default":
                    if first.db.name == "postgresql":
                        assert p.day not in got, (t, p.day)  # each day dropped by one of them
                    got[p.day] = got.get(p.day, 0) + p.rows
            assert {day_of(now - k * 86400) for k in (2, 3, 4)} <= set(got)
    finally:
        if second is not first:
            await second.stop()
        await first.stop()


async def test_a_delivery_of_yesterday_is_found_by_id_and_its_receipt_today(store: Store) -> None:
    """A lookup by id names no day: yesterday's delivery, its attempt and message id are found
    from today, and today's receipt lands in today's partition."""
    now = time.time()
    r = Retention(store.db)
    await make_days(r, now, 2)
    await seed(store, 1, now, tag="y")
    d = await store.delivery("y1-0")
    assert d is not None and day_of(d.created) == day_of(now - 86400)
    att = await store.attempt("y1-0", 0)
    assert att is not None
    assert await store.attempt_of_message("my1-0") == (att.id, att.day)  # with its day
    await store.update_attempt(att.id, day=att.day, state="submitted")
    await store.db.durable()
    assert await store.waiting_attempts_of(["my1-0"]) == [att.id]
    await store.receipt("my1-0x", "DELIVRD")
    await store.update_delivery("y1-0", state="delivered")
    await store.db.durable()
    assert (await store.delivery("y1-0")).state == "delivered"  # type: ignore[union-attr]
    if store.db.name == "postgresql":
        row = await store.db.one("SELECT day FROM receipts WHERE message_id = 'my1-0x'")
        assert row is not None and row[0] == day_of(time.time())
        row = await store.db.one("SELECT day FROM deliveries WHERE id = 'y1-0'")
        assert row is not None and row[0] == day_of(now - 86400)


async def test_calls_flow_while_a_prune_runs(make_app: AppFactory) -> None:
    """Intake goes on while old days are pruned; on PostgreSQL a drop that cannot have its
    table's lock at once (a long read holds it) gives up after a moment and comes back, instead
    of making every new call event wait behind it."""
    client = await make_app()
    service = client.app[delivery_key]
    store = service.store
    now = time.time()
    r = Retention(store.db, {t: 3 for t in GROWING})
    await make_days(r, now, 5)
    await seed(store, 5, now, n=200, tag="o")
    pg = store.db.name == "postgresql"
    reader = await asyncpg.connect(service.config.database_url) if pg else None
    if reader is not None:  # a long report holds the table while the prune starts
        tr = reader.transaction()
        await tr.start()
        await reader.fetch("SELECT count(*) FROM deliveries WHERE enterprise = 'sf'")
    prune = asyncio.ensure_future(r.maintain(now, GROWING))
    waits = []
    for i in range(20):
        t0 = time.monotonic()
        await call(client, f"flow-{i}", "ended")
        waits.append(time.monotonic() - t0)
        await asyncio.sleep(0.05)
    if reader is not None:
        assert not prune.done()  # the drop of deliveries' day waits for the reader, trying again
        await tr.rollback()
        await reader.close()
    await asyncio.wait_for(prune, 30)
    assert max(waits) < 1.0, waits  # never behind the reader's second
    assert day_of(now - 5 * 86400) not in await days_held(store, "deliveries")
    for i in range(20):
        assert (await store.deliveries_of_call(f"flow-{i}"))[0].enterprise == "sf"


async def test_a_report_over_a_pruned_range_says_so(make_app: AppFactory) -> None:
    client = await make_app()
    now = time.time()
    kept = client.app[delivery_key].retention.kept_since("deliveries")
    old = day_of(now - 200 * 86400)
    resp = await client.get(f"/api/enterprises/sf/report?from={old}", headers=auth(OPERATOR))
    body = await resp.json()
    assert body["pruned"] is True
    assert body["kept_since"]["deliveries"] == kept == day_of(now - 89 * 86400)
    body = await (
        await client.get(f"/api/enterprises/sf/report?from={day_of(now)}", headers=auth(OPERATOR))
    ).json()
    assert body["pruned"] is False
    usage = await client.get(f"/api/enterprises/sf/usage?from={old}&format=csv", headers=auth(OPERATOR))
    assert usage.headers["X-Range-Pruned"] == "0"  # charges are kept 400 days
    usage = await client.get(
        f"/api/enterprises/sf/usage?from={day_of(now - 500 * 86400)}", headers=auth(OPERATOR)
    )
    assert (await usage.json())["pruned"] is True


async def test_the_migration_moves_existing_rows_into_day_partitions(
    postgres_url: str, tmp_path: Path
) -> None:
    """A database of the release before: its rows are in the partitioned tables afterwards, each
    in its day's partition, and the attempt ids go on from the old sequence."""
    import dataclasses

    from delivery.drivers.postgres import MIGRATIONS
    from infra.migrations_pg import migrate_postgres

    before = dataclasses.replace(
        MIGRATIONS, migrations=tuple(m for m in MIGRATIONS.migrations if m.version < 14)
    )
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate_postgres(conn, before)
        old = time.time() - 3 * 86400
        await conn.execute("INSERT INTO calls VALUES ('c1', 'ended', $1)", old)
        await conn.execute(
            "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
            "chain, step, state, reason, channel, event_at, created, updated) VALUES ('d1', 'c1', 'ended', 'sf', "
            "'+8610', '+86138', 'courier', 't', 'hangup', '{}', '[]', 0, 'done', '', 'sms', $1, $1, $1)",
            old,
        )  # fmt: skip
        aid = await conn.fetchval(
            "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, detail) "
            "VALUES ('d1', 0, 'sms', 'delivered', 1, 1, $1, $1, '') RETURNING id",
            old,
        )
        await conn.execute("INSERT INTO message_ids VALUES ('m1', $1, NULL)", aid)
        await conn.execute("INSERT INTO receipts (message_id, stat, at) VALUES ('m1', 'DELIVRD', $1)", old)
        await conn.execute(
            "INSERT INTO charges (key, enterprise, line, channel, units, overage, cost, day, at) "
            "VALUES ('d1#0', 'sf', '+8610', 'sms', 1, 0, 0.05, $1, $2)",
            day_of(old), old,
        )  # fmt: skip
        await conn.execute("INSERT INTO taps VALUES ('sf', 'courier', 'b', $1, 2)", day_of(old))
    finally:
        await conn.close()
    store = open_store(postgres_url, tmp_path / "unused.db")
    await store.start()  # applies 0014
    try:
        part = day_of(old).replace("-", "")
        for table in GROWING:
            rows = await store.db.all(f"SELECT day FROM {table}_{part}")
            assert [r[0] for r in rows] == [day_of(old)], table
            assert (await store.db.one(f"SELECT count(*) FROM {table}_default"))[0] == 0  # type: ignore[index]
        assert (await store.delivery("d1")).state == "done"  # type: ignore[union-attr]
        assert await store.attempt_of_message("m1") == (aid, day_of(old))  # its attempt's day
        new = await store.db.one("SELECT nextval(pg_get_serial_sequence('attempts', 'id'))")
        assert new is not None and new[0] > aid
    finally:
        await store.stop()


async def test_mingpian_prune_says_what_it_dropped(backend: dict[str, Any], settings: Any) -> None:
    """The command's round on the deployment's store (its settings' database and days), its
    Chinese report of each day removed and of each table's days kept; a second round finds
    nothing left to remove."""
    from mingpian.api.delivery import delivery_config
    from mingpian.cli_prune import prune, report

    s = settings.with_(**backend, delivery_receipts_retention_days=5)
    now = time.time()
    store = open_store(s.database_url, delivery_config(s).database)
    await store.start()
    try:
        await make_days(Retention(store.db), now, 7)
        await seed(store, 6, now, n=3)  # type: ignore[arg-type]
    finally:
        await store.stop()
    retention, pruned = await prune(s, now)
    text = report(retention, pruned, now)
    old = day_of(now - 6 * 86400)
    assert ("receipts", old) in {(p.table, p.day) for p in pruned}, pruned
    assert f"已删除回执（receipts）{old} 的记录" in text
    assert f"回执（receipts）：5 天（保留 {day_of(now - 4 * 86400)} 及以后的记录）" in text
    assert f"（deliveries）{old}" not in text  # kept 90 days
    _, again = await prune(s, now)
    assert not [p for p in again if p.day == old]
    assert "没有超过保留期的记录。" in report(retention, [], now)


async def test_the_upkeep_says_a_failure_once_and_goes_on(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Three failed rounds in a row are one log line; the round after them runs."""
    from delivery import retention as module

    r = Retention(store.db)
    rounds = 0
    real = r.maintain

    async def failing(now: float | None = None, tables: tuple[str, ...] = ()) -> list[Any]:
        nonlocal rounds
        rounds += 1
        if rounds <= 3:
            raise RuntimeError("disk full")
        return await real(now, tables)

    monkeypatch.setattr(r, "maintain", failing)
    monkeypatch.setattr(module, "RETRY", 0.01)
    task = asyncio.ensure_future(r.run())
    for _ in range(500):
        if rounds >= 4:
            break
        await asyncio.sleep(0.01)
    ahead = day_of(time.time() + 2 * 86400)
    for _ in range(500):  # the round that runs makes the days ahead (PostgreSQL)
        if store.db.name != "postgresql" or ahead in await r.rows.days("deliveries"):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    failed = [x for x in caplog.records if "retention: upkeep failed" in x.getMessage()]
    assert rounds == 4 and len(failed) == 1
    if store.db.name == "postgresql":
        assert ahead in await r.rows.days("deliveries")
