"""The H5 card page: the web page a kind-"card" short link opens (`GET /s/{code}`), its link
buttons (`/s/{code}/tap/{n}`), its reply form (`POST /s/{code}/reply`), its expired page, and the
`?format=h5` render the studio's H5 phone shows. See docs/h5.md.

The short links' route (mingpian/api/delivery/links.py) calls `card_page_response` and
`expired_response`, registered under its `card_page_key` once delivery and the chatbot have
started; the pages themselves are the `H5Pages` under `h5_pages_key`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from delivery.shortlinks import ShortLink

from ..api.chatbot import runtime_key
from ..api.delivery import delivery_key
from ..api.delivery.links import CardPages, card_page_key
from ..keys import settings_key
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


def setup(app: web.Application) -> None:
    """Routes and the studio's render format; call after delivery, the chatbot and the
    template API are set up."""
    app.router.add_get("/s/{code}/tap/{n}", _tap, name="h5_tap")
    app.router.add_post("/s/{code}/tap/{n}", _tap, name="h5_tap_ping")
    app.router.add_post("/s/{code}/reply", _reply, name="h5_reply")
    app.cleanup_ctx.append(_lifecycle)
    setup_format(app)


__all__ = ["H5Pages", "card_page_response", "expired_response", "h5_pages_key", "setup"]
