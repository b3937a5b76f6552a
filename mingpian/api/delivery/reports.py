"""What an enterprise reads back: usage and cost, the delivery report, opt-outs, and the cost
estimate of a campaign before it is sent."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from aiohttp import web

from delivery import eventfunnel
from delivery.funnel import STEPS, day_start, report
from delivery.metering.estimate import estimate
from delivery.metering.ledger import GROUPS, day_of, to_csv
from delivery.metering.projection import project
from delivery.staffcsv import FORMULA

from ...errors import ApiError
from ...httpjson import json_response
from ...keys import templates_key
from . import validation
from .access import enterprise, principal
from .ops import EID, OK, WRITE_ERRORS, op
from .paging import MAX_SEARCH, search
from .state import delivery_key

BASE = "/api/enterprises/{eid}"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day_range(request: web.Request) -> tuple[str, str]:
    """`?from=&to=` (ISO days, China time like every ledger day, both included); open ends are
    "" and "9999-12-31"."""
    out = []
    for name, open_end in (("from", ""), ("to", "9999-12-31")):
        value = request.query.get(name, "")
        if value:
            try:
                if not DAY.match(value):
                    raise ValueError
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                raise ApiError(400, "invalid_query", f"{name} must be a day, YYYY-MM-DD", path=name) from None
        out.append(value or open_end)
    if out[0] > out[1]:
        raise ApiError(400, "invalid_query", "from is after to", path="from")
    return out[0], out[1]


def _format(request: web.Request) -> str:
    """`?format=json` (the default) or `csv`; anything else is a 400, as the document says."""
    value = request.query.get("format", "json")
    if value not in ("json", "csv"):
        raise ApiError(400, "invalid_query", "format is json or csv", path="format")
    return value


# The growing tables each report reads (delivery/retention.py drops their old days); the funnel
# reads the daily counters and the event rollups, which are kept for good.
REPORT_READS = ("attempts", "deliveries", "charges", "taps")
USAGE_READS = ("charges",)


def _kept(request: web.Request, days: tuple[str, str], tables: tuple[str, ...]) -> dict[str, Any]:
    """`kept_since`: the first day each table read still holds; `pruned`: the range starts before
    one of them (its earlier days were dropped by the retention, not empty). A range without
    `from` is the kept records."""
    retention = request.app[delivery_key].retention
    kept = {t: retention.kept_since(t) for t in tables}
    return {"pruned": bool(days[0]) and days[0] < max(kept.values(), default=""), "kept_since": kept}


def _kept_headers(kept: dict[str, Any]) -> dict[str, str]:
    """The same for a CSV file, whose body has no room for it."""
    since = max(kept["kept_since"].values(), default="")
    return {"X-Range-Pruned": "1" if kept["pruned"] else "0", "X-Kept-Since": since}


def _within(rows: list[dict[str, Any]], days: tuple[str, str]) -> list[dict[str, Any]]:
    return [r for r in rows if "day" not in r or days[0] <= str(r["day"]) <= days[1]]


async def get_usage(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    by = tuple(x.strip() for x in request.query.get("by", "day").split(",") if x.strip())
    bad = [x for x in by if x not in GROUPS]
    if bad:
        raise ApiError(
            400, "invalid_query", f"cannot group by {bad[0]!r}; use day, line, channel, package", path="by"
        )
    days = _day_range(request)
    rows = await request.app[delivery_key].meter.usage(ent["id"], by)
    if "day" in by:
        rows = _within(rows, days)
    elif days != ("", "9999-12-31"):
        # Rows without a day cannot be cut to the range: group by day too, then sum back.
        rows = _regroup(
            _within(await request.app[delivery_key].meter.usage(ent["id"], ("day", *by)), days), by
        )
    kept = _kept(request, days, USAGE_READS)
    if _format(request) == "csv":
        return web.Response(
            text=to_csv(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="usage-{ent["id"]}.csv"',
                **_kept_headers(kept),
            },
        )
    return json_response({"enterprise": ent["id"], "by": list(by), "rows": rows, **kept})


def _regroup(rows: list[dict[str, Any]], by: tuple[str, ...]) -> list[dict[str, Any]]:
    sums: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = tuple(r[c] for c in by)
        out = sums.setdefault(
            key, {**{c: r[c] for c in by}, "messages": 0, "units": 0, "overage_units": 0, "cost": 0.0}
        )
        for k in ("messages", "units", "overage_units"):
            out[k] += r[k] or 0
        out["cost"] = round(out["cost"] + (r["cost"] or 0), 4)
    return [sums[k] for k in sorted(sums, key=lambda k: tuple(str(x) for x in k))]


async def get_report(request: web.Request) -> web.Response:
    """Attempts, taps and ad impressions within `?from=&to=`; package balances as of now, each
    with its pace and projected run-out day (delivery/metering/projection.py)."""
    ent = await enterprise(request, await principal(request))
    days = _day_range(request)
    service = request.app[delivery_key]
    store = service.store
    now = time.time()
    packages = await service.meter.balances(ent["id"])
    if packages:
        by_package = await service.meter.usage(ent["id"], ("day", "package"))
        packages = [{**p, "projection": project(p, by_package, now)} for p in packages]
    return json_response(
        {
            "enterprise": ent["id"],
            "from": days[0] or None,
            "to": None if days[1] == "9999-12-31" else days[1],
            "attempts": _within(await store.delivery_stats(ent["id"]), days),
            "packages": packages,
            "ads": _within(await store.impressions(ent["id"]), days),
            "taps": _within(await store.taps(ent["id"]), days),
            **_kept(request, days, REPORT_READS),
        }
    )


FUNNEL_DAYS = 30  # the funnel report's range when `from` is not given, ending `to` (today)
FUNNEL_MAX_DAYS = 366
FUNNEL_CSV = ("day", "channel", *STEPS, *(f"{s}_rate" for s in STEPS[1:]))


def _funnel_range(request: web.Request, now: float) -> tuple[str, str]:
    """`?from=&to=` for the funnel: `to` defaults to today, `from` to FUNNEL_DAYS days before
    it; at most FUNNEL_MAX_DAYS days."""
    first, last = _day_range(request)
    if last == "9999-12-31":
        last = max(day_of(now), first)
    end = date.fromisoformat(last)
    start = date.fromisoformat(first) if first else end - timedelta(days=FUNNEL_DAYS - 1)
    if (end - start).days + 1 > FUNNEL_MAX_DAYS:
        raise ApiError(
            400, "invalid_query", f"from and to span more than {FUNNEL_MAX_DAYS} days", path="from"
        )
    return start.isoformat(), last


HOURLY_MAX_DAYS = 31  # hourly buckets: a month at most (744 per group)
EVENT_CSV = (
    "group", "bucket", *eventfunnel.STAGES, *eventfunnel.OTHER,
    *(f"{a}_{b}_{x}" for a, b in pairwise(eventfunnel.STAGES) for x in ("rate", "low", "high")),
    "tapped_after_fallover", "open_median_s", "open_p90_s", "tap_median_s", "tap_p90_s",
)  # fmt: skip


def _cell(text: str) -> str:
    """A name as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(FORMULA) else text


