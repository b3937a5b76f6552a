"""Packages and pools: atomic consumption (one process, two processes on one Redis or one
SQLite file), idempotent charges and refunds, usage reports as JSON and CSV, estimates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from delivery.metering import Package, day_of
from delivery.metering.redis import RedisCounters
from delivery.metering.sqlite import SqliteCounters
from delivery.store import SqliteDeliveryStore
from mingpian.api.delivery import delivery_key
from mingpian.settings import PROJECT_ROOT

from .support import (
    CUSTOMER,
    OPERATOR,
    SF_KEY,
    AppFactory,
    auth,
    call,
    sample,
    settle,
)
from .support import GatewaySim as _GS

POOL = [Package("pool", "ent", 500, "stop", 0.01, 0.0)]


def _race(kind: str, where: str) -> list[int]:
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_ROOT / "tests" / "delivery" / "metering_race.py"),
                kind,
                where,
                f"p{i}",
                "400",
                str(start),
            ],
            stdout=subprocess.PIPE,
            cwd=PROJECT_ROOT,
        )
        for i in range(2)
    ]
    return [int(p.communicate(timeout=60)[0]) for p in procs]


async def test_two_processes_on_one_redis_never_overspend_a_pool(redis_url: str) -> None:
    won = await asyncio.to_thread(_race, "redis", redis_url)
    assert sum(won) == 500 and all(w > 0 for w in won)
    counters = RedisCounters(redis_url)
    assert await counters.usage("ent/pool") == (500, 0)
    await counters.close()


async def test_two_processes_on_one_sqlite_file_never_overspend_a_pool(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"
    store = SqliteDeliveryStore(db)
    store.open()
    counters = SqliteCounters(store)
    won = await asyncio.to_thread(_race, "sqlite", str(db))
    assert sum(won) == 500
    assert await counters.usage("ent/pool") == (500, 0)
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_consumption_is_idempotent_per_key_and_refund_happens_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = SqliteDeliveryStore(tmp_path / "d.sqlite3")
    store.open()
    counters = (
        RedisCounters(request.getfixturevalue("redis_url")) if kind == "redis" else SqliteCounters(store)
    )
    if kind == "sqlite":  # the ledger row is what makes a SQLite charge idempotent
        from delivery.metering import Meter

        Meter(store, counters)
    pools = [Package("small", "ent", 2, "stop", 0.05, 0.0), Package("big", "ent", 10, "overage", 0.01, 0.1)]
    got = await asyncio.gather(*(counters.consume(f"k{i}", pools, 1) for i in range(14)))
    assert sorted(g.package or "" for g in got if g.ok) == ["big"] * 12 + ["small"] * 2
    assert sum(g.units for g in got) == 12 and sum(g.overage for g in got) == 2  # 2 + 10, then overage
    if kind == "sqlite":
        store.db.connection.executemany(
            "INSERT INTO charges VALUES (?,?,?,?,?,?,?,?,?,?,0)",
            [
                (f"k{i}", "ent", g.package, "l", "sms", g.units, g.overage, g.cost, "d", 0)
                for i, g in enumerate(got)
            ],
        )
    k = next(f"k{i}" for i, g in enumerate(got) if g.package == "small")
    again = await counters.consume(k, pools, 1)
    assert again.ok and again.repeated and again.package in ("small", None)
    assert await counters.usage("ent/small") == (2, 0)
    assert await counters.refund(k) is True
    assert await counters.refund(k) is False
    assert await counters.usage("ent/small") == (1, 0)
    await counters.close()
    store.close()


async def test_concurrent_calls_in_one_process_never_overspend(make_app: AppFactory, gateway: _GS) -> None:
    from .support import seed_doc

    seed = seed_doc(
        policy={"chain": ["ussd"], "timeouts": {"ussd": 2}},
        packages=[
            {
                "id": "p",
                "units": 7,
                "policy": "stop",
                "price": 0.7,
                "valid_from": time.time() - 1,
                "valid_to": time.time() + 3600,
            }
        ],
    )
    client = await make_app(seed)
    await asyncio.gather(*(call(client, f"r{i}", "ringing", callee=f"+861360000{i:04d}") for i in range(30)))
    states = [(await settle(client, f"r{i}:ringing"))["state"] for i in range(30)]
    assert states.count("delivered") == 7 and states.count("blocked") == 23
    assert len(gateway.submitted()) == 7


async def test_redis_counters_in_the_server_dedupe_and_meter(
    make_app: AppFactory, gateway: _GS, redis_url: str
) -> None:
    client = await make_app(delivery_counters="redis", redis_url=redis_url)
    acks = await asyncio.gather(*(call(client, "z1", "ringing") for _ in range(3)))
    assert sorted(a["duplicate"] for a in acks) == [False, True, True]
    assert (await settle(client, "z1:ringing"))["state"] == "delivered"
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()
    assert report["packages"][0]["used"] == 1
    assert len(gateway.submitted()) == 1


async def test_usage_reports_json_and_csv_and_cost_estimate(make_app: AppFactory, gateway: _GS) -> None:
    client = await make_app()
    await call(client, "u1", "ringing")
    await call(client, "u2", "ended", callee="+8613700001111")
    await settle(client, "u1:ringing")
    await settle(client, "u2:ended")
    resp = await client.get("/api/enterprises/sf/usage?by=day,line,channel", headers=auth(SF_KEY))
    rows = (await resp.json())["rows"]
    assert {(r["line"], r["channel"], r["messages"], r["units"]) for r in rows} == {
        ("+8613800000001", "ussd", 2, 2)
    }
    assert rows[0]["cost"] == pytest.approx(0.1)
    resp = await client.get("/api/enterprises/sf/usage?by=channel&format=csv", headers=auth(SF_KEY))
    assert resp.content_type == "text/csv"
    assert (await resp.text()).splitlines() == ["channel,messages,units,overage_units,cost", "ussd,2,2,0,0.1"]
    bad = await client.get("/api/enterprises/sf/usage?by=colour", headers=auth(SF_KEY))
    assert bad.status == 400 and (await bad.json())["problems"][0]["path"] == "by"
    report = await (await client.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()
    assert {(r["channel"], r["outcome"]) for r in report["attempts"]} == {("ussd", "delivered")}
    assert report["packages"][0] == {**report["packages"][0], "units": 100, "used": 2, "remaining": 98}
    # a range: today's rows in, an earlier range out; a bad day is a 400 naming the parameter
    today = day_of(time.time())
    ranged = await (
        await client.get(f"/api/enterprises/sf/report?from={today}&to={today}", headers=auth(SF_KEY))
    ).json()
    assert ranged["from"] == today and len(ranged["attempts"]) == len(report["attempts"])
    before = await (await client.get("/api/enterprises/sf/report?to=2020-01-01", headers=auth(SF_KEY))).json()
    assert before["attempts"] == [] and before["packages"] == report["packages"]  # balances are as of now
    resp = await client.get(
        "/api/enterprises/sf/usage?by=channel&from=2020-01-01&to=2020-01-31", headers=auth(SF_KEY)
    )
    assert (await resp.json())["rows"] == []
    resp = await client.get(f"/api/enterprises/sf/usage?by=channel&from={today}", headers=auth(SF_KEY))
    assert [(r["channel"], r["messages"]) for r in (await resp.json())["rows"]] == [("ussd", 2)]
    for query, name in (
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2026-02-02&to=2026-02-01", "from"),
    ):
        bad = await client.get(f"/api/enterprises/sf/report?{query}", headers=auth(SF_KEY))
        assert bad.status == 400 and (await bad.json())["problems"][0]["path"] == name, query
    # 2 units spent today on a 100-unit package: 98 left at 2 a day (since it started today) → 49 days
    projection = report["packages"][0]["projection"]
    assert projection["dailyUnits"] > 0 and projection["runOut"] > today
    est = await client.post(
        "/api/enterprises/sf/estimate",
        headers=auth(SF_KEY),
        json={"template": "courier-hangup", "data": sample("courier-hangup"), "count": 60},
    )
    body = await est.json()
    by = {c["channel"]: c for c in body["channels"]}
    assert by["ussd"]["units"] == 60 and by["flash"]["segments"] == 1
    assert by["sms"]["segments"] >= 2 and by["sms"]["units"] == 60 * by["sms"]["segments"]
    assert by["sms"]["beyond_packages"] == by["sms"]["units"] - 98 and by["sms"]["sendable"] is False
    assert by["ussd"]["sendable"] is True and by["ussd"]["cost"] == pytest.approx(60 * 0.05)
    assert by["sms"]["has_package"] is True
    none = await client.post(  # cmb's line has no package: not sendable for want of one
        "/api/enterprises/cmb/estimate",
        headers=auth(OPERATOR),
        json={"template": "courier-hangup", "data": sample("courier-hangup"), "count": 1},
    )
    assert {c["has_package"] for c in (await none.json())["channels"]} == {False}
    bad = await client.post(
        "/api/enterprises/sf/estimate",
        headers=auth(SF_KEY),
        json={"template": "courier-hangup", "data": {"waybill": 1}, "count": 1},
    )
    assert bad.status == 422
    assert (
        await client.post(
            "/api/enterprises/sf/estimate",
            headers=auth(OPERATOR),
            json={"template": "courier-hangup", "data": {}, "count": 0},
        )
    ).status == 422
    _ = CUSTOMER


async def test_two_servers_on_one_redis_share_dedupe_and_pool(
    make_app: AppFactory, gateway: _GS, redis_url: str, tmp_path: Path
) -> None:
    """Two server processes' worth of state (own SQLite each) on one Redis: an event posted to
    both is accepted once; charges never collide although both number their attempts from 1."""
    a = await make_app(delivery_counters="redis", redis_url=redis_url, data_dir=tmp_path / "a")
    b = await make_app(delivery_counters="redis", redis_url=redis_url, data_dir=tmp_path / "b")
    acks = await asyncio.gather(call(a, "m1", "ringing"), call(b, "m1", "ringing"))
    assert sorted(x["duplicate"] for x in acks) == [False, True]
    await call(a, "m2", "ended", callee="+8613711112222")
    await call(b, "m3", "ended", callee="+8613722223333")
    for client, did in ((a, "m2:ended"), (b, "m3:ended")):
        assert (await settle(client, did))["state"] == "delivered"
    winner = a if await a.app[delivery_key].store.delivery("m1:ringing") else b
    await settle(winner, "m1:ringing")
    report = await (await a.get("/api/enterprises/sf/report", headers=auth(SF_KEY))).json()
    assert report["packages"][0]["used"] == 3  # one per delivered card, across both servers
    assert len(gateway.submitted()) == 3


async def test_a_redis_charge_whose_attempt_row_a_crash_lost_is_given_back_on_resume(
    make_app: AppFactory, gateway: _GS, redis_url: str
) -> None:
    """Redis units are taken just before the attempt row commits: a crash in between leaves a
    charge without a row. The resumed chain ends without that attempt (here: an opt-out), so
    the unit must come back."""
    from dataclasses import replace

    from delivery.metering import applicable

    first = await make_app(delivery_counters="redis", redis_url=redis_url)
    await call(first, "g1", "ended")
    assert (await settle(first, "g1:ended"))["state"] == "delivered"
    store, meter = first.app[delivery_key].store, first.app[delivery_key].meter
    done = await store.delivery("g1:ended")
    assert done is not None
    async with store.tx():  # the state a crash leaves: an active delivery, its charge, no attempt row
        await store.accept_call(
            replace(done, id="g2:ended", call_id="g2", state="active", step=0, channel="")
        )
        await store.opt_out("sf", done.recipient, "sms", "退订")
    packages, _ = await applicable(store, "sf", done.line, time.time())
    assert (await meter.counters.consume("g2:ended#0", packages, 1)).ok
    await store.durable()
    assert (await meter.balances("sf"))[0]["used"] == 2
    await first.close()
    second = await make_app(delivery_counters="redis", redis_url=redis_url)
    d = await settle(second, "g2:ended")
    assert (d["state"], d["reason"], d["attempts"]) == ("blocked", "opted out", [])
    assert (await second.app[delivery_key].meter.balances("sf"))[0]["used"] == 1
