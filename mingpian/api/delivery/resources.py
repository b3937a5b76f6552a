"""An enterprise's lines, staff, cards and packages: one CRUD shape for the four, plus the
operator's verification of a line (a verified number shows the enterprise's brand)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from delivery import brand, cards, experiments, reviews
from delivery.keys import Principal
from delivery.model import NumberError, normalize_number
from infra import jsonio
from renderer import RenderError

from ...errors import ApiError
from ...httpjson import json_response
from ...keys import templates_key
from . import reviews as card_reviews
from . import validation
from .access import enterprise, principal, require_operator
from .ops import CREATED, DELETED, OK, WRITE_ERRORS, op
from .paging import PAGING, paging
from .state import delivery_key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# URL segment → (stored kind, id field, who may write)
KINDS: dict[str, tuple[str, str, str]] = {
    "lines": ("line", "number", "enterprise"),
    "staff": ("staff", "id", "enterprise"),
    "cards": ("card", "id", "enterprise"),
    "packages": ("package", "id", "operator"),
}
BASE = "/api/enterprises/{eid}"


async def _prepare(
    request: web.Request,
    p: Principal,
    kind: str,
    body: dict[str, Any],
    eid: str,
    old: dict[str, Any] | None,
) -> dict[str, Any]:
    """Checks beyond the schema, and the stored form (numbers in E.164)."""
    store = request.app[delivery_key].store
    if kind == "line":
        number = validation.number(body["number"], "$.number")
        if old is not None and number != old["number"]:  # before the lookup: it tells nothing
            raise ApiError(422, "id_mismatch", "number cannot change", path="$.number")
        hit = await store.find("line", number)
        if hit is not None and hit[0] != eid:
            # a number is one enterprise's line at most; an enterprise is not told whose
            whose = "a line of another enterprise" if p.operator else "taken"
            raise ApiError(409, "taken", f"{number} is {whose}", path="$.number")
        body = {**body, "number": number, "verified": bool(old and old.get("verified"))}
        if old and old.get("verify_note"):  # what the operator noted stays with the number
            body["verify_note"] = old["verify_note"]
        if body.get("staff") and await store.get("staff", eid, body["staff"]) is None:
            raise ApiError(422, "unknown_staff", f"no staff member {body['staff']!r}", path="$.staff")
    if kind == "staff":
        max_members = request.app[delivery_key].config.staff_max
        await validation.staff_member(store, eid, body, old is None, max_members)
    if kind == "card":
        body = reviews.content(body)  # its version and review are the server's
        line = None
        if body.get("line"):
            body = {**body, "line": validation.number(body["line"], "$.line")}
            line = await validation.own_line(store, eid, body["line"], "$.line")
        try:
            template = request.app[templates_key].get(body["template"])
        except RenderError as exc:
            raise ApiError(
                422, "unknown_template", str(exc).splitlines()[0][:200], path="$.template"
            ) from None
        # a line's card gets that line's staff member; a group's or the default, any member's
        members = [m for m in await store.list("staff", eid) if line is None or m["id"] == line.get("staff")]
        supplied = {k for m in members for k in (m.get("data") or {})}
        problems = cards.data_problems(template, body, supplied)
        if problems:
            raise ApiError(
                422,
                "invalid",
                f"card: {problems[0]['path']}: {problems[0]['message']} (template {body['template']!r})",
                problems=problems[: validation.MAX_PROBLEMS],
            )
    if kind == "package":
        if body["valid_to"] <= body["valid_from"]:
            raise ApiError(422, "invalid", "valid_to must be after valid_from", path="$.valid_to")
        body = {
            **body,
            "lines": [validation.number(n, f"$.lines[{i}]") for i, n in enumerate(body.get("lines", []))],
        }
        for i, n in enumerate(body["lines"]):
            await validation.own_line(store, eid, n, f"$.lines[{i}]")
    return body


async def _writer(request: web.Request, seg: str) -> tuple[Principal, dict[str, Any]]:
    p = await principal(request)
    ent = await enterprise(request, p)
    if KINDS[seg][2] == "operator":
        require_operator(p)
    return p, ent


def _item_id(seg: str, request: web.Request) -> str:
    raw = request.match_info["id"]
    if KINDS[seg][0] == "line":
        try:
            return normalize_number(raw)
        except NumberError:
            raise ApiError(404, "not_found", f"no line {raw!r}") from None
    return raw


def _paged(request: web.Request) -> bool:
    return any(k in request.query for k in ("q", "limit", "offset"))


def _list(seg: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        ent = await enterprise(request, await principal(request))
        store = request.app[delivery_key].store
        if seg == "cards":  # sent or still in review: an enterprise has tens, paged here
            items = await card_reviews.cards_json(store, ent["id"])
            if not _paged(request):
                return json_response({seg: items})
            q, limit, offset = paging(request)
            found = [c for c in items if q.casefold() in jsonio.dumps_str(c).casefold()] if q else items
            return json_response(
                {seg: found[offset : offset + limit], "total": len(found), "limit": limit, "offset": offset}
            )
        if not _paged(request):  # the whole list, as before paging
            return json_response({seg: await store.list(KINDS[seg][0], ent["id"])})
        q, limit, offset = paging(request)
        page = await store.page(KINDS[seg][0], ent["id"], q, limit, offset)
        return json_response(
            {seg: [doc for _, doc in page.items], "total": page.total, "limit": limit, "offset": offset}
        )

    return handler


async def line_queue(request: web.Request) -> web.Response:
    """Every enterprise's lines (operator), `?unverified=1` for the verification queue."""
    p = await principal(request)
    require_operator(p)
    q, limit, offset = paging(request)
    flag = request.query.get("unverified", "0")
    if flag not in ("1", "0"):
        raise ApiError(
            400, "invalid_query", "unverified is 1 (only lines not verified) or 0", path="unverified"
        )
    unverified = flag == "1"
    page = await request.app[delivery_key].store.page("line", None, q, limit, offset, unverified)
    return json_response(
        {
            "lines": [{**doc, "enterprise": eid} for eid, doc in page.items],
            "total": page.total,
            "limit": limit,
            "offset": offset,
        }
    )


