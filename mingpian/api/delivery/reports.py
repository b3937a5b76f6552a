"""What an enterprise reads back: usage and cost, the delivery report, opt-outs, and the cost
estimate of a campaign before it is sent."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from delivery.metering.estimate import estimate
from delivery.metering.ledger import GROUPS, to_csv
from delivery.staffcsv import FORMULA

from ...errors import ApiError
from ...httpjson import json_response
from ...keys import templates_key
from . import validation
from .access import enterprise, principal
from .ops import EID, OK, WRITE_ERRORS, op
from .state import delivery_key

BASE = "/api/enterprises/{eid}"


async def get_usage(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    by = tuple(x.strip() for x in request.query.get("by", "day").split(",") if x.strip())
    bad = [x for x in by if x not in GROUPS]
    if bad:
        raise ApiError(
            400, "invalid_query", f"cannot group by {bad[0]!r}; use day, line, channel, package", path="by"
        )
    rows = await request.app[delivery_key].meter.usage(ent["id"], by)
    if request.query.get("format") == "csv":
        return web.Response(
            text=to_csv(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="usage-{ent["id"]}.csv"'},
        )
    return json_response({"enterprise": ent["id"], "by": list(by), "rows": rows})


async def get_report(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    service = request.app[delivery_key]
    store = service.store
    return json_response(
        {
            "enterprise": ent["id"],
            "attempts": await store.delivery_stats(ent["id"]),
            "packages": await service.meter.balances(ent["id"]),
            "ads": await store.impressions(ent["id"]),
            "taps": await store.taps(ent["id"]),
        }
    )


async def get_optouts(request: web.Request) -> web.Response:
    """Every opt-out, or those whose number contains `?q=`; `?format=csv` for a file."""
    ent = await enterprise(request, await principal(request))
    rows = await request.app[delivery_key].store.optouts(ent["id"])
    q = request.query.get("q", "").strip()
    if q:
        rows = [r for r in rows if q in r["number"] or q in r["text"]]
    if request.query.get("format") == "csv":
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
    channels = await estimate(request.app[delivery_key].meter, ent["id"], msg, line, body["count"])
    return json_response(
        {"enterprise": ent["id"], "template": body["template"], "count": body["count"], "channels": channels}
    )


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_get(BASE + "/optouts", get_optouts)
    r.add_get(BASE + "/usage", get_usage)
    r.add_get(BASE + "/report", get_report)
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
                "Numbers that opted out (?q= search, ?format=csv)",
                {"200": csv_or_json},
                404,
                params=EID,
                query=("q", "format"),
            )
        },
        BASE + "/usage": {
            "get": op(
                "Usage and cost by day/line/channel/package (?by=, ?format=csv)",
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
                ),
            )
        },
        BASE + "/report": {
            "get": op(
                "Deliveries per channel/outcome/day, package balances, ad impressions",
                {"200": OK},
                404,
                params=EID,
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
