"""Short links on the web (delivery/shortlinks.py): `GET /s/{code}` for whoever has the text, and
`GET /api/enterprises/{eid}/links/{code}` (the link and its opens) for its enterprise.

`/s/{code}`: a web link answers 302 to its recorded target (never anywhere else: targets are
checked when minted) and its open is counted when the enterprise's policy asks; a card link
answers the card's page from the H5 part, through `card_page_key` (404 while nothing registered
it). An unknown code and an expired one answer the same Chinese 404 page, after the same work (an
expired link is dropped from the cache of hits, so both read the store); an expired card link
shows the H5 part's expired page instead, which names the enterprise, still not 200.

Guessing: codes carry about 59.5 bits, and every miss (unknown, expired or malformed) counts
against the client's address (mingpian/clientaddr.py): the miss past MISSES in MISS_WINDOW
seconds, and every request after it until the window lets the address in again, is answered
429 with Retry-After (those after it before any lookup, so a flood of random codes costs a
dictionary read). With the Redis counters (a fleet) the count is shared by every worker; each worker also
remembers the addresses refused, so a refused client costs no round trip either.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from delivery.metering import Counters
from delivery.metering.redis import RedisCounters
from delivery.shortlinks import ShortLink, client_class

from ...clientaddr import client_address
from ...errors import ApiError
from ...httpjson import json_response
from ...openapi import json_response as doc_json
from .access import enterprise, principal
from .ops import op
from .state import delivery_key

MISSES = 30  # unknown or expired codes one client address may try per window
MISS_WINDOW = 60.0  # seconds
MAX_ADDRESSES = 100_000  # addresses tracked before the counts start over (bounded memory)
Page = Callable[[web.Request, ShortLink], Awaitable[web.StreamResponse]]

NOT_FOUND_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">
<title>链接不存在或已过期</title>
<style>body{font:16px/1.6 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
padding:48px 24px;color:#333;text-align:center}h1{font-size:20px;margin:0 0 12px}p{color:#666}</style>
</head><body><h1>链接不存在或已过期</h1><p>请检查短信中的链接是否完整，或联系发送方获取新的链接。</p></body></html>
"""
TOO_MANY_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">
<title>请稍后再试</title></head><body style="text-align:center;padding:48px 24px">
<h1 style="font-size:20px">请求过于频繁</h1><p>请稍后再试。</p></body></html>
"""
HEADERS = {
    "Cache-Control": "no-store",  # every open reaches the server (and is counted)
    "Referrer-Policy": "no-referrer",  # the code is a secret: the target never sees it
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}
# A redirect has no body: what keeps it out of caches and keeps the code from the target is enough.
REDIRECT_HEADERS = {"Cache-Control": HEADERS["Cache-Control"], "Referrer-Policy": HEADERS["Referrer-Policy"]}


@dataclass(frozen=True, slots=True)
class CardPages:
    """What the H5 part registers under `card_page_key`: the page of a card link, and the page of
    an expired one (the enterprise's name and number; a 404 or 410 status)."""

    card_page_response: Page
    expired_response: Page


card_page_key = web.AppKey("short_link_card_pages", CardPages)


class MissLimit:
    """Misses per client address in the last `window` seconds, in this worker's memory; with the
    Redis counters, counted there too (shared by the fleet)."""

    def __init__(self, allowed: int = MISSES, window: float = MISS_WINDOW) -> None:
        self.allowed, self.window = allowed, window
        self.counters: Counters | None = None  # RedisCounters: the fleet's count
        self._misses: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}  # address → refused until (this worker knows)

    def any_refused(self) -> bool:
        return bool(self._blocked)

    def refused(self, address: str, now: float) -> float:
        """0, or the seconds until `address` may try again."""
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        if until <= now:
            del self._blocked[address]
            return 0.0
        return until - now

    async def missed(self, address: str, now: float) -> float:
        """Count a miss: 0 while within the allowance, else the seconds until the address may
        try again (it is refused from now on). This worker's count is decided before Redis is
        asked, so concurrent misses from one address cannot all slip past while Redis answers."""
        if len(self._misses) > MAX_ADDRESSES:
            self._misses.clear()
        if len(self._blocked) > MAX_ADDRESSES:
            self._blocked.clear()
        seen = self._misses.setdefault(address, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        seen.append(now)
        if len(seen) > self.allowed:
            self._blocked[address] = seen[0] + self.window
            return self._blocked[address] - now
        if isinstance(self.counters, RedisCounters):  # the other workers' misses count too
            member = f"{now:.6f}:{secrets.token_hex(4)}"
            with contextlib.suppress(OSError, RedisError):  # Redis away: this worker's count decides
                key = f"linkmiss:{address}"
                if not await self.counters.cap(key, self.allowed, self.window, member, now):
                    self._blocked[address] = now + self.window
                    return self.window
        return 0.0


miss_limit_key = web.AppKey("short_link_misses", MissLimit)


def _page(text: str, status: int, **headers: str) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers={**HEADERS, **headers}
    )


