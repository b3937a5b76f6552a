"""The delivery funnel: displayed and opened recorded once per delivery and step however often
they are heard, the report's numbers equal to the facts and the attempts, a 5G "displayed" report
from the MaaP simulator counted end to end, the CSV, and bad ranges answered 400. On SQLite and
on PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import date, timedelta
from typing import Any

from aiohttp.test_utils import TestServer

from delivery.funnel import Funnel
from delivery.gateways.rcs import message_id
from delivery.metering import day_of
from delivery.rows.funnel import FunnelFact
from mingpian.api.delivery import delivery_key
from simulators.maap import Simulator

from .support import OPERATOR, RCS_PHONE, AppFactory, Client, auth, call, maap_settings, rcs_seed, settle

URL = "/api/enterprises/sf/reports/funnel"
TOKEN = "funnel-test-token"


async def _funnel(client: Client, **query: str) -> dict[str, Any]:
    resp = await client.get(URL, params=query, headers=auth(OPERATOR))
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def _delivered(client: Client, call_id: str, **kw: Any) -> tuple[str, int, str]:
    """Post a ringing call event and wait for its card: (delivery, step, channel) delivered."""
    await call(client, call_id, "ringing", **kw)
    d = await settle(client, f"{call_id}:ringing")
    assert d["state"] == "delivered", d
    att = next(a for a in d["attempts"] if a["state"] == "delivered")
    return d["id"], att["step"], att["channel"]


async def test_each_fact_counts_once_and_the_report_equals_the_facts(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    funnel: Funnel = service.funnel
    did, step, channel = await _delivered(client, "fn1")
    await _delivered(client, "fn2")  # sent and delivered, never displayed
    # the call events' path wrote nothing for the funnel: its facts come later
    for table in ("funnel_facts", "funnel_days", "funnel_sealed"):
        assert (await service.store.db.one(f"SELECT count(*) FROM {table}"))[0] == 0
    now = time.time()
    assert await funnel.displayed(did, step, channel, "sf", now, how="h5") is True
    assert await funnel.displayed(did, step, channel, "sf", now + 1, how="h5") is False
    assert await funnel.opened(did, step, channel, "sf", now) is True
    assert await funnel.opened(did, step, channel, "sf", now + 2) is False
    # another process (its own memory) hearing the same facts again: the store says not new
    other = Funnel(service.store)
    assert await other.displayed(did, step, channel, "sf", now, how="cardsms") is False
    assert await other.opened(did, step, channel, "sf", now) is False
    # the same new fact heard several times at once: one of them is new
    got = await asyncio.gather(*(other.opened(did, step + 7, channel, "sf", now) for _ in range(5)))
    assert sorted(got) == [False] * 4 + [True]

    today = day_of(now)
    body = await _funnel(client, **{"from": today, "to": today})
    assert body["from"] == body["to"] == today
    [row] = [r for r in body["days"] if r["channel"] == channel]
    assert (row["day"], row["sent"], row["delivered"], row["displayed"], row["opened"]) == (today, 2, 2, 1, 2)
    assert (row["delivered_rate"], row["displayed_rate"], row["opened_rate"]) == (1.0, 0.5, 2.0)
    assert body["total"]["sent"] == sum(r["sent"] for r in body["channels"]) == 2
    assert body["total"]["displayed"] == 1 and body["total"]["opened"] == 2


async def test_settled_days_are_counted_once_then_read_from_their_counters(make_app: AppFactory) -> None:
    client = await make_app()
    service = client.app[delivery_key]
    did, step, channel = await _delivered(client, "old1")
    db = service.store.db
    # move the delivery and its attempts five days back: a day no attempt of can change any more
    await db.run("UPDATE deliveries SET created = created - 5 * 86400 WHERE id=$1", did)
    await db.run("UPDATE attempts SET started = started - 5 * 86400 WHERE delivery=$1", did)
    await service.store.durable()
    old = (date.fromisoformat(day_of(time.time())) - timedelta(days=5)).isoformat()
    assert await service.funnel.displayed(did, step, channel, "sf", time.time(), how="rcs")
    body = await _funnel(client, **{"from": old, "to": old})
    [row] = body["days"]
    assert (row["day"], row["channel"], row["sent"], row["delivered"], row["displayed"]) == (
        old, channel, 1, 1, 1,
    )  # fmt: skip
    # the day is sealed: the report reads its counters, not the attempts (gone now)
    await db.run("DELETE FROM attempts WHERE delivery=$1", did)
    await service.store.durable()
    again = await _funnel(client, **{"from": old, "to": old})
    assert again["days"] == body["days"]
    # and the range around it finds it, without the days that have nothing
    wide = await _funnel(client, **{"from": (date.fromisoformat(old) - timedelta(days=3)).isoformat()})
    assert [r["day"] for r in wide["days"]] == [old]


async def test_a_5g_displayed_report_from_the_maap_counts_once(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, server, _ = maap
    client = await make_app(rcs_seed(), **maap_settings(sim, server), webhook_csp_token=TOKEN)
    sim.csp_token, sim.reports = TOKEN, True
    sim.webhook = str(client.make_url("/maap/courier")).rstrip("/")
    did, step, channel = await _delivered(client, "g1", callee=RCS_PHONE)
    assert channel == "rcs"
    mid = message_id(did, step)
    assert [r.message_id for r in sim.received] == [mid]
    await sim.report(mid, "displayed")
    await sim.report(mid, "displayed")  # the platform sends it again
    await sim.report(mid, "delivered")  # not a display
    today = day_of(time.time())
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = [r for r in (await _funnel(client, **{"from": today}))["days"] if r["channel"] == "rcs"]
        if rows and rows[0]["displayed"]:
            break
        await asyncio.sleep(0.05)
    assert [(r["sent"], r["delivered"], r["displayed"], r["opened"]) for r in rows] == [(1, 1, 1, 0)]
    assert rows[0]["displayed_rate"] == 1.0 and rows[0]["opened_rate"] == 0.0


async def test_the_csv_has_each_day_then_the_totals(make_app: AppFactory) -> None:
    client = await make_app()
    did, step, channel = await _delivered(client, "c1")
    await client.app[delivery_key].funnel.opened(did, step, channel, "sf", time.time())
    today = day_of(time.time())
    resp = await client.get(URL, params={"from": today, "to": today, "format": "csv"}, headers=auth(OPERATOR))
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["day"], r["channel"]) for r in rows] == [(today, channel), ("total", channel), ("total", "")]
    assert [(r["sent"], r["delivered"], r["displayed"], r["opened"]) for r in rows] == [
        ("1", "1", "0", "1")
    ] * 3
    assert rows[0]["opened_rate"] == ""  # nothing displayed: no conversion to show


async def test_bad_ranges_are_refused_naming_the_parameter(make_app: AppFactory) -> None:
    client = await make_app()
    cases = {
        "from=2026-13-01": "from",
        "to=yesterday": "to",
        "from=2026-05-02&to=2026-05-01": "from",
        "from=2025-01-01&to=2026-01-02": "from",  # 367 days
        "format=xml": "format",
    }
    for query, path in cases.items():
        resp = await client.get(f"{URL}?{query}", headers=auth(OPERATOR))
        body = await resp.json()
        assert resp.status == 400, (query, body)
        assert body["error"] == "invalid_query" and body["problems"][0]["path"] == path, (query, body)
    ok = await _funnel(client, **{"from": "2025-01-01", "to": "2026-01-01"})  # 366 days
    assert ok["days"] == [] and ok["total"]["sent"] == 0 and ok["total"]["delivered_rate"] is None
    resp = await client.get(URL, headers=auth("mpk_wrong"))
    assert resp.status == 401


async def test_facts_share_a_flush_with_other_writes(make_app: AppFactory) -> None:
    """On PostgreSQL a fact rides the group commit with whatever else is queued (here a receipt):
    one flush, the fact new once, the receipt kept; on SQLite the same answers."""
    client = await make_app()
    store = client.app[delivery_key].store
    did, step, channel = await _delivered(client, "share1")
    now = time.time()
    fact = FunnelFact(did, step, "opened", "sf", channel, day_of(now), "link", now)
    got = await asyncio.gather(
        store.receipt("share-m1", "DELIVRD"), store.funnel_fact(fact), store.funnel_fact(fact)
    )
    assert list(got) == [None, True, False]
    await store.durable()
    assert await store.db.one("SELECT stat FROM receipts WHERE message_id='share-m1'") == ("DELIVRD",)
    [row] = await store.funnel_days("sf", day_of(now), day_of(now))
    assert (row["channel"], row["opened"], row["displayed"]) == (channel, 1, 0)


async def test_a_card_sms_drawn_counts_as_sent_and_delivered(make_app: AppFactory) -> None:
    """A card SMS's render receipt leaves its attempt `displayed` (receipts.py): sent and
    delivered in the funnel as well, displayed by its fact."""
    client = await make_app()
    service = client.app[delivery_key]
    did, step, channel = await _delivered(client, "cs1")
    await service.store.db.run(
        "UPDATE attempts SET state='displayed' WHERE delivery=$1 AND step=$2", did, step
    )
    await service.store.durable()
    assert await service.funnel.displayed(did, step, channel, "sf", time.time(), how="cardsms")
    today = day_of(time.time())
    [row] = (await _funnel(client, **{"from": today}))["days"]
    assert (row["sent"], row["delivered"], row["displayed"]) == (1, 1, 1)