async def get_event_funnel(request: web.Request, ent: dict[str, Any], fmt: str) -> web.Response:
    """The funnel of `?card=` from the event stream: grouped `?by=` variant, version, channel or
    card, per `?bucket=` day or hour, with intervals and times (delivery/eventfunnel.py)."""
    by = request.query.get("by", "")
    if by and by not in eventfunnel.BYS:
        raise ApiError(
            400, "invalid_query", f"cannot group by {by!r}; use {', '.join(eventfunnel.BYS)}", path="by"
        )
    bucket = request.query.get("bucket", "day")
    if bucket not in eventfunnel.BUCKETS:
        raise ApiError(400, "invalid_query", "bucket is day or hour", path="bucket")
    card = request.query.get("card", "")
    first, last = _funnel_range(request, time.time())
    if bucket == "hour" and (date.fromisoformat(last) - date.fromisoformat(first)).days + 1 > HOURLY_MAX_DAYS:
        raise ApiError(
            400, "invalid_query", f"hourly buckets cover at most {HOURLY_MAX_DAYS} days", path="bucket"
        )
    groups = await eventfunnel.funnel(
        request.app[delivery_key].events,
        ent["id"],
        card,
        day_start(first),
        day_start(last) + 86400,
        by,
        bucket,
    )
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(EVENT_CSV)
        for g in groups:
            for b in g["buckets"]:
                w.writerow(
                    [
                        _cell(g["group"]),
                        b["bucket"],
                        *(b[k] for k in (*eventfunnel.STAGES, *eventfunnel.OTHER)),
                    ]
                )
            step = [
                c
                for c in g["conversions"]
                if eventfunnel.STAGES.index(c["to"]) == eventfunnel.STAGES.index(c["from"]) + 1
            ]
            w.writerow([
                _cell(g["group"]), "total", *(g[k] for k in (*eventfunnel.STAGES, *eventfunnel.OTHER)),
                *("" if c[x] is None else c[x] for c in step for x in ("rate", "low", "high")),
                *("" if v is None else v for v in (
                    g["tapped_after_fallover"], g["time_to_open"]["median"], g["time_to_open"]["p90"],
                    g["time_to_tap"]["median"], g["time_to_tap"]["p90"],
                )),
            ])  # fmt: skip
        name = f"funnel-{ent['id']}-{card or 'all'}-{first}-{last}.csv"
        return web.Response(
            text=buf.getvalue(), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )  # fmt: skip
    return json_response({
        "enterprise": ent["id"], "card": card, "by": by, "bucket": bucket, "from": first, "to": last,
        "groups": groups,
    })  # fmt: skip