def _create(seg: str) -> Handler:
    kind, idf, _ = KINDS[seg]

    async def handler(request: web.Request) -> web.Response:
        p, ent = await _writer(request, seg)
        store = request.app[delivery_key].store
        body = await _prepare(request, p, kind, await validation.body(request, kind), ent["id"], None)
        if kind == "card":
            return await _write_card(request, p, ent, body, None)
        if await store.get(kind, ent["id"], body[idf]) is not None:
            raise ApiError(409, "exists", f"{kind} {body[idf]!r} exists", path=f"$.{idf}")
        async with store.tx():
            await store.put(kind, ent["id"], body[idf], body)
            await store.audit(p.name, ent["id"], f"{kind}:{body[idf]}", f"create {kind}", {})
        await store.durable()
        return json_response(body, status=201)

    return handler


def _get(seg: str) -> Handler:
    kind = KINDS[seg][0]

    async def handler(request: web.Request) -> web.Response:
        ent = await enterprise(request, await principal(request))
        store = request.app[delivery_key].store
        if kind == "card":
            item = await card_reviews.card_json(store, ent["id"], _item_id(seg, request))
        else:
            item = await store.get(kind, ent["id"], _item_id(seg, request))
        if item is None:
            raise ApiError(404, "not_found", f"no {kind} {request.match_info['id']!r}")
        return json_response(item)

    return handler


def _put(seg: str) -> Handler:
    kind, idf, _ = KINDS[seg]

    async def handler(request: web.Request) -> web.Response:
        p, ent = await _writer(request, seg)
        store = request.app[delivery_key].store
        item_id = _item_id(seg, request)
        if kind == "card":
            old = await card_reviews.card_json(store, ent["id"], item_id)
        else:
            old = await store.get(kind, ent["id"], item_id)
        if old is None:
            raise ApiError(404, "not_found", f"no {kind} {request.match_info['id']!r}")
        body = await _prepare(request, p, kind, await validation.body(request, kind), ent["id"], old)
        if body[idf] != item_id:
            raise ApiError(422, "id_mismatch", f"{idf} cannot change", path=f"$.{idf}")
        if kind == "card":
            return await _write_card(request, p, ent, body, old)
        async with store.tx():
            await store.put(kind, ent["id"], item_id, body)
            await store.audit(p.name, ent["id"], f"{kind}:{item_id}", f"update {kind}", {})
        await store.durable()
        return json_response(body)

    return handler


