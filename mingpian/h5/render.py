"""The card as its H5 page from any data, its buttons leading nowhere (links are in-page
fragments, the form posts to none), so a preview never reaches a production URL or the chatbot:

- `POST /api/templates/{name}/render?format=h5` (JSON data, like every format);
- `GET /api/templates/{name}/h5?s=…&profile=…`: the same page as a frame's own document (the
  studio's H5 phone), the data encoded as the studio's share links encode it (`z` + base64url of
  deflate-raw JSON, or `j` + base64url of JSON). A frame's document has its own policy; the
  studio's page never parses it (no `srcdoc`).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

from aiohttp import web

from infra.jsonio import JSONDecodeError, loads, nesting_within
from renderer import PROFILES, RenderError
from renderer.h5 import STYLE_HASH, H5Actions, card_page
from renderer.mediarefs import refs, with_urls
from renderer.model import Message

from ..api.templates import RenderRequest, _profile, formats_key
from ..errors import ApiError
from ..keys import metrics_key, settings_key, templates_key
from ..library import library_links_key
from ..openapi import add_paths, error_response, extended_operation

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


HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
}


async def render_h5(rr: RenderRequest) -> web.Response:
    return _page(rr.request, rr.message)


def _page(request: web.Request, message: Message) -> web.Response:
    found = refs(message)
    if found:  # library files named by `media:<id>`: their public URLs
        message = with_urls(message, request.app[library_links_key].links(found))
    base = request.app[settings_key].base_url
    media = base + "/media/"
    actions = H5Actions(
        link=lambda n, s: f"#tap-{n}",
        form="#answer",
        token="preview",
        # our own media by its path: the preview is framed from whatever address the studio was
        # opened at, which need not be the public base (its policy allows 'self' only)
        image=lambda url: url[len(base) :] if url.startswith(media) else None,
    )
    return web.Response(
        text=card_page(message, actions=actions, footer="预览：按钮不会打开链接，也不会发给聊天机器人"),
        content_type="text/html",
        charset="utf-8",
        headers=HEADERS,
    )


def _data(request: web.Request) -> Any:
    """The `s` parameter's data (the studio's share encoding), within the body limits."""
    settings = request.app[settings_key]
    token = request.query.get("s", "")
    if len(token) < 2 or token[0] not in "zj":
        raise ApiError(400, "invalid_query", "参数 s 应为预览数据（z 或 j 开头的编码）", path="s")
    try:
        raw = base64.urlsafe_b64decode(token[1:] + "=" * (-len(token[1:]) % 4))
        if token[0] == "z":
            inflate = zlib.decompressobj(-15)
            raw = inflate.decompress(raw, settings.max_body_bytes + 1)
            if len(raw) > settings.max_body_bytes or inflate.unconsumed_tail:
                raise ApiError(413, "body_too_large", "预览数据太大", path="s")
        data = loads(raw)
    except (binascii.Error, ValueError, zlib.error, JSONDecodeError):
        raise ApiError(400, "invalid_query", "参数 s 不是有效的预览数据", path="s") from None
    if not nesting_within(data, settings.max_json_depth):
        raise ApiError(400, "too_deep", f"预览数据嵌套超过 {settings.max_json_depth} 层", path="s")
    return data


async def preview_page(request: web.Request) -> web.Response:
    """GET /api/templates/{name}/h5: the H5 page of `s` (a frame's document)."""
    app = request.app
    template = app[templates_key].get(request.match_info["name"])
    _profile(request)  # an unknown profile is refused as on the render route
    data = _data(request)
    try:
        message = template.render(data)
    except RenderError as exc:
        app[metrics_key].render_errors.inc(template.name, exc.kind)
        raise
    return _page(request, message)


def _document(app: web.Application) -> None:
    post = extended_operation(
        app,
        RENDER_PATH,
        "post",
        "`format=h5` returns the card's H5 page (text/html) as a short link opens it, with inert "
        "buttons; see docs/h5.md.",
    )
    if post is None:
        return
    content: dict[str, Any] = post["responses"]["200"].setdefault("content", {})
    content["text/html"] = {"schema": {"type": "string"}}
    add_paths(app, {RENDER_PATH: {"post": post}}, {})


PREVIEW_PATH = "/api/templates/{name}/h5"
PREVIEW_DOC = {
    PREVIEW_PATH: {
        "get": {
            "summary": "The card's H5 page from data in the query (the studio's H5 phone frame); "
            "its buttons lead nowhere",
            "operationId": "previewH5Page",
            "tags": ["templates"],
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "s",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[zj][A-Za-z0-9_-]+$"},
                    "description": "the data as the studio's share links encode it",
                },
                {"name": "profile", "in": "query", "required": False, "schema": {"enum": sorted(PROFILES)}},
            ],
            "responses": {
                "200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}},
                "400": error_response("`s` is not encoded data, or an unknown profile"),
                "404": error_response("no such template"),
                "413": error_response("the data is larger than `max_body_bytes`"),
                "422": error_response("the data does not fit the template, or the card breaks a limit"),
            },
        }
    }
}


def setup_format(app: web.Application) -> None:
    """Register `format=h5` and the preview page; call after templates.setup and docs.setup."""
    app[formats_key]["h5"] = render_h5
    app.router.add_get(PREVIEW_PATH, preview_page, name="h5_preview")
    _document(app)
    add_paths(app, PREVIEW_DOC)
