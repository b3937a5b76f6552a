"""The event stream: each fact once however often it is heard (in one process and across two),
the rollups' counts equal to what happened, per variant and button, latencies counted from the
first attempt, and the raw events pruned a day at a time (a partition a day on PostgreSQL). On
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from delivery.events import Events, bin_of, bin_seconds, bucket_of, quantile
from delivery.metering import day_of
from delivery.records import Delivery
from delivery.rows.partitions import PartitionRows
from delivery.store import Store
from infra import jsonio
from mingpian.api.delivery import delivery_key

from .support import SF_KEY, AppFactory, auth, call, settle


def delivery(i: int, created: float, variant: str = "", experiment: str = "") -> Delivery:
    data: dict[str, Any] = {"version": 2}
    if variant:
        data |= {"variant": variant, "experiment": experiment}
    return Delivery(
        id=f"d{i}", call_id=f"c{i}", phase="hangup", enterprise="sf", line="+8610", recipient=f"+86138{i:08d}",
        card="courier", template="t", kind="hangup", data=data, chain=["rcs", "sms"], step=0, state="done",
        reason="", channel="rcs", event_at=created, created=created, updated=created, day=day_of(created),
    )  # fmt: skip


async def stored(store: Store, *ds: Delivery, started: float | None = None) -> None:
    """The deliveries' rows and their first attempts (the roll reads a fact's card and variant
    from its delivery, its latency from its first attempt's start)."""
    async with store.db.transaction():
        for d in ds:
            await store.db.run(
                "INSERT INTO deliveries (id, call_id, phase, enterprise, line, recipient, card, template, "
                "kind, data, chain, step, state, reason, channel, event_at, created, updated, day) VALUES "
                "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
                d.id, d.call_id, d.phase, d.enterprise, d.line, d.recipient, d.card, d.template, d.kind,
                jsonio.dumps_str(d.data), jsonio.dumps_str(d.chain), d.step, d.state, d.reason, d.channel,
                d.event_at, d.created, d.updated, d.day,
            )  # fmt: skip
            await store.db.run(  # the attempt's rows take its delivery's day
                "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, deadline, "
                "done, detail, day) VALUES ($1, 0, $2, 'delivered', 1, 1, $3, $3, NULL, '', $4)",
                d.id, d.chain[0], d.created if started is None else started, d.day,
            )  # fmt: skip
    await store.db.durable()


async def test_each_fact_counts_once_and_counts_read_the_rollups(store: Store) -> None:
    now = time.time()
    since = bucket_of(now, "d")
    events = Events(store.db)
    other = Events(store.db)  # a second process hearing the same receipts and taps
    ds = [delivery(i, now - 30, "AB"[i % 2], "exp1") for i in range(10)]
    await stored(store, *ds)
    for d in ds:
        for ev in (events, other, events):  # each heard three times
            await ev.record("sent", d, 0, "rcs", now - 30)
            await ev.record("delivered", d, 0, "rcs", now - 20)
    for d in ds[:4]:  # A: d0, d2; B: d1, d3
        for ev in (events, other):
            await ev.record("tapped", d, 0, "rcs", now, key="改约", button="改约")
    await events.record("tapped", ds[0], 0, "rcs", now, key="查件", button="查件")  # a second button counts
    await events.rows.db.durable()
    await asyncio.gather(events.flush(), other.flush())  # two rollers at once claim disjoint facts
    assert events.recorded + other.recorded == 10 + 10 + 4 + 4 + 1  # and each tapped delivery's step
    got = await events.counts("sf", "courier", since, since + 86400, experiment="exp1")
    assert got == {
        "A": {"sent": 5, "delivered": 5, "tapped": 2, "tapped:改约": 2, "tapped:查件": 1},
        "B": {"sent": 5, "delivered": 5, "tapped": 2, "tapped:改约": 2},
    }
    assert await events.counts("sf", "courier", since, since + 86400, experiment="other") == {}
    assert await events.counts("sf", "courier", since - 86400, since) == {}
    # minute-rounded bounds read the minute rollups: the same totals
    minute = await events.counts("sf", "courier", bucket_of(now, "m") - 120, bucket_of(now, "m") + 60)
    assert minute["A"]["sent"] == 5 and minute["B"]["tapped"] == 2
    await events.close()
    await other.close()


