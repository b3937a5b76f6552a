"""Card versions over HTTP: a card as its enterprise sees it (its latest version and where its
review stands), its versions, and the operator's queue and decisions (delivery/reviews.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chatbot.approval import NotApproved
from delivery import reviews
from delivery.model import DEFAULT_CHAIN
from delivery.readiness import Readiness, cardsms_readiness, readiness
from renderer.rcs import to_rcs

from ...errors import ApiError
from ...httpjson import json_response
from . import cardsms as cardsms_api
from . import validation
from .access import enterprise, principal, require_operator
from .ops import OK, WRITE_ERRORS, op
from .paging import PAGING, paging
from .preview import render_card, version_param
from .state import delivery_key

ITEM = "/api/enterprises/{eid}/cards/{id}"
MAX_NOTE = 500


def _review(summary: dict[str, Any], latest: dict[str, Any] | None) -> dict[str, Any]:
    """Where a card's versions stand, as its `review` field shows it."""
    v = latest or {}
    return {
        "state": summary.get("state", "approved"),  # of the latest version
        "version": summary.get("latest", 1),
        "sent_version": summary.get("approved"),  # what calls get (None: nothing yet)
        "class": summary.get("class") or v.get("class") or "notification",
        "made_by": v.get("made_by", summary.get("made_by", "")),
        "made_at": v.get("made_at", summary.get("made_at")),
        "decided_by": v.get("decided_by", ""),
        "decided_at": v.get("decided_at"),
        "note": v.get("note", ""),
    }


async def card_json(store: Any, eid: str, card: str) -> dict[str, Any] | None:
    """The card as its enterprise last wrote it (its latest version), with its review."""
    summary = await reviews.review_of(store, eid, card)
    if summary is None:
        return None
    latest = await store.get(reviews.VERSION, eid, reviews.version_id(card, int(summary["latest"])))
    # a card from before versions: the stored card is its version 1
    body = latest["body"] if latest else reviews.content(await store.get("card", eid, card) or {})
    return {**body, "version": summary["latest"], "review": _review(summary, latest)}


async def cards_json(store: Any, eid: str) -> list[dict[str, Any]]:
    """Every card of the enterprise, sent or not yet, in id order."""
    ids = {c["id"] for c in await store.list("card", eid)}
    ids |= {r["card"] for r in await store.list(reviews.REVIEW, eid)}
    out = [await card_json(store, eid, card) for card in sorted(ids)]
    return [c for c in out if c is not None]


