"""`POST /api/templates/{name}/render?format=h5`: the card as its H5 page, from any data (the
studio's H5 phone). Its buttons lead nowhere: links are in-page fragments and the form posts to
none, so a preview never reaches a production URL or the chatbot."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from renderer.h5 import STYLE_HASH, H5Actions, card_page
from renderer.mediarefs import refs, with_urls

from ..api.templates import RenderRequest, formats_key
from ..keys import settings_key
from ..library import library_links_key
from ..openapi import add_paths, openapi_paths_key

RENDER_PATH = "/api/templates/{name}/render"
CSP = "; ".join(
    [
        "default-src 'none'",
        f"style-src {STYLE_HASH}",
        "img-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        "sandbox",
    ]
)


async def render_h5(rr: RenderRequest) -> web.Response:
    message = rr.message
    found = refs(message)
    if found:  # library files named by `media:<id>`: their public URLs
        message = with_urls(message, rr.request.app[library_links_key].links(found))
    media = rr.request.app[settings_key].base_url + "/media/"
    actions = H5Actions(
        link=lambda n, s: f"#tap-{n}",
        form="#answer",
        token="preview",
        image=lambda url: url if url.startswith(media) else None,
    )
    return web.Response(
        text=card_page(message, actions=actions, footer="预览：按钮不会打开链接，也不会发给聊天机器人"),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _document(app: web.Application) -> None:
    current = app[openapi_paths_key].get(RENDER_PATH, {}).get("post")
    if current is None:
        return
    post = copy.deepcopy(current)
    post["description"] = (
        post.get("description", "") + " `format=h5` returns the card's H5 page (text/html) as a "
        "short link opens it, with inert buttons; see docs/h5.md."
    ).strip()
    content: dict[str, Any] = post["responses"]["200"].setdefault("content", {})
    content["text/html"] = {"schema": {"type": "string"}}
    add_paths(app, {RENDER_PATH: {"post": post}}, {})


def setup_format(app: web.Application) -> None:
    """Register `format=h5`; call after templates.setup and docs.setup."""
    app[formats_key]["h5"] = render_h5
    _document(app)
