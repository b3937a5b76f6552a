"""Brand change requests: an enterprise with verified lines asks, the operator decides.

An enterprise files `{"changes": {...brand fields}, "note"}`; the operator lists the pending
requests of every enterprise and approves (the changes are applied to the enterprise) or refuses
with a note; the enterprise may withdraw its pending request. One request is pending per
enterprise at a time. Every step is audited under the enterprise.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from delivery import brand
from delivery.keys import Principal
from delivery.replies import bot_id

from ...errors import ApiError
from ...httpjson import json_response
from ...openapi import json_response as doc_json
from . import validation
from .access import enterprise, principal, require_operator
from .ops import WRITE_ERRORS, op
from .state import delivery_key

BASE = "/api/enterprises/{eid}/brand-requests"
ITEM = BASE + "/{rid}"
ALL = "/api/brand-requests"


async def claim_chatbot(request: web.Request, ent_id: str, address: str, path: str) -> None:
    """Inside a store transaction: make the address the enterprise's (409 if another's)."""
    if not await request.app[delivery_key].store.claim_chatbot(ent_id, bot_id(address)):
        raise ApiError(409, "chatbot_taken", "that chatbot address belongs to another enterprise", path=path)


async def _request_of(request: web.Request, p: Principal) -> tuple[dict[str, Any], dict[str, Any]]:
    ent = await enterprise(request, p)
    rid = request.match_info["rid"]
    req = await request.app[delivery_key].store.get(brand.KIND, ent["id"], rid)
    if req is None:
        raise ApiError(404, "not_found", f"no brand change request {rid!r}")
    return ent, req


async def file_request(request: web.Request) -> web.Response:
    p = await principal(request)
    ent = await enterprise(request, p)
    body = await validation.body(request, "brand_request")
    store = request.app[delivery_key].store
    if await brand.pending_of(store, ent["id"]) is not None:
        raise ApiError(409, "request_pending", "a brand change request of this enterprise is pending")
    changes = body["changes"]
    if bot_id(changes.get("chatbot", "")) not in ("", brand.chatbot_of(ent)):
        owners = [
            e["id"]
            for e in await store.list("enterprise", "")
            if brand.chatbot_of(e) == bot_id(changes["chatbot"])
        ]
        if owners:
            raise ApiError(
                409,
                "chatbot_taken",
                "that chatbot address belongs to another enterprise",
                path="$.changes.chatbot",
            )
    req = brand.new_request(ent["id"], changes, body.get("note", ""), p.name)
    async with store.tx():
        await store.put(brand.KIND, ent["id"], req["id"], req)
        await store.audit(
            p.name, ent["id"], f"brand_request:{req['id']}", "file brand request", {"changes": changes}
        )
    await store.durable()
    return json_response(req, status=201)


async def list_requests(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    items = await request.app[delivery_key].store.list(brand.KIND, ent["id"])
    return json_response({"brand_requests": sorted(items, key=lambda r: -r["filed_at"])})


async def list_all(request: web.Request) -> web.Response:
    """The operator's queue: every enterprise's requests in one state (default pending), oldest first."""
    p = await principal(request)
    require_operator(p)
    state = request.query.get("state", "pending")
    if state not in brand.STATES:
        raise ApiError(400, "invalid_query", f"state must be one of {', '.join(brand.STATES)}", path="state")
    items = [r for r in await request.app[delivery_key].store.list(brand.KIND) if r["state"] == state]
    return json_response({"brand_requests": sorted(items, key=lambda r: r["filed_at"])})


async def get_request(request: web.Request) -> web.Response:
    _, req = await _request_of(request, await principal(request))
    return json_response(req)


async def withdraw_request(request: web.Request) -> web.Response:
    p = await principal(request)
    ent, req = await _request_of(request, p)
    if req["state"] != "pending":
        raise ApiError(409, "not_pending", f"the request is {req['state']}")
    store = request.app[delivery_key].store
    req = {**req, "state": "withdrawn", "decided_by": p.name, "decided_at": time.time()}
    async with store.tx():
        await store.put(brand.KIND, ent["id"], req["id"], req)
        await store.audit(p.name, ent["id"], f"brand_request:{req['id']}", "withdraw brand request", {})
    await store.durable()
    return json_response(req)


async def decide_request(request: web.Request) -> web.Response:
    """The operator approves (the changes apply now) or refuses, with a note; audited."""
    p = await principal(request)
    require_operator(p)
    ent, req = await _request_of(request, p)
    body = await validation.body(request, "brand_decision")
    if req["state"] != "pending":
        raise ApiError(409, "not_pending", f"the request is {req['state']}")
    store = request.app[delivery_key].store
    approve = body["approve"]
    note = body.get("note", "")
    req = {
        **req,
        "state": "approved" if approve else "refused",
        "decided_by": p.name,
        "decided_at": time.time(),
        "decision_note": note,
    }
    action = "approve brand request" if approve else "refuse brand request"
    async with store.tx():
        if approve:
            updated = brand.applied(ent, req["changes"])
            if "chatbot" in req["changes"]:
                await claim_chatbot(request, ent["id"], updated.get("chatbot", ""), "$.changes.chatbot")
            await store.put("enterprise", "", ent["id"], updated)
        await store.put(brand.KIND, ent["id"], req["id"], req)
        detail = {"request": req["id"], "note": note, "changes": req["changes"]}
        await store.audit(p.name, ent["id"], f"brand_request:{req['id']}", action, detail)
    await store.durable()
    return json_response(req)


RID = ("eid", "rid")
RECORD = {"$ref": "#/components/schemas/DeliveryBrandRequestRecord"}
LISTING = {
    "type": "object",
    "required": ["brand_requests"],
    "properties": {"brand_requests": {"type": "array", "items": RECORD}},
}
# What a request looks like once filed (answers of every route here).
RECORD_SCHEMA = {
    "type": "object",
    "required": ["id", "enterprise", "state", "changes", "note", "filed_by", "filed_at"],
    "properties": {
        "id": {"type": "string"},
        "enterprise": {"type": "string"},
        "state": {"enum": list(brand.STATES)},
        "changes": {"type": "object", "description": "brand field → its new value"},
        "note": {"type": "string", "description": "the enterprise's reason"},
        "filed_by": {"type": "string", "description": "operator, or enterprise:<id>"},
        "filed_at": {"type": "number", "description": "Unix time"},
        "decided_by": {"type": "string", "description": "who approved, refused or withdrew it"},
        "decided_at": {"type": "number"},
        "decision_note": {"type": "string", "description": "the operator's note"},
    },
}


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_post(BASE, file_request)
    r.add_get(BASE, list_requests)
    r.add_get(ALL, list_all)
    r.add_get(ITEM, get_request)
    r.add_delete(ITEM, withdraw_request)
    r.add_post(ITEM + "/decision", decide_request)
    return {
        BASE: {
            "get": op(
                "List the enterprise's brand change requests, newest first",
                {"200": doc_json("requests", LISTING)},
                404,
                params=("eid",),
            ),
            "post": op(
                "File a brand change request (one pending at a time; the operator decides)",
                {"201": doc_json("filed, pending", RECORD)},
                404,
                409,
                *WRITE_ERRORS,
                params=("eid",),
                body="DeliveryBrandRequest",
            ),
        },
        ALL: {
            "get": op(
                "Brand change requests of every enterprise in one state, oldest first (operator)",
                {"200": doc_json("requests", LISTING)},
                400,
                403,
                query=(("state", {"enum": list(brand.STATES), "default": "pending"}),),
            )
        },
        ITEM: {
            "get": op(
                "Get a brand change request", {"200": doc_json("the request", RECORD)}, 404, params=RID
            ),
            "delete": op(
                "Withdraw a pending brand change request",
                {"200": doc_json("withdrawn", RECORD)},
                404,
                409,
                params=RID,
            ),
        },
        ITEM + "/decision": {
            "post": op(
                "Approve (apply the changes) or refuse a pending brand change request (operator; audited)",
                {"200": doc_json("decided", RECORD)},
                403,
                404,
                409,
                *WRITE_ERRORS,
                params=RID,
                body="DeliveryBrandDecision",
            )
        },
    }
