"""The card funnel from the event stream: per variant with Wilson intervals and times to open
and tap, per hour, as CSV, and bad parameters answered 400 naming them. On SQLite and on
PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from delivery.eventfunnel import wilson
from delivery.metering import day_of
from mingpian.api.delivery import delivery_key

from .support import OPERATOR, AppFactory, auth
from .test_events import delivery, stored

URL = "/api/enterprises/sf/reports/funnel"


def test_wilson_interval_of_known_cases() -> None:
    low, high = wilson(8, 10)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert (low, round(high, 4)) == (0.0, 0.2775)
    low, high = wilson(50, 100)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    assert wilson(0, 0) is None


async def test_funnel_by_variant_with_intervals_times_and_csv(make_app: AppFactory) -> None:
    client = await make_app()
    events = client.app[delivery_key].events
    now = time.time()
    sent = now - 600
    # variant A: 10 sent, 10 delivered, 8 opened (after 60 s), 4 tapped (after 120 s, one on
    # the SMS fall-over); B: 10 sent, 9 delivered, 2 opened, 1 tapped
    for i in range(20):
        v = "A" if i < 10 else "B"
        d = delivery(i, sent, v, "exp1")
        await stored(client.app[delivery_key].store, d)
        await events.record("sent", d, 0, "rcs", sent)
        j = i % 10
        if v == "A" or j < 9:
            await events.record("delivered", d, 0, "rcs", sent + 5)
        if (v == "A" and j < 8) or (v == "B" and j < 2):
            await events.record("opened", d, 0, "rcs", sent + 60)
        if (v == "A" and j < 4) or (v == "B" and j < 1):
            step = 1 if (v == "A" and j == 3) else 0
            if step:
                await events.record("sent", d, 1, "sms", sent + 30)  # a fall-over: not sent twice
            await events.record("tapped", d, step, "rcs", sent + 120, key="改约", button="改约")
    await events.settled()
    today = day_of(now)
    resp = await client.get(
        URL, params={"card": "courier", "by": "variant", "from": today}, headers=auth(OPERATOR)
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    a, b = body["groups"]
    assert (a["group"], a["sent"], a["delivered"], a["opened"], a["tapped"]) == ("A", 10, 10, 8, 4)
    assert (b["group"], b["sent"], b["delivered"], b["opened"], b["tapped"]) == ("B", 10, 9, 2, 1)
    assert a["buttons"] == {"改约": 4} and a["tapped_after_fallover"] == 0.25
    conv = {(c["from"], c["to"]): c for c in a["conversions"]}
    assert conv[("delivered", "opened")] == {
        "from": "delivered",
        "to": "opened",
        "rate": 0.8,
        "low": 0.4902,
        "high": 0.9433,
    }
    assert conv[("sent", "displayed")]["rate"] == 0.0
    assert a["time_to_open"]["n"] == 8 and a["time_to_open"]["median"] == pytest.approx(60, rel=0.2)
    assert a["time_to_tap"]["p90"] == pytest.approx(120, rel=0.2)
    assert [x["bucket"] for x in a["buckets"]] == [day_of(sent)]
    # per hour, one group
    hourly = await (
        await client.get(URL, params={"card": "courier", "bucket": "hour"}, headers=auth(OPERATOR))
    ).json()
    [g] = hourly["groups"]
    assert g["sent"] == 20 and sum(x["sent"] for x in g["buckets"]) == 20
    assert all(x["bucket"].endswith(":00") for x in g["buckets"])
    # CSV: a row per bucket and a total per group with the intervals
    resp = await client.get(
        URL, params={"card": "courier", "by": "variant", "format": "csv"}, headers=auth(OPERATOR)
    )
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    total = next(r for r in rows if r["group"] == "A" and r["bucket"] == "total")
    assert total["opened"] == "8" and total["sent_delivered_rate"] == "1.0"
    assert total["sent_delivered_low"] == str(round(wilson(10, 10)[0], 4))  # type: ignore[index]
    assert total["displayed_opened_rate"] == ""  # nothing displayed: no rate, not a zero


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"card": "courier", "by": "colour"}, "by"),
        ({"card": "courier", "bucket": "week"}, "bucket"),
        ({"card": "courier", "bucket": "hour", "from": "2026-01-01", "to": "2026-03-01"}, "bucket"),
        ({"card": "courier", "from": "2016-01-01", "to": "2026-01-01"}, "from"),  # ten years
        ({"card": "courier", "from": "2026-13-01"}, "from"),
    ],
)
async def test_bad_parameters_are_named(make_app: AppFactory, query: dict[str, Any], path: str) -> None:
    client = await make_app()
    resp = await client.get(URL, params=query, headers=auth(OPERATOR))
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"] == "invalid_query" and body["problems"][0]["path"] == path
