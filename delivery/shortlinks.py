"""Short links in SMS, flash and USSD texts: a code per recipient and target, minted with the
attempt whose text carries it, resolved by the server's `/s/{code}` and counted when opened.

Codes are CODE_LENGTH characters of base62 drawn from `secrets` (about 59.5 bits): no sequence
and no hash of the target, so nothing about one code tells another, and a link names one
person's card (links carry per-person data). Targets are web pages only (renderer/links.py):
`javascript:`, `data:` and the rest are refused when minted, so nothing else is ever redirected
to. A link belongs to one enterprise and expires (its policy's `ttl_days`, default 30).

How a link is written in a text: the public base (`delivery_link_base`) then the code. On an
https base the scheme is left out (`mp.cn/Ab3dE5gH7k`): Chinese SMS apps link a bare domain, as
the card-SMS vendors' own parse links are written (`km2g.cn/PDiWqc`), and the 8 characters
saved are often what keeps a text in one segment. An http base keeps its `http://`.

Opens are queued in memory and written by a flusher many at a time, within FLUSH_DELAY plus one
statement (well under a second); what is queued when the service closes is written then, and a
flush that fails (an outage) keeps its opens for the next. No client address is stored, only a
coarse class of the browser (`client_class`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from infra.outage import log_failure
from renderer.links import WEB_URL

from .rows.links import InsertLink, Open
from .storage import DocumentStore, LinkStore

log = logging.getLogger("mingpian.delivery.links")

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CODE_LENGTH = 10  # 62**10 ≈ 8.4e17: millions of links stay far from a collision
CODE = re.compile(rf"^[0-9A-Za-z]{{{CODE_LENGTH}}}$")
KINDS = ("url", "card")
DAY = 86400.0
CACHE_SIZE = 20_000  # links kept after a hit (a person opening a link twice, a busy campaign)
FLUSH_DELAY = 0.1  # seconds opens gather before a flush
FLUSH_RETRY = 0.5  # seconds before a failed flush is tried again
MAX_PENDING = 1_000_000  # opens held through a long outage before the oldest are given up


class LinkRefused(ValueError):
    """A target that is not a web page (or too long): never minted, never redirected to."""


@dataclass(frozen=True, slots=True)
class ShortLink:
    code: str  # CODE_LENGTH characters of base62 from `secrets`
    enterprise: str
    recipient: str  # E.164 of the person, or "" (a link minted for no one, e.g. a preview)
    delivery: str  # delivery id ("" when none), so opens and taps find the delivery/card
    step: int  # the chain step whose text carried it (-1 when none)
    channel: str  # the channel of that step ("sms", "flash", "ussd", "cardsms", or "")
    kind: str  # "url": redirect to `target`; "card": the H5 card page of the delivery
    target: str  # the recorded URL for kind "url"; "" for kind "card"
    created: float
    expires: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "enterprise": self.enterprise,
            "recipient": self.recipient,
            "delivery": self.delivery,
            "step": self.step,
            "channel": self.channel,
            "kind": self.kind,
            "target": self.target,
            "created": self.created,
            "expires": self.expires,
            "expired": self.expired,
        }


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """An enterprise's `policy.links` (model.py), defaults filled in."""

    shorten: str = "auto"  # auto | always | never
    count_opens: bool = False
    ttl_days: int = 30
    card_page: bool = False

    @property
    def ttl(self) -> float:
        return self.ttl_days * DAY


def policy_of(enterprise: dict[str, Any]) -> LinkPolicy:
    """The enterprise's link policy; `card_page` defaults to on when its chain has `cardsms`."""
    policy = enterprise.get("policy") or {}
    links = policy.get("links") or {}
    card_page = links.get("card_page")
    if card_page is None:
        card_page = "cardsms" in (policy.get("chain") or ())
    return LinkPolicy(
        str(links.get("shorten", "auto")),
        bool(links.get("count_opens", False)),
        int(links.get("ttl_days", 30)),
        bool(card_page),
    )


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def written_base(base: str) -> str:
    """How the public base is written in a text: without `https://` (see the module's text)."""
    return base[len("https://") :] if base.startswith("https://") else base


_CLIENTS = (
    ("bot", re.compile(r"bot|spider|crawl|slurp|curl|wget|python|httpclient|okhttp|go-http|java/", re.I)),
    ("wechat", re.compile(r"MicroMessenger", re.I)),
    ("iphone", re.compile(r"iPhone|iPad|iPod", re.I)),
    ("android", re.compile(r"Android", re.I)),
    ("desktop", re.compile(r"Windows NT|Macintosh|X11|CrOS", re.I)),
)  # fmt: skip


@lru_cache(maxsize=4096)  # a campaign's opens come from a few thousand browsers
def client_class(user_agent: str) -> str:
    """A coarse class of the browser that opened a link: bot, wechat, iphone, android, desktop
    or other (first match in that order: WeChat runs on both phones)."""
    for name, pattern in _CLIENTS:
        if pattern.search(user_agent):
            return name
    return "other"


FirstOpen = Callable[[ShortLink, float], Awaitable[Any]]


class LinksStore(LinkStore, DocumentStore, Protocol):
    """What short links use: their rows, and the enterprises' policies."""


