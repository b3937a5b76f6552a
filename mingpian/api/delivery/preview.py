"""An enterprise's card as its people will see it: the stored card's template and data, with the
enterprise's brand (signature, name, colour, and its library logo), in any render format the
templates API has (`rcs`, `png`, `jpeg`, `webp`, `mp4`, and their query parameters).

Only the enterprise's own library files are used: a `media:<id>` value it does not own is left
out of the data before rendering, as if it had not been given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from delivery import reviews
from renderer import RenderError
from renderer.mediarefs import media_id
from renderer.model import Brand, Message
from renderer.templates import CardTemplate

from ...errors import ApiError
from ...keys import templates_key
from ..templates import RenderRequest, _profile, formats_key
from .access import enterprise, principal
from .ops import op
from .state import delivery_key

ROUTE = "/api/enterprises/{eid}/cards/{id}/preview"


async def _owned(request: web.Request, eid: str, value: Any) -> Any:
    """`value` without the `media:<id>` strings the enterprise does not own (dict keys dropped)."""
    store = request.app[delivery_key].store
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            kept = await _owned(request, eid, v)
            if kept is not None:
                out[k] = kept
        return out
    if isinstance(value, list):
        return [x for x in [await _owned(request, eid, v) for v in value] if x is not None]
    if isinstance(value, str) and value.startswith("media:"):
        id = media_id(value)
        return value if id and await store.media(eid, id) is not None else None
    return value


def version_param(request: web.Request) -> int | None:
    """`?version=n`; None (the latest, as its enterprise last wrote it) when not given."""
    raw = request.query.get("version", "")
    if raw and not (raw.isdigit() and len(raw) <= 9):
        raise ApiError(400, "invalid_query", "version is a whole number", path="version")
    return int(raw) if raw else None


async def render_card(
    request: web.Request, ent: dict[str, Any], card: dict[str, Any]
) -> tuple[CardTemplate, dict[str, Any], Message]:
    """A card's content rendered as calls would show it: its template and data, the enterprise's
    brand and library files. A 4xx for a template that is gone or data that no longer renders."""
    store = request.app[delivery_key].store
    try:
        template = request.app[templates_key].get(card["template"])
    except RenderError as exc:
        raise ApiError(422, "unknown_template", str(exc).splitlines()[0][:200], path="template") from None
    data = await _owned(request, ent["id"], card.get("data") or {})
    data = await request.app[delivery_key].library.cached(ent, data)
    message = template.render(data)  # RenderError → 4xx through the middleware
    logo = ent.get("logo") if media_id(ent.get("logo")) else None
    if logo is not None and await store.media(ent["id"], media_id(logo) or "") is None:
        logo = None
    brand = Brand(
        ent.get("signature") or message.brand.signature,
        ent.get("brand_name") or ent.get("name") or message.brand.name,
        ent.get("color") or message.brand.color,
        logo or message.brand.logo,
    )
    return template, data, replace(message, brand=brand)


async def preview(request: web.Request) -> web.StreamResponse:
    ent = await enterprise(request, await principal(request))
    store = request.app[delivery_key].store
    card = await reviews.version_body(store, ent["id"], request.match_info["id"], version_param(request))
    if card is None:
        raise ApiError(404, "not_found", "no such card or version", path="id")
    fmt = request.query.get("format", "rcs")
    handlers = request.app[formats_key]
    if fmt not in handlers:
        raise ApiError(
            400, "unknown_format", f"format must be one of {', '.join(sorted(handlers))}", path="format"
        )
    template, data, message = await render_card(request, ent, card)
    b = message.brand
    shown = {"signature": b.signature, "name": b.name, "color": b.color, "logo": b.logo}
    rr = RenderRequest(request, template, data, message, _profile(request), brand=shown)
    return await handlers[fmt](rr)


def setup(app: web.Application) -> dict[str, Any]:
    app.router.add_get(ROUTE, preview)
    o = op(
        "A card version rendered with the enterprise's brand and library files "
        "(?format=rcs|png|jpeg|webp|mp4; ?version=n, default the latest)",
        {"200": {"description": "the payload, picture or video (202 with a job while a video renders)"}},
        400,
        404,
        422,
        params=("eid", "id"),
        query=("format", "profile", "width", "version"),
    )
    return {ROUTE: {"get": o}}
