"""The H5 card page of a delivery, its buttons and its expired page (the server composes them:
delivery knows nothing of the web, the renderer nothing of either).

A page is the delivery's card exactly as its chain composes it (`Composer.message`), rendered by
renderer/h5.py once per delivery and card version and kept (`PAGES` entries) with placeholders for
what differs per link (its code, the form's token), so a cached page costs a dict lookup and two
string replacements. A tap on a web button goes through `/s/{code}/tap/{n}`: counted like a
numbered SMS reply or a 5G postback, then redirected to the URL the card itself holds — never one
from the request. A reply button posts the form to `/s/{code}/reply`: counted the same way, then
the enterprise's chatbot takes the tap as a 5G tap of the same person (`tel:+86…`, one
conversation whichever way they tap) and its answer is shown on the page, never sent to the phone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from chatbot.errors import Busy
from chatbot.events import InboundEvent
from chatbot.runtime import ChatbotRuntime
from chatbot.turns import Outbound
from delivery.readable import readable
from delivery.records import Delivery
from delivery.service import DeliveryService
from delivery.shortlinks import ShortLink, client_class
from infra.outage import log_failure
from renderer import RenderError
from renderer.h5 import STYLE_HASH, Answer, H5Actions, card_page, expired_page, notice_page
from renderer.links import OPEN_URL
from renderer.model import Message, Suggestion

from ..api.delivery.links import miss_limit_key
from ..clientaddr import client_address
from ..errors import ApiError

log = logging.getLogger("mingpian.h5")

PAGES = 10_000  # deliveries whose page is kept (their links opened lately); as many rendered pages
MAX_FIELD = 2048  # characters of a form field taken
NOT_SHOWN = "名片暂时无法显示，请稍后再试。"


class Link(Protocol):
    """What a page needs of a short link (delivery/shortlinks.py ShortLink)."""

    code: str
    enterprise: str
    recipient: str
    delivery: str
    step: int
    channel: str
    kind: str

    @property
    def expired(self) -> bool: ...


@dataclass(slots=True)
class _Page:
    delivery: Delivery
    enterprise: dict[str, Any]
    message: Message
    html: bytes  # UTF-8, with CODE and TOKEN placeholders; one object for a shared card
    stamp: tuple[str, int]  # (template version, store generation) it was rendered under


class H5Pages:
    """One per server process: the page cache and the handlers of the card page's routes."""

    def __init__(
        self,
        service: DeliveryService,
        runtime: ChatbotRuntime | None,
        media_base: str,
        frame_ancestors: str = "'self'",
    ) -> None:
        self.service = service
        self.runtime = runtime
        # Pictures only from our own media host: the page's policy allows nothing else.
        self.media_prefix = media_base.rstrip("/") + "/media/"
        parts = urlsplit(media_base)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
        self.csp = "; ".join(
            [
                "default-src 'none'",
                f"style-src {STYLE_HASH}",
                f"img-src {origin or chr(39) + 'none' + chr(39)}",
                "connect-src 'self'",  # <a ping> of dial links
                "form-action 'self'",
                "base-uri 'none'",
                f"frame-ancestors {frame_ancestors}",
            ]
        )
        # Unguessable per process, so no card data can spell them.
        self._code = "C" + secrets.token_hex(10)
        self._token = "T" + secrets.token_hex(10)
        self._code_b, self._token_b = self._code.encode(), self._token.encode()
        self._pages: OrderedDict[str, _Page] = OrderedDict()
        self._rendered: dict[int, tuple[Message, bytes]] = {}  # id(message) → its page
        self.hits = 0
        self.renders = 0

    # -- pieces ------------------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": self.csp,
            "Cache-Control": "private, no-store",  # every page is one person's card
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "SAMEORIGIN",  # for browsers that predate frame-ancestors
        }

    def image(self, url: str) -> str | None:
        return url if url.startswith(self.media_prefix) else None

    def token(self, link: Link) -> str:
        """The reply form's token of a link, the same in every process: a form on another site
        cannot carry it without having read the page. (No secret key: whoever holds the code can
        read the page, and with it the token; the code is the secret, as for the page itself.)"""
        key = hashlib.sha256(f"mingpian-h5-form\x1f{link.delivery}\x1f{link.recipient}".encode()).digest()
        return hmac.new(key, link.code.encode(), hashlib.sha256).hexdigest()[:32]

    def _actions(self, code: str, token: str) -> H5Actions:
        base = f"/s/{code}"
        return H5Actions(
            link=lambda n, s: f"{base}/tap/{n}" if s.url else None,
            form=f"{base}/reply#answer",
            token=token,
            ping=lambda n, s: f"{base}/tap/{n}",
            image=self.image,
        )

    def _answer_actions(self, code: str, token: str) -> H5Actions:
        """The chatbot's reply cards: their links lead straight to their URLs (not the delivery's
        buttons: nothing to count), their reply buttons post the postback."""
        return H5Actions(
            link=lambda n, s: s.url if s.url and OPEN_URL.match(s.url) else None,
            form=f"/s/{code}/reply#answer",
            token=token,
            field="postback",
            value=lambda n, s: f"{s.postback}\n{s.text}",
            image=self.image,
        )

    async def _page(self, link: Link) -> _Page | None:
        """The delivery's composed card and its page, cached; None when the delivery is gone.
        Raises RenderError when its card no longer renders."""
        svc = self.service
        hit = self._pages.get(link.delivery)
        if hit is not None:
            if hit.stamp == (svc.composer.templates.get(hit.delivery.template).version, svc.store.generation):
                self._pages.move_to_end(link.delivery)
                self.hits += 1
                return hit
            del self._pages[link.delivery]
        d = await svc.store.delivery(link.delivery)
        if d is None:
            return None
        ent = await svc.store.get("enterprise", "", d.enterprise) or {}
        stamp = (svc.composer.templates.get(d.template).version, svc.store.generation)
        try:
            msg = await svc.composer.message(d, ent)
        finally:
            svc.composer.forget(d.id)  # a chain still running composes it again from the shared card
        shared = self._rendered.get(id(msg))
        if shared is not None and shared[0] is msg:  # a card many deliveries share: one page
            html = shared[1]
        else:
            html = card_page(msg, actions=self._actions(self._code, self._token)).encode()
            self.renders += 1
            if len(self._rendered) >= PAGES:
                self._rendered.clear()
            self._rendered[id(msg)] = (msg, html)  # holding msg: its id is not reused meanwhile
        page = _Page(d, ent, msg, html, stamp)
        self._pages[link.delivery] = page
        if len(self._pages) > PAGES:
            self._pages.popitem(last=False)
        return page

    def _personal(self, html: bytes, link: Link) -> bytes:
        return html.replace(self._code_b, link.code.encode()).replace(
            self._token_b, self.token(link).encode()
        )

    def _html(self, html: str | bytes, status: int = 200) -> web.Response:
        return web.Response(
            body=html.encode() if isinstance(html, str) else html,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=self.headers(),
        )

    # -- the page ----------------------------------------------------------------------------
    async def page(self, request: web.Request, link: Link) -> web.StreamResponse:
        """GET /s/{code} of a kind-"card" link (the short links' route calls it): the card."""
        if link.expired:
            return await self.expired(request, link)
        try:
            page = await self._page(link)
        except RenderError as exc:
            log.error("card page of delivery %s: its card does not render: %s", link.delivery, exc)
            return self._unavailable()
        if page is None:
            raise web.HTTPNotFound()
        self._opened(request, link)
        await self._displayed(link)
        return self._html(self._personal(page.html, link))

    def _opened(self, request: web.Request, link: Link) -> None:
        links = getattr(self.service, "links", None)
        if links is not None and isinstance(link, ShortLink):
            links.opened(link, client_class(request.headers.get("User-Agent", "")))

    async def _displayed(self, link: Link) -> None:
        funnel = getattr(self.service, "funnel", None)
        if funnel is None or not link.delivery:
            return
        try:
            await funnel.displayed(
                link.delivery, link.step, link.channel, link.enterprise, time.time(), how="h5"
            )
        except Exception as exc:  # the funnel's fact is its own: the page is shown anyway
            log_failure(log, exc, "card page of delivery %s: recording it displayed failed", link.delivery)

    def _unavailable(self) -> web.Response:
        resp = self._html(notice_page("名片暂时无法显示", NOT_SHOWN), status=503)
        resp.headers["Retry-After"] = "60"
        return resp

    async def expired(self, request: web.Request, link: Link) -> web.StreamResponse:
        """An expired card link: who sent it and the number that called, nothing of the card
        (status 410). An unverified line shows its number only, as its card did."""
        d = await self.service.store.delivery(link.delivery) if link.delivery else None
        name, number, color = "", "", "#1F6FEB"
        if d is not None:
            number = d.line
            if d.data.get("verified"):
                ent = await self.service.store.get("enterprise", "", d.enterprise) or {}
                name = ent.get("brand_name") or ent.get("name") or ""
                color = ent.get("color") or color
        return self._html(expired_page(name, readable(number) if number else "", number, color), status=410)

    # -- buttons -----------------------------------------------------------------------------
    async def _link(self, request: web.Request) -> ShortLink:
        """The card link of the path's code. Misses count against the client's address as on
        `/s/{code}` (the same limit), so the buttons' routes are no way around it."""
        limit = request.app.get(miss_limit_key)
        address, now = client_address(request), time.time()
        wait = limit.refused(address, now) if limit is not None else 0.0
        if not wait:
            link = await self.service.links.resolve(request.match_info["code"])
            if link is not None and link.kind == "card" and not link.expired:
                return link
            # a miss (the expired page is one too): past the allowance it is refused like /s/{code}
            wait = await limit.missed(address, now) if limit is not None else 0.0
            if not wait:
                if link is None or link.kind != "card":
                    raise web.HTTPNotFound()
                return link
        raise ApiError(
            429,
            "too_many_requests",
            "请求过于频繁，请稍后再试",
            headers={"Retry-After": str(int(wait) + 1)},
        )

    async def tap(self, request: web.Request) -> web.StreamResponse:
        """GET /s/{code}/tap/{n}: a link button (openUrl, showLocation) → counted, then 302 to
        the URL its card holds (a HEAD or a crawler's GET is not counted). POST (a dial link's
        ping): counted, 204."""
        link = await self._link(request)
        if link.expired:
            return await self.expired(request, link)
        button, page = await self._button(link, request.match_info["n"])
        if request.method == "POST":
            if button.kind in ("dial", "composeTextMessage"):
                await self._count(page.delivery, button)
            return web.Response(status=204, headers=self.headers())
        url = button.url or ""
        if button.kind not in ("openUrl", "showLocation") or not OPEN_URL.match(url) or _ctl(url):
            raise ApiError(404, "not_found", "这个按钮不是链接", path="n")
        if request.method == "GET" and client_class(request.headers.get("User-Agent", "")) != "bot":
            await self._count(page.delivery, button)  # not a link checker's HEAD, nor a crawler
        raise web.HTTPFound(url, headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    async def _button(self, link: ShortLink, raw: str) -> tuple[Suggestion, _Page]:
        try:
            page = await self._page(link)
        except RenderError:
            raise ApiError(404, "not_found", "这张名片暂时无法显示", path="code") from None
        if page is None:
            raise web.HTTPNotFound()
        buttons = page.message.all_suggestions
        if not raw.isdigit() or not 0 <= int(raw) < len(buttons):
            raise ApiError(404, "not_found", f"名片上没有第 {raw[:8]} 个按钮", path="n")
        return buttons[int(raw)], page

    async def _count(self, d: Delivery, button: Suggestion) -> None:
        await self.service.replies.count(d, button, "h5")
        await self.service.store.durable()

    async def reply(self, request: web.Request) -> web.StreamResponse:
        """POST /s/{code}/reply (the page's form): a reply button of the card (`tap`: its index)
        or of the chatbot's answer (`postback`) → counted (the card's), the chatbot's turn, and
        the page again with the answer under the card. Refused without the link's token."""
        link = await self._link(request)
        if link.expired:
            return await self.expired(request, link)
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.host:
            raise ApiError(403, "csrf_failed", "请从名片页面提交", path="token")
        try:
            form = await request.post()
        except ValueError:  # a body that is no form
            raise ApiError(400, "invalid_field", "请从名片页面提交表单", path="token") from None
        token = str(form.get("token", ""))
        if not token or not hmac.compare_digest(token, self.token(link)):
            raise ApiError(
                403, "csrf_failed", "表单缺少有效的校验码（token），请重新打开名片页面", path="token"
            )
        try:
            page = await self._page(link)
        except RenderError:
            return self._unavailable()
        if page is None:
            raise web.HTTPNotFound()
        if "tap" in form:
            button, _ = await self._button(link, str(form["tap"])[:8])
            if button.kind != "reply":
                raise ApiError(400, "invalid_field", "这个按钮不是回复按钮", path="tap")
            await self._count(page.delivery, button)
            postback, you = button.postback, button.text
        elif "postback" in form:
            # "postback\ntext"; a browser sends the line break of a form value as CRLF
            postback, _, you = str(form["postback"])[:MAX_FIELD].replace("\r\n", "\n").partition("\n")
            if not postback:
                raise ApiError(400, "empty_message", "回复内容为空", path="postback")
        else:
            raise ApiError(400, "empty_message", "请点选一个按钮", path="tap")
        answers, notice = await self._ask(link, page, postback, you or postback)
        html = card_page(
            page.message,
            actions=self._actions(link.code, self.token(link)),
            answers=answers,
            you=you or postback,
            notice=notice,
        )
        return self._html(html)

    async def _ask(self, link: Link, page: _Page, postback: str, text: str) -> tuple[list[Answer], str]:
        """The chatbot's answer to the tap, as a 5G tap of the same person would get it."""
        rt = self.runtime
        bot = rt.bot_for(page.enterprise.get("chatbot") or "") if rt is not None else None
        if rt is None or bot is None:
            return [], "已收到您的选择。"
        flow = rt.flows.get(bot)
        event = InboundEvent(
            dialect="csp",
            message_id=f"h5-{uuid.uuid4()}",
            user=user_of(link),
            chatbot=(flow.chatbot if flow is not None else "") or bot,
            kind="postback",
            postback=postback,
            display_text=text,
        )
        try:
            outs = await rt.answer(bot, event)
        except Busy:
            raise ApiError(503, "busy", "请稍后再试", headers={"Retry-After": "1"}) from None
        actions = self._answer_actions(link.code, self.token(link))
        return [_answer(o, actions) for o in outs], ""


def user_of(link: Link) -> str:
    """The chatbot's user of a page: the recipient as a CT/CU tap names them (`tel:+86…`), so a
    5G tap and a web tap of one person are one conversation; a link minted for no one (a
    preview) talks as itself."""
    return f"tel:{link.recipient}" if link.recipient else f"h5:{link.code}"


def _answer(o: Outbound, actions: H5Actions) -> Answer:
    if o.message is not None:
        return Answer(message=o.message, actions=actions)
    texts = [m.get("contentText", "") for m in o.body.get("messageList", []) if isinstance(m, dict)]
    return Answer(text="\n".join(t for t in texts if isinstance(t, str)))


def _ctl(s: str) -> bool:
    return any(ord(c) < 0x21 or ord(c) == 0x7F for c in s)
