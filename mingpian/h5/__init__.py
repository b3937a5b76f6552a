"""The H5 card page: the web page a kind-"card" short link opens (`GET /s/{code}`), its link
buttons (`/s/{code}/tap/{n}`), its reply form (`POST /s/{code}/reply`), its expired page, and the
`?format=h5` render the studio's H5 phone shows. See docs/h5.md.

The short links' route (mingpian/api/delivery/links.py) calls `card_page_response` and
`expired_response`, registered under its `card_page_key` once delivery and the chatbot have
started; the pages themselves are the `H5Pages` under `h5_pages_key`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from delivery.shortlinks import ShortLink

from ..api.chatbot import runtime_key
from ..api.delivery import delivery_key
from ..api.delivery.links import CardPages, card_page_key
from ..keys import settings_key
from ..openapi import add_paths, error_response
from .pages import H5Pages
from .render import setup_format

h5_pages_key = web.AppKey("h5_pages", H5Pages)


def _pages(request: web.Request) -> H5Pages:
    pages = request.app.get(h5_pages_key)
    if pages is None:  # the delivery service is not running (tests of other features)
        raise web.HTTPNotFound()
    return pages


async def card_page_response(request: web.Request, link: ShortLink) -> web.StreamResponse:
    """The page of a kind-"card" link (an expired one gets `expired_response`). Records the
    open (`ShortLinks.opened`) and, once per delivery and step, the funnel's `displayed` (h5)."""
    return await _pages(request).page(request, link)


async def expired_response(request: web.Request, link: ShortLink) -> web.StreamResponse:
    """An expired card link: the enterprise's name and the number that called, status 410."""
    return await _pages(request).expired(request, link)


async def _tap(request: web.Request) -> web.StreamResponse:
    return await _pages(request).tap(request)


async def _reply(request: web.Request) -> web.StreamResponse:
    return await _pages(request).reply(request)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx after delivery and the chatbot started: the pages over both."""
    service = app.get(delivery_key)
    if service is not None:
        app[h5_pages_key] = H5Pages(service, app.get(runtime_key), app[settings_key].base_url)
        app[card_page_key] = CardPages(card_page_response, expired_response)
    yield


_HTML = {"text/html": {"schema": {"type": "string"}}}
_CODE = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
_N = {
    "name": "n",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the button's index",
}


_TOO_MANY = error_response(
    "too many unknown or expired codes from this address (Retry-After), as on /s/{code}"
)


def _either(description: str) -> dict[str, Any]:
    """A JSON error or a Chinese page (an expired link, a card that cannot be shown)."""
    err = error_response(description)
    return {**err, "content": {**err["content"], **_HTML}}


PATHS: dict[str, Any] = {
    "/s/{code}/tap/{n}": {
        "get": {
            "summary": "A link button of a card page: the tap counted, then to the URL the card holds "
            "(never one from the request)",
            "operationId": "tapCardLink",
            "tags": ["delivery"],
            "parameters": [_CODE, _N],
            "responses": {
                "302": {"description": "to the button's own URL"},
                "404": error_response("no such card link or button, or the button is not a link"),
                "410": {"description": "the link has expired: its enterprise's page", "content": _HTML},
                "429": _TOO_MANY,
            },
        },
        "post": {
            "summary": "The ping of a dial or SMS link of a card page: its tap counted",
            "operationId": "pingCardLink",
            "tags": ["delivery"],
            "parameters": [_CODE, _N],
            "responses": {
                "204": {"description": "counted (or not a dial link: nothing to count)"},
                "404": error_response("no such card link or button"),
                "410": {"description": "the link has expired: its enterprise's page", "content": _HTML},
                "429": _TOO_MANY,
            },
        },
    },
    "/s/{code}/reply": {
        "post": {
            "summary": "A reply button of a card page (its form): the tap counted and answered by the "
            "enterprise's chatbot on the page, never on the phone",
            "operationId": "replyOnCardPage",
            "tags": ["delivery"],
            "parameters": [_CODE],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": {"type": "string", "description": "the page's form token"},
                                "tap": {"type": "string", "description": "the card's reply button (index)"},
                                "postback": {
                                    "type": "string",
                                    "description": "a button of the bot's answer: postback, newline, text",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "the card page with the chatbot's answer", "content": _HTML},
                "400": error_response("no button named, or not a reply button"),
                "403": error_response("`csrf_failed`: no valid token, or posted from another site"),
                "404": error_response("no such card link or button"),
                "410": {"description": "the link has expired: its enterprise's page", "content": _HTML},
                "429": _TOO_MANY,
                "503": _either("the chatbot is busy (Retry-After), or the card cannot be shown now"),
            },
        }
    },
}


def setup(app: web.Application) -> None:
    """Routes and the studio's render format; call after delivery, the chatbot and the
    template API are set up."""
    app.router.add_get("/s/{code}/tap/{n}", _tap, name="h5_tap")
    app.router.add_post("/s/{code}/tap/{n}", _tap, name="h5_tap_ping")
    app.router.add_post("/s/{code}/reply", _reply, name="h5_reply")
    app.cleanup_ctx.append(_lifecycle)
    add_paths(app, PATHS)
    setup_format(app)


__all__ = ["H5Pages", "card_page_response", "expired_response", "h5_pages_key", "setup"]