async def test_without_experiment_and_queued_flush(store: Store) -> None:
    now = time.time()
    events = Events(store.db)
    d = delivery(1, now - 5)
    await stored(store, d)
    await events.record("displayed", d, 1, "cardsms", now)
    await events.record("opened", d, 1, "cardsms", now)
    await events.close()  # a last roll at close
    since = bucket_of(now, "h")
    assert await Events(store.db).counts("sf", "courier", since, since + 3600) == {
        "": {"displayed": 1, "opened": 1}
    }
    with pytest.raises(ValueError):
        await events.record("clicked", d, 0, "rcs", now)


async def test_raw_events_pruned_a_day_at_a_time(store: Store) -> None:
    now = time.time()
    events = Events(store.db, retention_days=3)
    await events.maintain(now - 5 * 86400)  # the partitions of those days (PostgreSQL)
    await events.maintain(now)
    for age in range(5):  # deliveries created 0..4 days ago
        d = delivery(age, now - age * 86400)
        await stored(store, d)
        await events.record("sent", d, 0, "sms", now - age * 86400)
    await events.flush()
    await events.maintain(now)
    days = {r[0] for r in await store.db.all("SELECT DISTINCT day FROM delivery_events")}
    assert days == {day_of(now - age * 86400) for age in range(3)}
    if store.db.name == "postgresql":
        parts = await PartitionRows(store.db).days("delivery_events")
        assert day_of(now - 4 * 86400) not in parts
        assert day_of(now + 2 * 86400) in parts
    # the rollups stay: a report of the pruned day still counts it
    old = bucket_of(now - 4 * 86400, "d")
    assert (await events.counts("sf", "courier", old, old + 86400))[""]["sent"] == 1
    await events.close()


def test_latency_histogram_quantiles() -> None:
    assert bin_of(0) == 0 and bin_of(0.5) == 2
    bins = {bin_of(10): 50, bin_of(100): 40, bin_of(1000): 10}
    assert abs(quantile(bins, 0.5) - 10) / 10 < 0.2  # type: ignore[operator]
    assert abs(quantile(bins, 0.9) - 100) / 100 < 0.2  # type: ignore[operator]
    assert quantile({}, 0.5) is None
    assert bin_seconds(bin_of(3600)) == pytest.approx(3600, rel=0.1)


