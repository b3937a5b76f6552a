"""Enterprises: list, create, read, replace, delete; API keys; the audit log."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from delivery import brand, keys

from ...errors import ApiError
from ...httpjson import json_response
from . import validation
from .access import enterprise, principal, require_operator
from .brand import claim_chatbot
from .ops import CREATED, DELETED, EID, OK, WRITE_ERRORS, op
from .state import delivery_key

BASE, ITEM = "/api/enterprises", "/api/enterprises/{eid}"
OPERATOR_ONLY = ("suspended", "notification_trusted")  # fields only the operator sets


async def list_enterprises(request: web.Request) -> web.Response:
    p = await principal(request)
    store = request.app[delivery_key].store
    items = (
        await store.list("enterprise", "")
        if p.operator
        else [e for e in [await store.get("enterprise", "", p.enterprise or "")] if e]
    )
    return json_response({"enterprises": items})


async def create_enterprise(request: web.Request) -> web.Response:
    p = await principal(request)
    require_operator(p)
    body = await validation.body(request, "enterprise")
    store = request.app[delivery_key].store
    if await store.get("enterprise", "", body["id"]) is not None:
        raise ApiError(409, "exists", f"enterprise {body['id']!r} exists", path="$.id")
    body = brand.with_approval(body, body.get(brand.SENDER))  # the operator's sender is approved
    async with store.tx():
        await claim_chatbot(request, body["id"], body.get("chatbot", ""), "$.chatbot")
        await store.put("enterprise", "", body["id"], body)
        await store.audit(p.name, body["id"], body["id"], "create enterprise", {})
    await store.durable()
    return json_response(body, status=201)


async def get_enterprise(request: web.Request) -> web.Response:
    return json_response(await enterprise(request, await principal(request)))


async def put_enterprise(request: web.Request) -> web.Response:
    """Replace an enterprise. Once it has verified lines, its brand fields change only by the
    operator; the enterprise files a brand change request instead (brand.py). Its sender number
    is the operator's to approve in any case, but for one of its own verified lines."""
    p = await principal(request)
    ent = await enterprise(request, p)
    body = await validation.body(request, "enterprise")
    if body["id"] != ent["id"]:
        raise ApiError(422, "id_mismatch", "id cannot change", path="$.id")
    if not p.operator:  # only the operator suspends an enterprise, lifts it, or trusts its cards
        body = {k: v for k, v in body.items() if k not in OPERATOR_ONLY}
        body |= {k: ent[k] for k in OPERATOR_ONLY if ent.get(k)}
    store = request.app[delivery_key].store
    changed = brand.brand_changes(ent, body)
    requests = f"POST {ITEM.format(eid=ent['id'])}/brand-requests"
    sender = body.get(brand.SENDER, "")
    if brand.SENDER in changed:  # the operator's, or the enterprise's own verified line: approved
        if sender and not p.operator and not await brand.own_verified_line(store, ent["id"], sender):
            raise ApiError(
                409,
                "brand_locked",
                f"sms_sender: the number texts are sent from is approved by the operator (but for the "
                f"enterprise's own verified lines): file a brand change request ({requests})",
                path=f"$.{brand.SENDER}",
            )
        body = brand.with_approval(body, sender)
    else:  # as approved before; the operator may approve the sender it has by naming it
        approved = body.get(brand.APPROVED) if p.operator else None
        body = brand.with_approval(body, approved or ent.get(brand.APPROVED))
    locked = [f for f in changed if f != brand.SENDER]
    if locked and not p.operator and await brand.has_verified_lines(store, ent["id"]):
        raise ApiError(
            409,
            "brand_locked",
            f"{', '.join(locked)}: the enterprise has verified lines, so its brand changes only "
            f"through a brand change request the operator approves ({requests})",
            path=f"$.{locked[0]}",
        )
    async with store.tx():
        if "chatbot" in changed:
            await claim_chatbot(request, ent["id"], body.get("chatbot", ""), "$.chatbot")
        await store.put("enterprise", "", ent["id"], body)
        detail = {"brand": {f: body.get(f, "") for f in changed}} if changed else {}
        await store.audit(p.name, ent["id"], ent["id"], "update enterprise", detail)
    await store.durable()
    return json_response(body)


