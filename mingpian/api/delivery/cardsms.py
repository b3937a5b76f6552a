"""Card SMS over HTTP: the platform's signed callbacks (a template's review per vendor, render
receipts) and a card version's template (its review per vendor; registering it on request).

    POST /api/cardsms/{platform}/template-status   the vendors' review of a template
    POST /api/cardsms/{platform}/send-status       `shortchain`: a person's phone drew the card
    GET  /api/enterprises/{eid}/cards/{id}/versions/{n}/cardsms   the template, per vendor
    POST /api/enterprises/{eid}/cards/{id}/versions/{n}/cardsms   register it now

`{platform}` is `koomessage` (the one platform adapter). A callback is refused, changing nothing,
when its signature is missing or wrong (401 `bad_signature`), its timestamp is more than five
minutes from our clock (401 `stale_callback`) or its nonce was seen before (409 `replayed`; nonces
are remembered for twice the timestamp's window, in the process and in the Redis counters every
worker shares).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from delivery import reviews
from delivery.gateways.cardsms_sign import SKEW, callback_problem
from delivery.gateways.cardsms_template import VENDOR_NAMES, VENDORS

from ...errors import ApiError
from ...httpjson import json_response
from ...openapi import error_response
from .access import enterprise, principal
from .ops import OK, obj, op
from .state import delivery_key

PLATFORMS = ("koomessage",)
ITEM = "/api/enterprises/{eid}/cards/{id}/versions/{n}/cardsms"
STATE_CN = {"waiting": "审核中", "approved": "已通过", "refused": "未通过"}


async def _signed(request: web.Request) -> dict[str, Any]:
    """The callback's body once its signature, timestamp and nonce hold; else the refusal."""
    service = request.app[delivery_key]
    if request.match_info["platform"] not in PLATFORMS or service.cardsms is None:
        raise ApiError(404, "not_found", f"no card-SMS platform {request.match_info['platform']!r}")
    raw = await request.read()
    problem = callback_problem(service.config.cardsms_callback_secret, dict(request.headers), raw)
    if problem == "signature":
        raise ApiError(
            401, "bad_signature", "the callback's X-Signature does not match its body", path="X-Signature"
        )
    if problem == "stale":
        raise ApiError(
            401, "stale_callback", f"X-Timestamp is more than {SKEW:g} s from now", path="X-Timestamp"
        )
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the callback's body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the callback's body is not a JSON object")
    nonce = request.headers["X-Nonce"]
    if not await service.cardsms.fresh_nonce(nonce):
        raise ApiError(409, "replayed", "this callback's nonce was used before", path="X-Nonce")
    return body


async def template_status(request: web.Request) -> web.Response:
    body = await _signed(request)
    service = request.app[delivery_key]
    found = await service.cardsms.template_status(body)
    if found is None:
        raise ApiError(404, "not_found", f"no template {body.get('tpl_id')!r}", path="$.tpl_id")
    return json_response({"tpl_id": found.get("tpl_id"), "vendors": found.get("vendors")})


async def send_status(request: web.Request) -> web.Response:
    body = await _signed(request)
    service = request.app[delivery_key]

    async def accept(message_id: str, stat: str, vendor: str) -> None:
        await service.receipts.accept(message_id, stat, vendor=vendor)

    applied = await service.cardsms.rendered(body, accept)
    await service.store.durable()  # the receipt is stored before the platform hears 200
    return json_response({"applied": applied})


def view(doc: dict[str, Any] | None) -> dict[str, Any]:
    """A version's template as the API and the console show it: per vendor, state and reason."""
    if doc is None:
        return {"registered": False, "vendors": []}
    vendors = doc.get("vendors") or {}
    return {
        "registered": doc.get("state") != "error",
        "tpl_id": doc.get("tpl_id", ""),
        "state": doc.get("state"),
        "why": doc.get("why", ""),
        "sign": doc.get("sign", ""),
        "submitted_at": doc.get("submitted_at"),
        "vendors": [
            {
                "vendor": v,
                "name": VENDOR_NAMES[v],
                "state": (vendors.get(v) or {}).get("state", "waiting"),
                "state_text": STATE_CN.get((vendors.get(v) or {}).get("state", "waiting"), "审核中"),
                "why": (vendors.get(v) or {}).get("why", ""),
                "at": (vendors.get(v) or {}).get("at"),
            }
            for v in VENDORS
            if doc.get("state") != "error"
        ],
    }


async def _version(request: web.Request) -> tuple[Any, dict[str, Any], str, int, dict[str, Any]]:
    ent = await enterprise(request, await principal(request))
    service = request.app[delivery_key]
    card = request.match_info["id"]
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise ApiError(404, "not_found", f"no version {request.match_info['n']!r}") from None
    version = await service.store.get(reviews.VERSION, ent["id"], reviews.version_id(card, n))
    if version is None:  # a card from before versions: its version 1
        body = await reviews.version_body(service.store, ent["id"], card, n)
        if body is None:
            raise ApiError(404, "not_found", f"no version {n} of card {card!r}", path="n")
        version = {"version": n, "state": "approved", "body": body}
    return service, ent, card, n, version


async def get_template(request: web.Request) -> web.Response:
    service, ent, card, n, _ = await _version(request)
    doc = await service.cardsms.template_of(ent["id"], card, n) if service.cardsms is not None else None
    return json_response({"card": card, "version": n, "configured": service.cardsms is not None, **view(doc)})


async def register(request: web.Request) -> web.Response:
    """Register a version the operator approved as a template now (once; again after a failure)."""
    service, ent, card, n, version = await _version(request)
    if service.cardsms is None:
        raise ApiError(404, "not_found", "no card-SMS platform is configured")
    if version.get("state") != "approved":
        raise ApiError(
            409, "not_pending", f"version {n} of card {card!r} is {version.get('state')}, not approved"
        )
    doc = await service.cardsms.register(ent, card, n, version["body"])
    if doc.get("state") == "error":
        raise ApiError(502, "cardsms_refused", doc.get("why", ""))
    return json_response({"card": card, "version": n, "configured": True, **view(doc)})


def _callback(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["delivery"],
        "parameters": [
            {"name": "platform", "in": "path", "required": True, "schema": {"enum": list(PLATFORMS)}}
        ],
        "responses": {
            "200": obj("handled"),
            "400": error_response("not a JSON object"),
            "401": error_response("bad_signature or stale_callback"),
            "404": error_response("no such platform or template"),
            "409": error_response("replayed"),
        },
    }


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_post("/api/cardsms/{platform}/template-status", template_status)
    r.add_post("/api/cardsms/{platform}/send-status", send_status)
    r.add_get(ITEM, get_template)
    r.add_post(ITEM, register)
    ids = ("eid", "id", "n")
    post = op(
        "Register an approved card version as a card-SMS template now", {"200": OK}, 404, 409, params=ids
    )
    post["responses"]["502"] = error_response("the platform did not take the template (cardsms_refused)")
    return {
        "/api/cardsms/{platform}/template-status": {
            "post": _callback("The card-SMS platform's review of a template, per vendor (signed callback)")
        },
        "/api/cardsms/{platform}/send-status": {
            "post": _callback("The card-SMS platform's send status; `shortchain`: a render receipt (signed)")
        },
        ITEM: {
            "get": op(
                "A card version's card-SMS template and its review per vendor", {"200": OK}, 404, params=ids
            ),
            "post": post,
        },
    }