def _delete(seg: str) -> Handler:
    kind = KINDS[seg][0]

    async def handler(request: web.Request) -> web.Response:
        p, ent = await _writer(request, seg)
        store = request.app[delivery_key].store
        item_id = _item_id(seg, request)
        async with store.tx():
            existed = kind == "card" and await store.get(reviews.REVIEW, ent["id"], item_id) is not None
            if kind == "card":  # its pending version leaves the queue; its versions stay
                await reviews.withdraw(store, ent["id"], item_id)
                await experiments.card_deleted(store, ent["id"], item_id, p.name)  # its experiment ends
            if not await store.delete(kind, ent["id"], item_id) and not existed:
                raise ApiError(404, "not_found", f"no {kind} {request.match_info['id']!r}")
            if kind == "line":  # a number it no longer has is no longer its sender
                await brand.line_no_longer_vouched(store, ent["id"], item_id)
            await store.audit(p.name, ent["id"], f"{kind}:{item_id}", f"delete {kind}", {})
        await store.durable()
        return web.Response(status=204)

    return handler


async def _write_card(
    request: web.Request, p: Principal, ent: dict[str, Any], body: dict[str, Any], old: dict[str, Any] | None
) -> web.Response:
    """A new version of a card: sent once approved (at once if the operator made it, or if it is
    a notification card of an enterprise the operator trusts); until then the version approved
    before is sent."""
    store = request.app[delivery_key].store
    card = body["id"]
    async with store.tx():
        if old is None and await reviews.review_of(store, ent["id"], card) is not None:
            raise ApiError(409, "exists", f"card {card!r} exists", path="$.id")
        version = await reviews.submit(store, ent, body, p.name, p.operator)
        await store.audit(
            p.name,
            ent["id"],
            f"card:{card}",
            "create card" if old is None else "update card",
            {"version": version["version"], "state": version["state"]},
        )
    await store.durable()
    return json_response(
        await card_reviews.card_json(store, ent["id"], card), status=201 if old is None else 200
    )


async def verify_line(request: web.Request) -> web.Response:
    """Only the operator marks a number verified (it then shows the brand); audited."""
    p = await principal(request)
    require_operator(p)
    ent = await enterprise(request, p)
    store = request.app[delivery_key].store
    number = _item_id("lines", request)
    line = await store.get("line", ent["id"], number)
    if line is None:
        raise ApiError(404, "not_found", f"no line {request.match_info['id']!r}")
    body = await validation.body(request, "verify")
    line = {**line, "verified": body["verified"], "verify_note": body.get("note", "")}
    async with store.tx():
        await store.put("line", ent["id"], number, line)
        if not body["verified"]:  # nor, then, a number its texts may be sent from
            await brand.line_no_longer_vouched(store, ent["id"], number)
        await store.audit(
            p.name,
            ent["id"],
            f"line:{number}",
            "verify" if body["verified"] else "unverify",
            {"note": body.get("note", "")},
        )
    await store.durable()
    return json_response(line)


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    paths: dict[str, Any] = {}
    for seg, (kind, _idf, writer) in KINDS.items():
        base, item = f"{BASE}/{seg}", f"{BASE}/{seg}/{{id}}"
        r.add_get(base, _list(seg))
        r.add_post(base, _create(seg))
        r.add_get(item, _get(seg))
        r.add_put(item, _put(seg))
        r.add_delete(item, _delete(seg))
        ref = "Delivery" + kind.capitalize()
        extra = (403,) if writer == "operator" else ()
        ids = ("eid", "id")
        paths[base] = {
            "get": op(
                f"List {seg} (?q=&limit=&offset=: one page, searched, with the total)",
                {"200": OK},
                400,
                404,
                params=("eid",),
                query=PAGING,
            ),
            "post": op(
                f"Create a {kind}",
                {"201": CREATED},
                404,
                409,
                *WRITE_ERRORS,
                *extra,
                params=("eid",),
                body=ref,
            ),
        }
        paths[item] = {
            "get": op(f"Get a {kind}", {"200": OK}, 404, params=ids),
            "put": op(
                f"Replace a {kind}", {"200": OK}, 404, 409, *WRITE_ERRORS, *extra, params=ids, body=ref
            ),
            "delete": op(f"Delete a {kind}", {"204": DELETED}, 404, *extra, params=ids),
        }
    r.add_get("/api/lines", line_queue)
    paths["/api/lines"] = {
        "get": op(
            "Every enterprise's lines, paged (operator); ?unverified=1: the verification queue",
            {"200": OK},
            400,
            403,
            query=(
                *PAGING,
                ("unverified", {"enum": ["1", "0"], "description": "1: only lines not verified"}),
            ),
        )
    }
    r.add_post(BASE + "/lines/{id}/verify", verify_line)
    paths[BASE + "/lines/{id}/verify"] = {
        "post": op(
            "Mark a number verified or not (operator; audited)",
            {"200": OK},
            403,
            404,
            *WRITE_ERRORS,
            params=("eid", "id"),
            body="DeliveryVerify",
        )
    }
    return paths
