"""Kannel's callbacks: delivery reports (dlr-url) and subscribers' SMS (MO), authenticated by
the shared token Kannel was given in each URL."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from delivery.gateways.kannel import DLR_STATS

from ...errors import ApiError
from ...httpjson import json_response
from ...openapi import error_response
from .ops import obj
from .state import delivery_key


def _authenticate(request: web.Request) -> None:
    want = request.app[delivery_key].kannel_token
    got = request.query.get("token", "")
    if not want or not hmac.compare_digest(want.encode(), got.encode()):
        raise ApiError(401, "unauthorized", "wrong or missing token", path="token")


async def kannel_dlr(request: web.Request) -> web.Response:
    """Kannel's dlr-url callback: `?id=<our message id>&type=%d&token=…`."""
    _authenticate(request)
    try:
        kind = int(request.query.get("type", ""))
    except ValueError:
        raise ApiError(400, "invalid_query", "type must be Kannel's DLR type number", path="type") from None
    stat = DLR_STATS.get(kind)
    mid = request.query.get("id", "")
    if not mid:
        raise ApiError(400, "invalid_query", "id is missing", path="id")
    service = request.app[delivery_key]
    if stat is not None:  # 4 buffered, 8 accepted by the SMSC: not final
        await service.receipts.accept(mid, stat, vendor="kannel")
    await service.store.durable()
    return json_response({"id": mid, "stat": stat})


async def kannel_mo(request: web.Request) -> web.Response:
    """Kannel's MO callback (a sms-service get-url): `?from=%p&to=%P&text=%a&token=…`."""
    _authenticate(request)
    q = request.query
    if not q.get("from") or not q.get("to"):
        raise ApiError(400, "invalid_query", "from and to are required", path="from")
    service = request.app[delivery_key]
    opted = await service.replies.on_reply(q["from"], q["to"], q.get("text", ""), "sms")
    await service.store.durable()
    return json_response({"opt_out": opted})


def _callback(summary: str, names: tuple[str, ...], optional: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["delivery"],
        "parameters": [
            {"name": n, "in": "query", "required": n != optional, "schema": {"type": "string"}} for n in names
        ],
        "responses": {
            "200": obj("handled"),
            "400": error_response("bad query"),
            "401": error_response("wrong token"),
        },
    }


def setup(app: web.Application) -> dict[str, Any]:
    app.router.add_get("/api/gateway/kannel/dlr", kannel_dlr)
    app.router.add_get("/api/gateway/kannel/mo", kannel_mo)
    return {
        "/api/gateway/kannel/dlr": {
            "get": _callback(
                "Kannel dlr-url callback (authenticated by token=)", ("id", "type", "token"), "type"
            )
        },
        "/api/gateway/kannel/mo": {
            "get": _callback(
                "Kannel MO callback: a subscriber's SMS (opt-out words honoured)",
                ("from", "to", "text", "token"),
                "text",
            )
        },
    }
