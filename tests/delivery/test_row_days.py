"""A row's day (its partition on PostgreSQL, migration 0014) is the same for every write of the
same logical row, so the keys that carry it still deduplicate across midnight; and the hot
path's lookups that know the day read one partition.

Midnight is simulated: the process's clock moves past the next China midnight and PostgreSQL's
column defaults name the next day (as they would once its clock got there), so any write that
left its day to the default, or took it from the time it ran, lands in another partition."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from delivery.metering import day_of
from delivery.pgbatch import Batch
from delivery.retention import Retention
from delivery.rows.attempts import (
    ATTEMPT_SQL,
    RECEIPTS_OF_SQL,
    InsertAttempt,
    MessageId,
    Receipt,
    UpdateAttempt,
)
from delivery.rows.calls import DELIVERY_BY_ID_DAY, UpdateDelivery
from delivery.rows.events import ROLL_SQL, InboxEvent
from delivery.rows.ledger import REFUNDS_DAY_SQL
from delivery.store import Store
from mingpian.api.delivery import delivery_key

from .support import CUSTOMER, OPERATOR, SF_LINE, AppFactory, GatewaySim, auth, idle, settle

DAY_TABLES = ("calls", "deliveries", "attempts", "message_ids", "receipts")
REAL_TIME = time.time


def past_midnight(t: float) -> float:
    """Seconds from `t` to a minute after the next China midnight."""
    return 86400 - (t + 8 * 3600) % 86400 + 60


async def midnight(store: Store, monkeypatch: pytest.MonkeyPatch, ahead: float) -> str:
    """Move this process's clock `ahead` and PostgreSQL's day defaults to that day; the day."""
    monkeypatch.setattr(time, "time", lambda: REAL_TIME() + ahead)
    day = day_of(time.time())
    if store.db.name == "postgresql":
        await Retention(store.db).make_ahead("deliveries", time.time())
        for table in DAY_TABLES:
            await store.db.run(f"ALTER TABLE {table} ALTER COLUMN day SET DEFAULT '{day}'")
    return day


async def test_a_call_event_retried_across_midnight_is_one_delivery_and_one_card(
    make_app: AppFactory, gateway: GatewaySim, backend: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_app()
    store = client.app[delivery_key].store
    t = time.time()
    event = {"call_id": "night-1", "caller": SF_LINE, "callee": CUSTOMER, "phase": "ended", "time": t}
    first = await client.post("/api/calls", json=event, headers=auth(OPERATOR))
    assert first.status == 202, await first.text()
    did = (await first.json())["delivery"]
    assert (await settle(client, did))["state"] == "delivered"
    cards = len(gateway.submits)
    assert cards >= 1

    await midnight(store, monkeypatch, past_midnight(t))
    if "redis_url" in backend:  # nothing may rest on the shared counters' memory of the event
        r = aioredis.from_url(backend["redis_url"])
        await r.flushall()
        await r.aclose()
    again = await client.post("/api/calls", json=event, headers=auth(OPERATOR))
    assert again.status == 200, await again.text()
    assert (await again.json())["duplicate"] is True
    await idle(client)
    await asyncio.sleep(0.3)
    rows = await store.db.all("SELECT day FROM deliveries WHERE call_id = $1", "night-1")
    assert len(rows) == 1
    if store.db.name == "postgresql":  # the event's own day, not the day it was written again
        assert rows[0][0] == day_of(t)
        calls = await store.db.all("SELECT day FROM calls WHERE call_id = $1", "night-1")
        assert [r[0] for r in calls] == [day_of(t)]
    assert len(gateway.submits) == cards  # one card


async def test_an_event_without_time_retried_just_after_midnight_is_a_duplicate(
    make_app: AppFactory, gateway: GatewaySim, backend: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event without `time` takes the day it arrived; its retry within the first hour after
    midnight is looked for in yesterday's calls (PostgreSQL; SQLite's key has no day)."""
    client = await make_app()
    store = client.app[delivery_key].store
    t = time.time()
    event = {"call_id": "night-2", "caller": SF_LINE, "callee": CUSTOMER, "phase": "ended"}
    first = await client.post("/api/calls", json=event, headers=auth(OPERATOR))
    assert first.status == 202, await first.text()
    assert (await settle(client, (await first.json())["delivery"]))["state"] == "delivered"
    cards = len(gateway.submits)

    await midnight(store, monkeypatch, past_midnight(t))
    if "redis_url" in backend:
        r = aioredis.from_url(backend["redis_url"])
        await r.flushall()
        await r.aclose()
    again = await client.post("/api/calls", json=event, headers=auth(OPERATOR))
    assert again.status == 200, await again.text()
    assert (await again.json())["duplicate"] is True
    await idle(client)
    await asyncio.sleep(0.3)
    assert len(await store.db.all("SELECT 1 FROM deliveries WHERE call_id = 'night-2'")) == 1
    assert len(gateway.submits) == cards


