"""The PostgreSQL store's group commit, against a real server: a flush of every kind of hot-path
write is one statement with the same effect as one statement per write; a flush whose writes
touch a row twice takes the transaction of several; and the store's plans use the indexes on
a table whose statistics say it is empty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from delivery.pgbatch import Batch, Write
from delivery.rows.attempts import InsertAttempt, MessageId, Receipt, UpdateAttempt
from delivery.rows.calls import AskPhases, RenewLease, UpdateDelivery
from delivery.rows.ledger import RecordCharge, Refund
from delivery.store import PgDeliveryStore

from .test_group_commit_statements import NOW, accept_row  # the one fixed call event


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PgDeliveryStore]:
    s = PgDeliveryStore(postgres_url)
    await s.start()
    yield s
    await s.stop()


def attempt_row(id_: int, did: str, step: int = 0) -> InsertAttempt:
    return InsertAttempt(id_, did, step, "sms", "sending", 1, 0, NOW, NOW + 60, None, "")


def charge_row(key: str) -> RecordCharge:
    return RecordCharge(key, "ent", None, "10086", "sms", 1, 0, 0.05, "2026-09-21", NOW)


def futures(n: int) -> list[asyncio.Future[bool]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(n)]


async def seed(store: PgDeliveryStore) -> None:
    """Deliveries (d8 held by another worker), an attempt and a charge committed before the
    batches under test."""
    b = Batch()
    b.add(accept_row("d0", "c0"), None)
    b.add(accept_row("d8", "c8", owner="w2"), None)
    b.add(accept_row("d9", "c9"), None)
    b.add(attempt_row(1, "d0"))
    b.add(charge_row("d0#0"))
    async with store.db.pool.acquire() as conn, conn.transaction():
        (await b.apply(conn))()


async def leases(store: PgDeliveryStore) -> list[tuple[Any, ...]]:
    """Each active chain's owner and the whole seconds its lease has left by the database's
    clock (leases are lengths the database adds to its own now: workers' clocks may differ)."""
    rows = await store.db.pool.fetch(
        "SELECT delivery, owner, round(lease_until - extract(epoch FROM clock_timestamp()))::int "
        "FROM active_chains ORDER BY 1"
    )
    return [tuple(r) for r in rows]


async def test_every_kind_of_write_in_one_flush_is_one_statement(store: PgDeliveryStore) -> None:
    await seed(store)
    b = Batch(clock=lambda: NOW)  # a lease to NOW + 30 is one of 30 s
    new, repeat, renewed, lost = futures(4)
    b.add(accept_row("d1", "c1"), new)
    b.add(accept_row("dx", "c0"), repeat)  # the call event of d0 again: not new
    b.add(attempt_row(2, "d1"))
    b.add(UpdateAttempt(2, {"units": 1, "state": "submitted", "detail": "m1"}))  # folded in
    b.add(charge_row("d1#0"))
    b.add(MessageId("m1", 2))
    b.add(Receipt("m1", "DELIVRD", NOW + 1, "8613800138000"))
    b.add(UpdateDelivery("d0", {"state": "delivered", "channel": "sms", "updated": NOW + 2}))
    b.add(UpdateAttempt(1, {"state": "delivered", "done": NOW + 2}))
    b.add(Refund("d0#0"))
    b.add(RenewLease("d9", "w1", NOW + 30), renewed)
    b.add(RenewLease("d8", "w1", NOW + 30), lost)  # w2 holds it
    loop = asyncio.get_running_loop()
    seen, unseen, same = loop.create_future(), loop.create_future(), loop.create_future()
    b.add(AskPhases("c0"), seen)  # stored before this flush
    b.add(AskPhases("c2"), unseen)
    b.add(AskPhases("c1"), same)  # written by this very statement: not in its snapshot
    assert b.statements() == 1
    sql, _ = b.statement()
    assert sql.count("WITH ") == 1 and "acc AS (INSERT INTO deliveries" in sql

    async with store.db.pool.acquire() as conn:
        (await b.apply(conn))()
    assert [f.result() for f in (new, repeat, renewed, lost)] == [True, False, True, False]
    assert (seen.result(), unseen.result(), same.result()) == ({"ringing"}, set(), set())

    rows = await store.db.pool.fetch("SELECT id, state, channel FROM deliveries ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("d0", "delivered", "sms"),
        ("d1", "active", ""),
        ("d8", "active", ""),
        ("d9", "active", ""),
    ]
    assert await leases(store) == [  # d0 finished; d1 new; d9's lease renewed, d8's not ours
        ("d1", "w1", 15),
        ("d8", "w2", 15),
        ("d9", "w1", 30),
    ]
    att = {
        r[0]: tuple(r[1:]) for r in await store.db.pool.fetch("SELECT id, state, units, detail FROM attempts")
    }
    assert att == {1: ("delivered", 0, ""), 2: ("submitted", 1, "m1")}
    charges = await store.db.pool.fetch("SELECT key, refunded FROM charges ORDER BY key")
    assert [tuple(r) for r in charges] == [("d0#0", 1), ("d1#0", 0)]
    assert await store.db.pool.fetchval("SELECT attempt FROM message_ids WHERE message_id='m1'") == 2
    assert (
        await store.db.pool.fetchval("SELECT source FROM receipts WHERE message_id='m1'") == "8613800138000"
    )


@pytest.mark.parametrize(
    "second",
    [
        (UpdateDelivery("d1", {"state": "failed", "updated": NOW})),  # a row inserted by the flush
        (Refund("d1#0")),  # a charge written by the flush
    ],
)
async def test_writes_to_a_row_the_flush_inserts_take_a_transaction_and_land(
    store: PgDeliveryStore, second: Write
) -> None:
    b = Batch()
    b.add(accept_row("d1", "c1"), None)
    b.add(charge_row("d1#0"))
    b.add(second)
    asked = asyncio.get_running_loop().create_future()
    b.add(AskPhases("c1"), asked)  # after the writes, in their transaction: sees them
    assert b.statements() > 1
    async with store.db.pool.acquire() as conn, conn.transaction():
        (await b.apply(conn))()
    assert asked.result() == {"ringing"}
    if isinstance(second, Refund):
        assert await store.db.pool.fetchval("SELECT refunded FROM charges WHERE key='d1#0'") == 1
    else:
        assert await store.db.pool.fetchval("SELECT state FROM deliveries WHERE id='d1'") == "failed"


async def test_a_lease_renewed_as_its_chain_finishes_takes_a_transaction(store: PgDeliveryStore) -> None:
    await seed(store)
    b = Batch(clock=lambda: NOW)
    held, moved = futures(2)
    b.add(UpdateDelivery("d9", {"step": 1, "updated": NOW}))  # a delivery going on: one statement
    b.add(RenewLease("d9", "w1", NOW + 99), moved)
    assert b.statements() == 1
    b.add(UpdateDelivery("d0", {"state": "delivered", "updated": NOW}))
    b.add(RenewLease("d0", "w1", NOW + 99), held)
    assert b.statements() > 1
    async with store.db.pool.acquire() as conn, conn.transaction():
        (await b.apply(conn))()
    assert held.result() is True and moved.result() is True
    assert await store.db.pool.fetchval("SELECT state FROM deliveries WHERE id='d0'") == "delivered"
    assert await store.db.pool.fetchval("SELECT step FROM deliveries WHERE id='d9'") == 1
    assert await leases(store) == [("d8", "w2", 15), ("d9", "w1", 99)]


async def test_plans_cached_while_a_table_was_empty_still_use_its_index(store: PgDeliveryStore) -> None:
    """A generic plan made while a table was empty, kept while it grew, would scan every row at
    every flush; the store's sessions price sequential scans out, so it uses the index."""
    statements = {
        "phases": "SELECT call_id, phase FROM calls WHERE call_id = ANY($1::text[])",
        "units": "UPDATE attempts t SET units = u.units FROM unnest($1::bigint[], $2::int[]) AS u(id, units) "
        "WHERE t.id = u.id",
    }
    args = {"phases": "(ARRAY['call-7'])", "units": "(ARRAY[1::bigint], ARRAY[1])"}
    async with store.db.pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for name, sql in statements.items():
                await conn.execute(f"PREPARE {name} AS {sql}")
                await conn.fetch(f"EXPLAIN EXECUTE {name}{args[name]}")  # planned and cached now
            rows = [(f"call-{i}", "ringing", time.time()) for i in range(20_000)]
            await conn.executemany("INSERT INTO calls VALUES ($1, $2, $3)", rows)
            await conn.execute(
                "INSERT INTO attempts SELECT i, 'd' || i, 0, 'sms', 'sent', 1, 1, 0, 0, NULL, '' "
                "FROM generate_series(1, 20000) i"
            )
            for name in statements:
                plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {name}{args[name]}"))
                assert "Seq Scan" not in plan and "Index" in plan, plan
        finally:
            await conn.execute("DEALLOCATE ALL")
            await conn.execute("RESET plan_cache_mode")


async def test_a_flush_whose_connection_was_killed_runs_again_on_a_new_one(store: PgDeliveryStore) -> None:
    """The flushes keep one connection; when the database drops it (a restart, a failover, an
    administrator's pg_terminate_backend) the flush that hit the dead connection is run again
    on a fresh one, and its callers never hear of it."""
    first = asyncio.get_running_loop().create_future()
    store.db.group.add(accept_row("d1", "c1"), first)
    assert await first is True
    pid = await store.db.group._conn.fetchval("SELECT pg_backend_pid()")  # the flushes' connection
    async with store.db.pool.acquire() as admin:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    second = asyncio.get_running_loop().create_future()
    store.db.group.add(accept_row("d2", "c2"), second)
    assert await asyncio.wait_for(second, 10) is True
    ids = [r[0] for r in await store.db.pool.fetch("SELECT id FROM deliveries ORDER BY id")]
    assert ids == ["d1", "d2"]
    assert await store.db.group._conn.fetchval("SELECT pg_backend_pid()") != pid


async def test_two_workers_accepting_the_same_call_events_at_once_accept_each_once(postgres_url: str) -> None:
    """On PostgreSQL the calls row is the fleet's claim: two workers' flushes carrying the same
    events (in opposite orders) accept each event once, neither waits for ever on the other."""
    a, b = PgDeliveryStore(postgres_url), PgDeliveryStore(postgres_url)
    await a.start()
    await b.start()
    try:
        loop = asyncio.get_running_loop()
        ids = [f"c{i}" for i in range(200)]
        answers: dict[str, list[bool]] = {c: [] for c in ids}
        for store, order in ((a, ids), (b, ids[::-1])):
            for c in order:
                fut = loop.create_future()
                fut.add_done_callback(lambda f, c=c: answers[c].append(f.result()))
                store.db.group.add(accept_row(f"{c}:ringing", c), fut)
        await asyncio.wait_for(asyncio.gather(a.db.group.settled(), b.db.group.settled()), 20)
        assert all(sorted(v) == [False, True] for v in answers.values()), answers
        assert await a.db.pool.fetchval("SELECT count(*) FROM deliveries") == 200
        assert await a.db.pool.fetchval("SELECT count(*) FROM active_chains") == 200
    finally:
        await a.stop()
        await b.stop()