async def test_the_service_records_sent_delivered_taps_and_opt_outs_once(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    for i in range(3):
        await call(client, f"ev{i}", "ended", callee=f"+86137000{i:05d}")
    done = [await settle(client, f"ev{i}:ended") for i in range(3)]
    assert {d["state"] for d in done} == {"delivered"}
    # a tap by numbered reply, sent twice by the SMSC (same message id), then a second button
    for text, ref in (("回复2", "mo-1"), ("回复2", "mo-1"), ("1", "")):
        await service.replies.on_reply(done[0]["recipient"], "13800000001", text, "sms", ref=ref)
    resp = await client.post(  # the same button by the API again: a tap, once in the events
        "/api/replies",
        json={"from": done[0]["recipient"], "to": "13800000001", "channel": "sms", "text": "2"},
        headers=auth(SF_KEY),
    )
    assert resp.status == 200
    d1 = await service.store.delivery(done[1]["id"])
    assert d1 is not None
    ok = await service.replies.on_reply(done[1]["recipient"], "13800000001", "退订", "sms")
    assert ok
    await service.events.settled()
    now = time.time()
    since = bucket_of(now, "d")
    got = await service.events.counts("sf", done[0]["card"], since, since + 86400)
    taps = {k: v for k, v in got[""].items() if k.startswith("tapped:")}
    assert got[""]["sent"] == got[""]["delivered"] == 3
    assert got[""]["tapped"] == 1 and sorted(taps.values()) == [1, 1]  # one delivery, two buttons
    assert got[""]["opted_out"] == 1
    # the same facts heard again (a receipt resent, a tap again): nothing counts twice
    d0 = await service.store.delivery(done[0]["id"])
    assert d0 is not None
    await service.events.record("delivered", d0, d0.step, d0.channel, now)
    fresh = Events(service.store.db)  # another process: its memory does not know the facts
    await fresh.record("delivered", d0, d0.step, d0.channel, now)
    await fresh.record("sent", d0, d0.step, d0.channel, now)
    await fresh.flush()
    await service.events.settled()
    assert fresh.recorded == 0
    assert await service.events.counts("sf", done[0]["card"], since, since + 86400) == got


async def test_workers_making_and_dropping_partitions_at_once(store: Store) -> None:
    now = time.time()
    workers = [Events(store.db, retention_days=3) for _ in range(4)]
    await asyncio.gather(*(w.maintain(now - 6 * 86400) for w in workers))
    await asyncio.gather(*(w.maintain(now) for w in workers))  # each drops what the others drop
    d = delivery(1, now)
    await stored(store, d)
    await workers[0].record("sent", d, 0, "sms", now)
    await workers[0].flush()
    if store.db.name == "postgresql":
        days = sorted(await PartitionRows(store.db).days("delivery_events"))
        assert days[0] == day_of(now - 86400)
        assert len(days) == 4  # yesterday, today and two days ahead
    assert (await store.db.one("SELECT count(*) FROM delivery_events"))[0] == 1  # type: ignore[index]


async def test_a_failed_flush_keeps_its_events_for_the_next(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    events = Events(store.db)
    add = events.rows._aggregates  # the rollups' write, after the claim and the raw events

    async def down(*a: Any) -> None:
        raise ConnectionError("database away")

    monkeypatch.setattr(events.rows, "_aggregates", down)
    await stored(store, delivery(1, now), delivery(2, now))
    await events.record("sent", delivery(1, now), 0, "sms", now)
    with pytest.raises(ConnectionError):
        await events.flush()
    await events.record("sent", delivery(2, now), 0, "sms", now)
    monkeypatch.setattr(events.rows, "_aggregates", add)
    assert await events.flush() == 2  # the roll that failed left its claim in the inbox
    assert await events.rows.inbox_left(await events.rows.inbox_last() + 1) == 0
    await events.close()


async def test_latency_counts_from_the_first_attempt_and_a_gone_delivery_is_dropped(store: Store) -> None:
    now = time.time()
    events = Events(store.db)
    d = delivery(1, now - 3600)  # created an hour ago, first attempt a minute ago
    await stored(store, d, started=now - 60)
    await events.record("tapped", d.id, 0, "rcs", now, vendor="CMCC")
    await events.record("sent", "gone", 0, "rcs", now)  # a delivery no longer stored
    await events.settled()
    row = await store.db.one("SELECT since, vendor FROM delivery_events WHERE delivery = 'd1'")
    assert row is not None and 59 <= row[0] <= 61 and row[1] == "CMCC"
    assert (await store.db.one("SELECT count(*) FROM delivery_events"))[0] == 1  # type: ignore[index]
    assert await events.rows.inbox_last() == 0  # nothing left behind
    await events.close()


async def test_a_rolled_back_block_takes_its_fact_and_the_repeat_counts(store: Store) -> None:
    now = time.time()
    events = Events(store.db)
    d = delivery(1, now)
    await stored(store, d)
    with pytest.raises(RuntimeError):
        async with store.tx():
            await store.first_reply("mo-9", now)  # a statement of its own (PostgreSQL: a connection)
            await events.record("tapped", d, 0, "sms", now, key="改约", button="改约")
            raise RuntimeError("the tap's block failed")
    await events.record("tapped", d, 0, "sms", now, key="改约", button="改约")  # heard again
    await events.settled()
    since = bucket_of(now, "d")
    assert await events.counts("sf", "courier", since, since + 86400) == {"": {"tapped": 1, "tapped:改约": 1}}
    await events.close()


async def test_rollers_of_several_workers_claim_disjoint_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("delivery.events.BATCH", 7)  # many small claims, interleaved
    now = time.time()
    ds = [delivery(i, now - 60, "AB"[i % 2], "exp1") for i in range(30)]
    await stored(store, *ds)
    writer = Events(store.db)
    for d in ds:
        await writer.record("sent", d, 0, "sms", now - 50)
        await writer.record("delivered", d, 0, "sms", now - 40, vendor="smsc")
    await store.db.durable()
    rollers = [writer, *(Events(store.db) for _ in range(3))]  # the writer's own roller runs too
    await asyncio.gather(*(r.flush() for r in rollers))
    assert sum(r.recorded for r in rollers) == 60 and sum(r.rolled for r in rollers) == 60
    day = bucket_of(now, "d")
    got = await writer.counts("sf", "courier", day, day + 86400, experiment="exp1")
    assert got == {v: {"sent": 15, "delivered": 15} for v in "AB"}
    assert await writer.rows.inbox_last() == 0
    await writer.close()