class ShortLinks:
    """Mint, resolve and count short links over the store (one per process: DeliveryService.links)."""

    def __init__(self, store: LinksStore, base: str, cache_size: int = CACHE_SIZE) -> None:
        if not WEB_URL.match(base):
            raise ValueError(f"short link base {base!r} is not an http(s) URL")
        self.store = store
        self.base = base if base.endswith("/") else base + "/"
        self.prefix = written_base(self.base)  # what stands before the code in a text
        self.cache_size = cache_size
        self.on_first: FirstOpen | None = None  # told of each link's first open, once written
        self._cache: OrderedDict[str, ShortLink] = OrderedDict()
        self._pending: list[tuple[Open, ShortLink]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.opens_written = 0
        self.flushes = 0
        self._counting: dict[str, bool] = {}  # enterprise → count_opens, at `_generation`
        self._generation = -1
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(6).hex()  # open ids: unique per process start, no syscall each

    def url(self, code: str) -> str:
        """How the link is written in a text (public base + code; no `https://`)."""
        return self.prefix + code

    @property
    def width(self) -> int:
        """Characters a link takes in a text (every code has the same length)."""
        return len(self.prefix) + CODE_LENGTH

    async def mint(
        self,
        enterprise: str,
        recipient: str,
        delivery: str,
        step: int,
        channel: str,
        kind: str,
        target: str,
        ttl: float,
    ) -> ShortLink:
        """A new link, written through the store: inside the caller's `tx()` it commits with the
        caller's writes (the attempt row), so it is durable before a text carrying it is sent.
        Raises LinkRefused for a target that is not an http(s) URL (or holds control characters)."""
        if kind not in KINDS:
            raise ValueError(f"unknown short link kind {kind!r}")
        if kind == "url" and (not WEB_URL.match(target) or _unsafe(target)):
            raise LinkRefused(f"a short link's target must be an http(s) URL, not {target[:40]!r}")
        if kind == "card":
            target = ""
        now = time.time()
        link = ShortLink(
            new_code(), enterprise, recipient, delivery, step, channel, kind, target, now, now + ttl
        )
        await self.store.add_link(InsertLink(*(getattr(link, f) for f in InsertLink.__slots__)))
        return link

    def cached(self, code: str) -> ShortLink | None:
        """The link of `code` if this process holds it (no await: the redirect's fast path)."""
        return self._cache.get(code)

    def counting(self, enterprise: str) -> bool | None:
        """Whether the enterprise counts opens, if known here for the current configuration."""
        return self._counting.get(enterprise) if self.store.generation == self._generation else None

    async def resolve(self, code: str) -> ShortLink | None:
        """The link of `code`: None when unknown (or not a code at all); an expired one is
        returned (check `.expired`). Hits are cached in this process."""
        hit = self._cache.get(code)
        if hit is not None:
            self._cache.move_to_end(code)
            return hit
        if not CODE.match(code):
            return None
        row = await self.store.link(code)
        if row is None:
            return None
        link = ShortLink(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6], row[7],
                         float(row[8]), float(row[9]))  # fmt: skip
        self._cache[code] = link
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return link

    async def counts_opens(self, enterprise: str) -> bool:
        """Whether the enterprise's policy counts opens (cached until its configuration changes)."""
        generation = self.store.generation
        if generation != self._generation:
            self._counting.clear()
            self._generation = generation
        counting = self._counting.get(enterprise)
        if counting is None:
            ent = await self.store.get("enterprise", "", enterprise) or {}
            counting = self._counting[enterprise] = policy_of(ent).count_opens
        return counting

    def forget(self, code: str) -> None:
        """Drop a cached link (an expired one: it is read from the store again, as a miss is)."""
        self._cache.pop(code, None)

    def opened(self, link: ShortLink, client: str) -> None:
        """Count an open (`client`: client_class of its User-Agent); written within a second by
        the flusher, never by the request."""
        open_id = f"{self._id_prefix}{next(self._ids):x}"
        self._pending.append((Open(open_id, link.code, time.time(), client), link))
        if len(self._pending) > MAX_PENDING:  # an outage longer than memory allows
            del self._pending[: len(self._pending) - MAX_PENDING]
        if self._flusher is None and not self._closed:
            self._flusher = asyncio.get_running_loop().create_task(self._run(), name="short-link-opens")
        self._wake.set()

    async def opens(self, code: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The link's opens, oldest first (those still queued here are written first)."""
        if self._pending:
            await self.flush()
        return await self.store.link_opens(code, limit)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_DELAY)  # let the opens of the next moment join this flush
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: kept, tried again
                log_failure(log, exc, "short links: writing %d opens failed", len(self._pending))
                await asyncio.sleep(FLUSH_RETRY)
                self._wake.set()

    async def flush(self) -> None:
        """Write every queued open now (durable on return); on failure they stay queued."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            written = await self.store.add_opens([o for o, _ in batch])
        except BaseException:
            self._pending[:0] = batch
            raise
        self.flushes += 1
        self.opens_written += len(written)
        if self.on_first is None:
            return
        by_id = {o.id: (o, link) for o, link in batch}
        firsts = [by_id[id_] for id_, first in written if first]
        if firsts:  # together: the funnel's facts share its group commit
            await asyncio.gather(*(self._first(link, o.at) for o, link in firsts))

    async def _first(self, link: ShortLink, at: float) -> None:
        assert self.on_first is not None
        try:
            await self.on_first(link, at)
        except Exception as exc:  # the funnel's fact is its own: the open is written
            log_failure(log, exc, "short link %s: recording its first open failed", link.code)

    async def close(self) -> None:
        """Stop the flusher and write what is queued (the server's shutdown)."""
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _ in range(3):
            try:
                await self.flush()
                return
            except Exception as exc:
                log_failure(log, exc, "short links: writing %d opens at close failed", len(self._pending))
                await asyncio.sleep(FLUSH_RETRY)


def _unsafe(url: str) -> bool:
    """Control characters in a URL (a header split, a text that hides the target)."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in url)