async def test_a_flush_retried_across_midnight_writes_each_row_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group commit's records carry their rows' day: a flush run again after midnight (its
    connection dropped after the commit) meets the same keys. A receipt the SMSC sends again
    after midnight is a second row, counted once."""
    if store.db.writes is None:
        pytest.skip("the group commit is PostgreSQL's")
    w = store.db.writes
    t = time.time()
    day = day_of(t)
    await store.db.run(
        "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
        "chain, step, state, reason, channel, event_at, created, updated, day) VALUES ('n1', 'n1', 'hangup', "
        "'sf', '+8610', '+8613800000000', 'c', 't', 'hangup', '{}', '[\"sms\"]', 0, 'active', '', '', $1, $1, "
        "$1, $2)",
        t, day,
    )  # fmt: skip
    att = await store.add_attempt("n1", 0, "sms", 2, 1, t + 60, day)
    await store.add_message_ids(att.id, ["n1-a", "n1-b"], att.day)
    await store.update_attempt(att.id, day=att.day, state="submitted", detail="n1-a,n1-b")
    await store.receipt("n1-a", "DELIVRD")
    await store.db.durable()
    again = [
        InsertAttempt(att.id, "n1", 0, "sms", "sending", 2, 1, att.started, att.deadline, None, "", day),
        MessageId("n1-a", att.id, day),
        MessageId("n1-b", att.id, day),
    ]

    tomorrow = await midnight(store, monkeypatch, past_midnight(t))
    assert tomorrow != day
    for rec in again:  # the same records, as a retried flush sends them
        w.queue(rec)
    w.queue(Receipt("n1-a", "DELIVRD", time.time(), "", tomorrow))  # the SMSC's resend
    await store.db.durable()
    rows = await store.db.all("SELECT day FROM attempts WHERE delivery = 'n1' AND step = 0")
    assert [r[0] for r in rows] == [day]
    rows = await store.db.all("SELECT DISTINCT day FROM message_ids WHERE attempt = $1", att.id)
    assert [r[0] for r in rows] == [day]
    assert len(await store.db.all("SELECT 1 FROM message_ids WHERE attempt = $1", att.id)) == 2
    assert len(await store.db.all("SELECT 1 FROM receipts WHERE message_id = 'n1-a'")) == 2
    got, total, stats = await store.attempt_receipts(att.id, att.day)
    assert got is not None and got.state == "submitted" and got.day == day
    assert (total, stats) == (2, ["DELIVRD"])  # one message of two answered, however often
    assert await store.attempt_of_message("n1-b") == (att.id, day)


def scanned(plan: Any, parent: str) -> set[str]:
    """The partitions of `parent` an EXPLAIN (FORMAT JSON) plan reads."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            rel = node.get("Relation Name", "")
            if rel.startswith(parent + "_"):
                found.add(rel)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(plan)
    return found