async def get_funnel(request: web.Request) -> web.Response:
    """Sent → delivered → displayed → link opened, per channel and day within `?from=&to=`,
    each channel's totals and the total, with each step's conversion from the one before. With
    `?card=`, `?by=` or `?bucket=`: the event stream's funnel (get_event_funnel)."""
    ent = await enterprise(request, await principal(request))
    fmt = _format(request)
    if any(k in request.query for k in ("card", "by", "bucket")):
        return await get_event_funnel(request, ent, fmt)
    first, last = _funnel_range(request, time.time())
    rows = await request.app[delivery_key].funnel.days(ent["id"], first, last, time.time())
    out = report(rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(FUNNEL_CSV)
        totals = [{**t, "day": "total"} for t in [*out["channels"], out["total"]]]
        for r in [*out["days"], *totals]:
            w.writerow(["" if r[c] is None else r[c] for c in FUNNEL_CSV])
        return web.Response(
            text=buf.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="funnel-{ent["id"]}-{first}-{last}.csv"'},
        )
    return json_response({"enterprise": ent["id"], "from": first, "to": last, **out})


async def get_optouts(request: web.Request) -> web.Response:
    """Every opt-out, or those whose number contains `?q=`; `?format=csv` for a file."""
    ent = await enterprise(request, await principal(request))
    days = _day_range(request)
    rows = await request.app[delivery_key].store.optouts(ent["id"])
    rows = [r for r in rows if days[0] <= day_of(float(r["at"])) <= days[1]]
    q = search(request)
    if q:
        rows = [r for r in rows if q in r["number"] or q in r["text"]]
    if _format(request) == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(["number", "at", "channel", "text"])
        for r in rows:
            text = r["text"]
            w.writerow([r["number"], r["at"], r["channel"], "'" + text if text.startswith(FORMULA) else text])
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="optouts-{ent["id"]}.csv"'},
        )
    return json_response({"optouts": rows})


