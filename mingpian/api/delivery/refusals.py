"""A card's refusals by carriers after the fact (delivery/refusals.py): the enterprise and the
operator list them; the operator clears one, and the card goes as 5G on that carrier again.
Audited under the enterprise."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...errors import ApiError
from ...httpjson import json_response
from ...openapi import json_response as doc_json
from .access import enterprise, principal, require_operator
from .ops import op
from .state import delivery_key

BASE = "/api/enterprises/{eid}/cards/{id}/carrier-refusals"
ITEM = BASE + "/{carrier}"


async def list_refusals(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    service = request.app[delivery_key]
    card = request.match_info["id"]
    items = await service.refusals.of_card(ent["id"], card)
    if not items and await service.store.get("card", ent["id"], card) is None:
        raise ApiError(404, "not_found", f"no card {card!r}")
    return json_response({"refusals": items})


async def clear_refusal(request: web.Request) -> web.Response:
    """The operator lets the card go as 5G on that carrier again (a mistaken refusal, or one the
    carrier withdrew)."""
    p = await principal(request)
    require_operator(p)
    ent = await enterprise(request, p)
    card, carrier = request.match_info["id"], request.match_info["carrier"]
    doc = await request.app[delivery_key].refusals.clear(ent["id"], card, carrier, p.name)
    if doc is None:
        raise ApiError(404, "not_found", f"card {card!r} stands refused on no carrier {carrier!r}")
    return json_response(doc)


RECORD = {
    "type": "object",
    "required": ["card", "carrier", "version", "state", "description", "at", "message_id"],
    "properties": {
        "card": {"type": "string"},
        "carrier": {"type": "string", "description": "the carrier profile the chatbot sends through"},
        "version": {"type": "integer", "description": "the card version refused; a newer one may go"},
        "state": {"enum": ["refused", "cleared"]},
        "description": {"type": "string", "description": "the carrier's words"},
        "at": {"type": "number", "description": "Unix time of the carrier's decision"},
        "message_id": {"type": "string", "description": "the 5G message the carrier refused"},
        "delivery": {"type": "string"},
        "cleared_by": {"type": "string"},
        "cleared_at": {"type": "number"},
    },
}
LISTING = {
    "type": "object",
    "required": ["refusals"],
    "properties": {"refusals": {"type": "array", "items": RECORD}},
}


def setup(app: web.Application) -> dict[str, Any]:
    app.router.add_get(BASE, list_refusals)
    app.router.add_delete(ITEM, clear_refusal)
    return {
        BASE: {
            "get": op(
                "List a card's refusals by carriers after it was sent, newest first (while one stands, "
                "that version of the card skips 5G on that carrier)",
                {"200": doc_json("refusals", LISTING)},
                404,
                params=("eid", "id"),
            )
        },
        ITEM: {
            "delete": op(
                "Clear a card's refusal on a carrier: it goes as 5G there again (operator; audited)",
                {"200": doc_json("cleared", RECORD)},
                403,
                404,
                params=("eid", "id", "carrier"),
            )
        },
    }