async def delete_enterprise(request: web.Request) -> web.Response:
    p = await principal(request)
    require_operator(p)
    ent = await enterprise(request, p)
    service = request.app[delivery_key]
    store = service.store
    media = await store.media_list(ent["id"])
    await store.delete_enterprise(ent["id"])
    await store.durable()
    await service.library.forget_enterprise(media)  # its library files no one else uses
    return web.Response(status=204)


async def issue_key(request: web.Request) -> web.Response:
    """The operator, or the enterprise itself (its console), issues a key; shown this once."""
    p = await principal(request)
    ent = await enterprise(request, p)
    store = request.app[delivery_key].store
    label = request.query.get("label", "").strip()[:64] or f"issued by {p.name}"
    key = await keys.issue(store, ent["id"], label)
    await store.audit(
        p.name, ent["id"], ent["id"], "issue key", {"key": keys.hash_key(key)[:12], "label": label}
    )
    await store.durable()
    return json_response({"key": key, "id": keys.hash_key(key)[:12], "enterprise": ent["id"]}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    """The enterprise's keys: a short id of each hash, its label and date (never the key)."""
    ent = await enterprise(request, await principal(request))
    return json_response({"keys": await request.app[delivery_key].store.keys_of(ent["id"])})


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key by its short id; its console sessions end with it."""
    p = await principal(request)
    ent = await enterprise(request, p)
    store = request.app[delivery_key].store
    kid = request.match_info["kid"]
    async with store.tx():
        if not await store.drop_key(ent["id"], kid):
            raise ApiError(404, "not_found", f"no key {kid!r}")
        await store.audit(p.name, ent["id"], ent["id"], "revoke key", {"key": kid})
    await store.durable()
    return web.Response(status=204)


async def get_audit(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    return json_response({"audit": await request.app[delivery_key].store.audit_log(ent["id"])})


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_get(BASE, list_enterprises)
    r.add_post(BASE, create_enterprise)
    r.add_get(ITEM, get_enterprise)
    r.add_put(ITEM, put_enterprise)
    r.add_delete(ITEM, delete_enterprise)
    r.add_post(ITEM + "/keys", issue_key)
    r.add_get(ITEM + "/keys", list_keys)
    r.add_delete(ITEM + "/keys/{kid}", revoke_key)
    r.add_get(ITEM + "/audit", get_audit)
    return {
        BASE: {
            "get": op("List enterprises (an enterprise key sees its own)", {"200": OK}),
            "post": op(
                "Create an enterprise (operator)",
                {"201": CREATED},
                403,
                409,
                *WRITE_ERRORS,
                body="DeliveryEnterprise",
            ),
        },
        ITEM: {
            "get": op("Get an enterprise", {"200": OK}, 404, params=EID),
            "put": op(
                "Replace an enterprise (brand fields, once it has verified lines: operator only)",
                {"200": OK},
                404,
                409,
                *WRITE_ERRORS,
                params=EID,
                body="DeliveryEnterprise",
            ),
            "delete": op(
                "Delete an enterprise and everything of it (operator)", {"204": DELETED}, 403, 404, params=EID
            ),
        },
        ITEM + "/keys": {
            "post": op(
                "Issue an API key for the enterprise (shown once; ?label=)",
                {"201": CREATED},
                404,
                params=EID,
                query=("label",),
            ),
            "get": op(
                "The enterprise's keys: short id, label, date (never the key)", {"200": OK}, 404, params=EID
            ),
        },
        ITEM + "/keys/{kid}": {
            "delete": op(
                "Revoke a key (its console sessions end)", {"204": DELETED}, 404, params=("eid", "kid")
            )
        },
        ITEM + "/audit": {
            "get": op("Audit log (verification and every change)", {"200": OK}, 404, params=EID)
        },
    }