async def post_estimate(request: web.Request) -> web.Response:
    """What a campaign would cost per channel, before it is sent."""
    ent = await enterprise(request, await principal(request))
    body = await validation.body(request, "estimate")
    msg = request.app[templates_key].get(body["template"]).render(body["data"])  # RenderError → 4xx
    line = validation.number(body["line"], "$.line") if body.get("line") else ""
    if line:
        await validation.own_line(request.app[delivery_key].store, ent["id"], line, "$.line")
    service = request.app[delivery_key]
    channels = await estimate(  # each channel's text as sent: with the enterprise's short links
        service.meter, ent["id"], msg, line, body["count"], lambda m, ch: service.composer.text(m, ch, ent)
    )
    return json_response(
        {"enterprise": ent["id"], "template": body["template"], "count": body["count"], "channels": channels}
    )


# ?from=&to=: ISO days (China time), from not after to
_DAY = {
    "type": "string",
    "anyOf": [{"format": "date"}, {"maxLength": 0}],
    "description": "YYYY-MM-DD (China time); from ≤ to; empty: an open end",
}
RANGE = (("from", _DAY), ("to", _DAY))


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_get(BASE + "/optouts", get_optouts)
    r.add_get(BASE + "/usage", get_usage)
    r.add_get(BASE + "/report", get_report)
    r.add_get(BASE + "/reports/funnel", get_funnel)
    r.add_post(BASE + "/estimate", post_estimate)
    csv_or_json = {
        "description": "rows",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    return {
        BASE + "/optouts": {
            "get": op(
                "Numbers that opted out (?from=&to=, ?q= search, ?format=csv)",
                {"200": csv_or_json},
                400,
                404,
                params=EID,
                query=(
                    *RANGE,
                    ("q", {"type": "string", "maxLength": MAX_SEARCH}),
                    ("format", {"enum": ["json", "csv"]}),
                ),
            )
        },
        BASE + "/usage": {
            "get": op(
                "Usage and cost by day/line/channel/package (?by=, ?format=csv, ?from=&to=)",
                {"200": csv_or_json},
                400,
                404,
                params=EID,
                query=(
                    (
                        "by",
                        {
                            "type": "string",
                            "pattern": "^(day|line|channel|package)(,(day|line|channel|package))*$",
                            "default": "day",
                            "description": "comma-separated grouping: day, line, channel, package",
                        },
                    ),
                    ("format", {"enum": ["json", "csv"], "default": "json"}),
                    *RANGE,
                ),
            )
        },
        BASE + "/report": {
            "get": op(
                "Deliveries per channel/outcome/day, package balances with projected run-out, "
                "taps, ad impressions (?from=&to= ISO days)",
                {"200": OK},
                400,
                404,
                params=EID,
                query=RANGE,
            )
        },
        BASE + "/reports/funnel": {
            "get": op(
                "Delivery funnel per channel and day: sent, delivered, displayed, link opened, with "
                "conversions and totals (?from=&to= ISO days, at most 366; to defaults to today, from "
                "to 30 days before; ?format=csv). With ?card=, ?by=variant|version|channel|card or "
                "?bucket=day|hour: the card's funnel from the event stream, sent → delivered → "
                "displayed → opened → tapped per group and bucket, each conversion with its 95% "
                "Wilson interval, time to open and to tap (median, p90 seconds); hourly at most 31 days",
                {"200": csv_or_json},
                400,
                404,
                params=EID,
                query=(
                    *RANGE,
                    ("format", {"enum": ["json", "csv"], "default": "json"}),
                    ("card", {"type": "string"}),
                    ("by", {"enum": list(eventfunnel.BYS)}),
                    ("bucket", {"enum": list(eventfunnel.BUCKETS), "default": "day"}),
                ),
            )
        },
        BASE + "/estimate": {
            "post": op(
                "Cost estimate per channel before a campaign",
                {"200": OK},
                404,
                *WRITE_ERRORS,
                params=EID,
                body="DeliveryEstimate",
            )
        },
    }