async def test_the_hot_path_lookups_with_a_day_read_one_partition(store: Store) -> None:
    """EXPLAIN of the chain's statements that name the day: one partition of each table, in a
    plan made for the values (a custom plan) and in the generic plan a prepared statement keeps.
    Without the day (an API read by id, a receipt naming only its message id) every kept day's."""
    if store.db.name != "postgresql":
        pytest.skip("SQLite is not partitioned")
    now = time.time()
    r = Retention(store.db)
    for k in range(5):  # today's partitions and those of four days before
        for t in ("deliveries", "attempts", "message_ids", "charges"):
            await r.make_ahead(t, now - k * 86400)
    day = day_of(now)
    every = len(await r.rows.days("deliveries")) + 1  # and the default partition
    assert every >= 8
    b = Batch()
    b.add(UpdateAttempt(7, {"state": "delivered", "done": now}, day))
    b.add(UpdateDelivery("d7", {"state": "delivered", "updated": now}, day))
    b.add(UpdateDelivery("d8", {"state": "delivered", "updated": now}))  # its day not known
    updates = {name: (sql, args) for name, sql, args in b._parts()}
    statements = [
        ("attempts", *updates["ua0"], 1),
        ("deliveries", *updates["ud1"], 1),
        ("deliveries", DELIVERY_BY_ID_DAY, ["d7", day], 1),
        ("attempts", ATTEMPT_SQL, ["d7", 0, day], 1),
        ("attempts", RECEIPTS_OF_SQL, [7, day], 1),
        ("message_ids", RECEIPTS_OF_SQL, [7, day], 1),
        ("charges", REFUNDS_DAY_SQL, [["d7#0"], day, day], 1),  # a refund names its charge's day
        ("deliveries", *updates["ud0"], every),  # by id alone: every partition
    ]
    for generic in (False, True):
        async with store.db.transaction():
            if generic:
                await store.db.run("SET LOCAL plan_cache_mode = force_generic_plan")
            for table, sql, args, n in statements:
                row = await store.db.one(f"EXPLAIN (FORMAT JSON) {sql}", *args)
                assert row is not None
                plan = json.loads(row[0]) if isinstance(row[0], str) else row[0]
                parts = scanned(plan, table)
                assert len(parts) == n, (generic, table, sql, sorted(parts))
                if n == 1:
                    assert parts == {f"{table}_{day.replace('-', '')}"}


class RolledBack(Exception):
    pass


def executed(plan: Any, parent: str) -> set[str]:
    """The partitions of `parent` an EXPLAIN (ANALYZE, FORMAT JSON) plan actually read."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            rel = node.get("Relation Name", "")
            if rel.startswith(parent + "_") and node.get("Actual Loops", 0) > 0:
                found.add(rel)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(plan)
    return found


async def test_the_roller_reads_one_partition_of_deliveries_and_attempts_per_fact(store: Store) -> None:
    """An inbox fact carries its delivery's day: the roll's lookups of its delivery and first
    attempt run in that day's partition alone (pruned as each fact's lookup starts)."""
    if store.db.name != "postgresql":
        pytest.skip("SQLite is not partitioned")

    now = time.time()
    r = Retention(store.db)
    for k in range(3):
        for t in ("deliveries", "attempts"):
            await r.make_ahead(t, now - k * 86400)
    day = day_of(now - 86400)  # yesterday's delivery, its fact written today
    await store.db.run(
        "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, kind, data, "
        "chain, step, state, reason, channel, event_at, created, updated, day) VALUES ('r1', 'r1', 'ended', "
        "'sf', '+8610', '+8613800000000', 'c', 't', 'hangup', '{}', '[\"sms\"]', 0, 'active', '', '', $1, $1, "
        "$1, $2)",
        now - 86400, day,
    )  # fmt: skip
    await store.add_attempt("r1", 0, "sms", 1, 1, now, day)
    assert store.db.writes is not None
    store.db.writes.queue(InboxEvent("r1", 0, "sent", "", "sms", "", "", now, day))  # as events.record does
    await store.db.durable()
    plan: Any = None
    with pytest.raises(RolledBack):
        async with store.db.transaction():
            row = await store.db.one(f"EXPLAIN (ANALYZE, FORMAT JSON) {ROLL_SQL}", 100)
            assert row is not None
            plan = json.loads(row[0]) if isinstance(row[0], str) else row[0]
            raise RolledBack
    for table in ("deliveries", "attempts"):
        assert executed(plan, table) == {f"{table}_{day.replace('-', '')}"}, table