async def list_versions(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    store = request.app[delivery_key].store
    card = request.match_info["id"]
    found = await reviews.versions(store, ent["id"], card)
    if not found:  # a card from before versions: its one version
        doc = await store.get("card", ent["id"], card)
        if doc is None:
            raise ApiError(404, "not_found", f"no card {card!r}")
        found = [{"card": card, "version": 1, "state": "approved", "body": reviews.content(doc)}]
    return json_response({"versions": found})


async def get_readiness(request: web.Request) -> web.Response:
    """Whether a version (default the latest) can go out, channel by channel of the enterprise's
    chain: waiting for the operator or a carrier, refused (by whom, why), or ready."""
    ent = await enterprise(request, await principal(request))
    service = request.app[delivery_key]
    store = service.store
    card = request.match_info["id"]
    summary = await reviews.review_of(store, ent["id"], card)
    n = version_param(request) or (int(summary["latest"]) if summary else None)
    body = await reviews.version_body(store, ent["id"], card, n) if n else None
    if summary is None or n is None or body is None:
        raise ApiError(404, "not_found", f"no such card or version: {card!r}", path="id")
    version = await store.get(reviews.VERSION, ent["id"], reviews.version_id(card, n)) or {
        "version": n,
        "state": "approved",  # a card from before versions: the one sent
    }
    chain = list((ent.get("policy") or {}).get("chain") or DEFAULT_CHAIN)
    chatbot = ent.get("chatbot", "")
    approval = service.approval

    async def carrier() -> NotApproved | None:
        if approval is None:
            return None
        _, _, message = await render_card(request, ent, body)
        message = await service.library.published(ent["id"], message)  # as a send names its files
        sent = {"senderAddress": chatbot, "messageList": to_rcs(message).message_list()}
        return await approval(chatbot, sent)

    async def refusal() -> dict[str, Any] | None:
        return await service.refusals.standing(ent["id"], card, n, chatbot)

    async def cardsms() -> Readiness:
        doc = await service.cardsms.template_of(ent["id"], card, n)
        return cardsms_readiness(doc, cardsms_api.view(doc)["vendors"])

    found = await readiness(
        version, chain, set(service.channels), chatbot, carrier, refusal,
        cardsms if service.cardsms is not None else None,
    )  # fmt: skip
    return json_response(
        {
            "card": card,
            "version": n,
            "state": version.get("state", "approved"),
            "sent_version": summary.get("approved"),
            "channels": [r.to_json() for r in found],
        }
    )


async def decide(request: web.Request) -> web.Response:
    """The operator approves or refuses a pending version (a refusal says why)."""
    p = await principal(request)
    require_operator(p)
    ent = await enterprise(request, p)
    store = request.app[delivery_key].store
    card = request.match_info["id"]
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise ApiError(404, "not_found", f"no version {request.match_info['n']!r}") from None
    body = await validation.body(request, "card_decision")
    decision = "approve" if body["approve"] else "refuse"
    note = body.get("note", "").strip()
    if decision == "refuse" and not note:
        raise ApiError(422, "invalid", "a refusal says why: note is required", path="$.note")
    try:
        async with store.tx():
            version = await reviews.decide(store, ent["id"], card, n, decision, note, p.name)
            await store.audit(
                p.name,
                ent["id"],
                f"card:{card}",
                f"{decision} card version",
                {"version": n, "note": note},
            )
    except KeyError:
        raise ApiError(404, "not_found", f"no version {n} of card {card!r}") from None
    except reviews.NotPending as exc:
        raise ApiError(
            409, "not_pending", f"version {n} of card {card!r} is not waiting for a decision ({exc.state})"
        ) from None
    await store.durable()
    cs = request.app[delivery_key].cardsms
    if version["state"] == "approved" and cs is not None and "cardsms" in _chain(ent):
        cs.register_later(ent, card, n, version["body"])  # the vendors' review starts now
    return json_response(version)


def _chain(ent: dict[str, Any]) -> list[str]:
    return list((ent.get("policy") or {}).get("chain") or DEFAULT_CHAIN)


async def queue(request: web.Request) -> web.Response:
    """Every enterprise's versions waiting for the operator, oldest first by card id, each with
    the approved version beside it and what changed."""
    p = await principal(request)
    require_operator(p)
    q, limit, offset = paging(request)
    store = request.app[delivery_key].store
    page = await store.page(reviews.PENDING, None, q, limit, offset)
    items = []
    for eid, pend in page.items:
        card, n = pend["card"], int(pend["version"])
        version = await store.get(reviews.VERSION, eid, reviews.version_id(card, n)) or {}
        sent = await store.get("card", eid, card)
        ent = await store.get("enterprise", "", eid) or {}
        items.append(
            {
                "enterprise": eid,
                "enterprise_name": ent.get("name", eid),
                "card": card,
                "version": n,
                "class": pend.get("class", "notification"),
                "made_by": pend.get("made_by", ""),
                "made_at": pend.get("made_at"),
                "pending": version.get("body", {}),
                "approved": reviews.content(sent) if sent else None,
                "approved_version": sent.get("version", 1) if sent else None,
                "changes": reviews.changes(reviews.content(sent) if sent else None, version.get("body", {})),
            }
        )
    return json_response({"reviews": items, "total": page.total, "limit": limit, "offset": offset})


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_get(f"{ITEM}/versions", list_versions)
    r.add_get(f"{ITEM}/readiness", get_readiness)
    r.add_post(f"{ITEM}/versions/{{n}}/decision", decide)
    r.add_get("/api/reviews", queue)
    ids = ("eid", "id")
    return {
        f"{ITEM}/versions": {
            "get": op(
                "List a card's versions, oldest first, each with its review", {"200": OK}, 404, params=ids
            )
        },
        f"{ITEM}/readiness": {
            "get": op(
                "Whether a card version (?version=n, default the latest) can go out, per channel of the "
                "enterprise's chain: ready, waiting (for the operator or a carrier), refused (by whom, "
                "why), expired or unconfigured",
                {"200": OK},
                400,
                404,
                422,
                params=ids,
                query=("version",),
            )
        },
        f"{ITEM}/versions/{{n}}/decision": {
            "post": op(
                "Approve or refuse a pending card version (operator; a refusal needs a note)",
                {"200": OK},
                403,
                404,
                409,
                *WRITE_ERRORS,
                params=(*ids, "n"),
                body="DeliveryCardDecision",
            )
        },
        "/api/reviews": {
            "get": op(
                "The operator's review queue: pending card versions of every enterprise, each beside "
                "the approved version with what changed",
                {"200": OK},
                400,
                403,
                query=PAGING,
            )
        },
    }