async def open_link(request: web.Request) -> web.StreamResponse:
    limit = request.app[miss_limit_key]
    now = time.time()
    if limit.any_refused():  # the address is worked out only while some client is refused
        wait = limit.refused(client_address(request), now)
        if wait:
            return _page(TOO_MANY_PAGE, 429, **{"Retry-After": str(int(wait) + 1)})
    service = request.app[delivery_key]
    links = service.links
    code = request.match_info["code"]
    link = links.cached(code) or await links.resolve(code)
    if link is None or link.expired:
        if link is not None:
            links.forget(link.code)  # the next try reads the store, as an unknown code does
        wait = await limit.missed(client_address(request), now)
        if wait:  # past the allowance: refused, whether the code was unknown or expired
            return _page(TOO_MANY_PAGE, 429, **{"Retry-After": str(int(wait) + 1)})
        pages = request.app.get(card_page_key)
        if link is not None and link.kind == "card" and pages is not None:
            return await pages.expired_response(request, link)
        return _page(NOT_FOUND_PAGE, 404)
    if link.kind == "card":
        pages = request.app.get(card_page_key)
        if pages is None:
            return _page(NOT_FOUND_PAGE, 404)
        return await pages.card_page_response(request, link)
    counting = links.counting(link.enterprise)
    if counting is None:
        counting = await links.counts_opens(link.enterprise)
    if counting:
        links.opened(link, client_class(request.headers.get("User-Agent", "")))
    return web.Response(status=302, headers={"Location": link.target, **REDIRECT_HEADERS})


async def link_info(request: web.Request) -> web.Response:
    """The enterprise's link and its opens; another enterprise's code answers 404 like one that
    does not exist."""
    ent = await enterprise(request, await principal(request))
    links = request.app[delivery_key].links
    code = request.match_info["code"]
    link = await links.resolve(code)
    if link is None or link.enterprise != ent["id"]:
        raise ApiError(404, "not_found", f"no short link {code!r}")
    opens = await links.opens(link.code)
    return json_response({**link.to_json(), "url": links.url(link.code), "opens": opens})


async def _limit_on_start(app: web.Application) -> None:
    """The fleet's count once the delivery service (and its counters) runs."""
    service = app.get(delivery_key)
    if service is not None and isinstance(service.counters, RedisCounters):
        app[miss_limit_key].counters = service.counters


LINK = {
    "type": "object",
    "required": ["code", "url", "kind", "target", "created", "expires", "expired", "opens"],
    "properties": {
        "code": {"type": "string"},
        "url": {"type": "string", "description": "as written in the text (no https:// on an https base)"},
        "enterprise": {"type": "string"},
        "recipient": {"type": "string", "description": "E.164, or empty"},
        "delivery": {"type": "string"},
        "step": {"type": "integer"},
        "channel": {"type": "string"},
        "kind": {"enum": ["url", "card"]},
        "target": {"type": "string", "description": "the recorded URL (kind url); empty for a card page"},
        "created": {"type": "number"},
        "expires": {"type": "number"},
        "expired": {"type": "boolean"},
        "opens": {
            "type": "array",
            "description": "oldest first; counted when the enterprise's policy.links.count_opens is on",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "number"},
                    "client": {"enum": ["android", "iphone", "wechat", "desktop", "bot", "other"]},
                    "first": {"type": "boolean"},
                },
            },
        },
    },
}


def setup(app: web.Application) -> dict[str, Any]:
    app[miss_limit_key] = MissLimit()
    app.router.add_get("/s/{code}", open_link, name="short_link")
    app.router.add_get("/api/enterprises/{eid}/links/{code}", link_info)
    app.on_startup.append(_limit_on_start)
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "/s/{code}": {
            "get": {
                "summary": "Open a short link of a text: a web link redirects to its target, a card "
                "link shows the card's page (no key: the code is the secret)",
                "operationId": "openShortLink",
                "tags": ["delivery"],
                "parameters": [
                    {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the card's page (a card link)", **html},
                    "302": {"description": "to the link's recorded target (a web link)"},
                    "404": {"description": "unknown or expired: one Chinese page for both", **html},
                    "410": {"description": "an expired card link: its enterprise's page", **html},
                    "429": {"description": "too many unknown codes from this address (Retry-After)", **html},
                },
            }
        },
        "/api/enterprises/{eid}/links/{code}": {
            "get": op(
                "A short link of the enterprise's texts and its opens (another enterprise's code: 404)",
                {"200": doc_json("the link", LINK)},
                404,
                params=("eid", "code"),
            )
        },
    }
