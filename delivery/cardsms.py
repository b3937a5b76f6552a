"""Card SMS (卡片短信): a card version registered as a template with the handset vendors, drawn
on the phone from an ordinary SMS that carries the person's parse link.

How one send goes (the `cardsms` step of a chain):
1. The step is skipped, with its reason, when the line is not verified (the template speaks with
   the enterprise's signature), the version has no template yet (it is submitted then), no
   vendor approved it, or the platform says the phone cannot show it (capability, cached per
   template, approving vendors and number for `ttl`). The chain's next step sends plain SMS.
2. The person's parse link is asked for (`resolve-tasks`, one per recipient, with that person's
   dynamic fields), gathered with other sends' into one call per ≤ 100 recipients.
3. One SMS, one segment: 【signature】title link, through the SMSC session the `sms` channel
   uses. Its two message ids are the SMSC's and `aim:<aim_code>`, the render receipt's.
4. The SMSC's receipt says it reached the phone; the vendor's render receipt (a signed
   `shortchain` callback) says the phone drew the card: the attempt and the delivery are
   `displayed` (receipts.py), and only then is it charged for good.

Per card version one document `cardsms_template` (id `<card>#<n>`), kept through the vendors'
callbacks:

    {"card", "version", "tpl_id", "sign", "state": "submitted" | "error", "why", "submitted_at",
     "audit_state", "vendors": {"HuaWei": {"state": "waiting" | "approved" | "refused",
                                            "why", "at"}, ...}}

and one `cardsms_tpl` (no enterprise, id the vendor's `tpl_id`) to find it from a callback.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from infra.outage import log_failure
from renderer import RenderError, TemplateStore
from renderer.model import Message

from .gateways import Handed, Outgoing
from .gateways import smpp_pdu as smpp
from .gateways.cardsms_api import BATCH, Gather, ParseLink, Platform, PlatformError
from .gateways.cardsms_sign import SKEW
from .gateways.cardsms_template import VENDORS, params, template, text
from .gateways.smpp_address import AddressError, Numbering
from .gateways.smpp_pool import SmppPool
from .metering import Counters
from .receipts import RENDERED
from .records import Delivery
from .reviews import version_id
from .storage import DeliveryStore

log = logging.getLogger("mingpian.delivery.cardsms")
TEMPLATE, TPL_INDEX = "cardsms_template", "cardsms_tpl"
REMEMBER = 65536  # chosen templates kept between a step's check and its send
RETRY_AFTER = 300.0  # seconds before sends submit a template whose submission failed again
NONCE_KEEP = 2 * SKEW + 60  # seconds a callback's nonce is remembered (its timestamp is good for SKEW)
NONCES_HERE = 262144  # nonces this process remembers at most (the counters remember them for all)
# A vendor's `factory_info[].state` as this adapter reads it (numbers or words)
_VENDOR_STATE = {"0": "waiting", "1": "approved", "2": "refused", "3": "refused", "reviewing": "waiting",
                 "approved": "approved", "pass": "approved", "enabled": "approved", "refused": "refused",
                 "fail": "refused", "rejected": "refused"}  # fmt: skip
# (outgoing, enterprise) → the H5 page a person lands on when the phone fails to draw the card
CustomUrl = Callable[[Outgoing, str], Awaitable[str]]
# delivery, step, enterprise, when, vendor (the phone maker that drew it, when the callback says)
Displayed = Callable[[str, int, str, float, str], Awaitable[None]]
Publish = Callable[[str, Message], Awaitable[Message]]  # the enterprise's library files as public URLs


def render_id(aim_code: str, aim_url: str) -> str:
    """The message id a render receipt is kept under (the parse link's code)."""
    return f"aim:{aim_code or aim_url}"


def factory_of(body: dict[str, Any]) -> str:
    """Who drew a card SMS, as its `send-status` callback names it: the phone maker (factory) when
    the platform says, else the card-SMS platform itself (the event stream's vendor)."""
    factory = body.get("factory_type") or body.get("terminal_factory") or body.get("factory")
    return f"cardsms:{factory}"[:40] if isinstance(factory, str) and factory else "cardsms"


def vendor_state(value: Any) -> str:
    return _VENDOR_STATE.get(str(value).strip().lower(), "waiting")


class CardSms:
    """The card-SMS platform as the delivery chain and the callbacks see it."""

    def __init__(
        self,
        store: DeliveryStore,
        platform: Platform,
        templates: TemplateStore,
        *,
        ttl: float = 86400.0,
        window: float = 0.05,
        days: int = 3,
        domain: str = "",
        counters: Counters | None = None,
    ) -> None:
        self.store = store
        self.counters = counters  # where a callback's nonce is claimed for every process
        self.platform = platform
        self.templates = templates
        self.ttl = ttl
        self.days = days
        self.domain = domain
        self.checks: Gather[str, str, bool] = Gather(self._check, window)
        self.resolves: Gather[tuple[str, str], dict[str, Any], ParseLink] = Gather(self._resolve, window)
        self._capable: dict[tuple[str, str, str], tuple[bool, float]] = {}
        self._asking: dict[tuple[str, str, str], asyncio.Future[bool]] = {}
        self._chosen: dict[str, dict[str, Any]] = {}  # delivery id → its template doc, check → send
        self._registering: dict[tuple[str, str, int], asyncio.Task[dict[str, Any]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.custom_url: CustomUrl | None = None  # set when short links are there (the H5 page)
        self.displayed: Displayed | None = None  # the funnel's, when there is one
        self.publish: Publish | None = None  # the media library's, so a picture of it is the template's
        self._nonces: dict[str, float] = {}  # nonce → until when (monotonic), oldest first

    async def close(self) -> None:
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.checks.close()
        await self.resolves.close()

    # -- templates -----------------------------------------------------------------------------
    async def template_of(self, enterprise: str, card: str, n: int) -> dict[str, Any] | None:
        return await self.store.get(TEMPLATE, enterprise, version_id(card, n))

    async def register(self, ent: dict[str, Any], card: str, n: int, body: dict[str, Any]) -> dict[str, Any]:
        """Submit version `n` of a card as a template (once: a version registered, or being
        registered in this process, is answered with its document). A submission that failed
        (the platform away, a card that does not render) is tried again, and so is a template
        whose signature is no longer the enterprise's (its brand changed)."""
        doc = await self.template_of(ent["id"], card, n)
        if doc is not None and doc.get("state") != "error" and not _resigned(doc, ent):
            return doc
        key = (ent["id"], card, n)
        task = self._registering.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._register(ent, card, n, body), context=contextvars.Context()
            )
            self._registering[key] = task
            task.add_done_callback(lambda _t: self._registering.pop(key, None))
        return await asyncio.shield(task)

    async def _register(self, ent: dict[str, Any], card: str, n: int, body: dict[str, Any]) -> dict[str, Any]:
        now, sign = time.time(), str(ent.get("signature", ""))
        doc: dict[str, Any] = {"card": card, "version": n, "sign": sign, "submitted_at": now}
        try:
            tpl = self.templates.get(body["template"])
            msg = tpl.render(_merge(dict(tpl.sample or {}), body.get("data") or {}))
            if self.publish is not None:
                msg = await self.publish(ent["id"], msg)
            doc["tpl_id"] = await self.platform.submit_template(
                template(msg, f"{ent['id']}/{version_id(card, n)}", sign)
            )
        except (RenderError, KeyError, PlatformError) as exc:
            doc |= {"state": "error", "why": f"{type(exc).__name__}: {exc}"[:300]}
            log.warning("card-SMS template of %s/%s v%d not submitted: %s", ent["id"], card, n, doc["why"])
        else:
            doc |= {
                "state": "submitted",
                "vendors": {v: {"state": "waiting", "why": "", "at": now} for v in VENDORS},
            }
            await self.store.put(
                TPL_INDEX, "", doc["tpl_id"], {"enterprise": ent["id"], "card": card, "version": n}
            )
        await self.store.put(TEMPLATE, ent["id"], version_id(card, n), doc)
        await self.store.durable()
        return doc

    def register_later(self, ent: dict[str, Any], card: str, n: int, body: dict[str, Any]) -> None:
        """Register in the background (a decision's answer does not wait for the vendor)."""
        t = asyncio.get_running_loop().create_task(
            self._quietly(ent, card, n, body), context=contextvars.Context()
        )
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    async def _quietly(self, ent: dict[str, Any], card: str, n: int, body: dict[str, Any]) -> None:
        try:
            await self.register(ent, card, n, body)
        except Exception as exc:  # an outage is the outage's one line (infra/outage.py)
            log_failure(log, exc, "card-SMS template of %s/%s v%d: registration failed", ent["id"], card, n)

    async def template_status(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The vendors' review of a template (the `template-status` callback): each vendor's state
        as it says now. None when the template is not ours. The same callback twice changes nothing."""
        where = await self.store.get(TPL_INDEX, "", str(body.get("tpl_id", "")))
        if where is None:
            return None
        eid, card, n = where["enterprise"], where["card"], int(where["version"])
        doc = await self.template_of(eid, card, n)
        if doc is None:
            return None
        now, vendors = time.time(), dict(doc.get("vendors") or {})
        factories = body.get("factory_info")
        for f in factories if isinstance(factories, list) else []:
            if not isinstance(f, dict) or f.get("factory_type") not in VENDORS:
                continue
            state = vendor_state(f.get("state"))
            why = str(f.get("reason") or f.get("desc") or f.get("audit_desc") or "")[:300]
            if state == "refused" and not why:
                why = str(body.get("audit_desc") or "")[:300]
            old = vendors.get(f["factory_type"]) or {}
            if old.get("state") != state or old.get("why") != why:
                vendors[f["factory_type"]] = {"state": state, "why": why, "at": now}
        new = {
            **doc,
            "vendors": vendors,
            "audit_state": body.get("audit_state"),
            "tpl_state": body.get("tpl_state"),
        }
        if new != doc:
            await self.store.put(TEMPLATE, eid, version_id(card, n), new)
            await self.store.durable()
        return {"enterprise": eid, **new}

    # -- the chain's step ----------------------------------------------------------------------
    async def explain(self, d: Delivery, ent: dict[str, Any], msg: Message) -> dict[str, Any]:
        """The dry run's account of a cardsms step: why it would be skipped, or the template, the
        vendors that approved it, the person's dynamic fields and the SMS (with a stand-in link).
        Registers nothing, sends nothing (the capability question is asked)."""
        why = await self.skip_reason(d, ent, register=False)
        doc = self.chosen(d.id)
        if why or doc is None:
            return {"skipped": why or "not checked"}
        approved = sorted(v for v, s in (doc.get("vendors") or {}).items() if s.get("state") == "approved")
        link = f"{self.domain or 'km2g.cn'}/xxxxxx"
        title = msg.cards[0].title if msg.cards else ""
        return {
            "template": doc["tpl_id"],
            "approved_by": approved,
            "dync_params": params(msg),
            "text": text(doc["sign"], title or "", link),
        }

    async def skip_reason(self, d: Delivery, ent: dict[str, Any], register: bool = True) -> str:
        """Why this delivery cannot go as card SMS ("" : it can; its template is remembered for
        the send that follows). A version without a template is submitted (`register`)."""
        if not d.data.get("verified"):
            return "the line is not verified: card SMS speaks with the enterprise's signature"
        n = int(d.data.get("version", 1))
        doc = await self.template_of(d.enterprise, d.card, n)
        if doc is None or doc.get("state") == "error" or _resigned(doc, ent):
            body = await self.store.get("card", d.enterprise, d.card)
            # a submission that failed is tried again, at most once a RETRY_AFTER by every send
            due = (
                doc is None
                or _resigned(doc, ent)
                or time.time() - float(doc.get("submitted_at") or 0) > RETRY_AFTER
            )
            if register and due and body is not None and int(body.get("version", 1)) == n:
                self.register_later(ent, d.card, n, body)
            if doc is not None and _resigned(doc, ent):
                return "the enterprise's signature changed: the card-SMS template was submitted again"
            if doc is not None:
                return f"the card-SMS template could not be submitted: {doc.get('why', '')}"[:300]
            return "the card-SMS template was not registered yet: submitted to the vendors now"
        approved = sorted(v for v, s in (doc.get("vendors") or {}).items() if s.get("state") == "approved")
        if not approved:
            return "no vendor approved the card-SMS template yet"
        try:
            capable = await self.capable(doc["tpl_id"], ",".join(approved), d.recipient)
        except PlatformError as exc:
            return f"the card-SMS platform did not answer: {exc}"[:300]
        if not capable:
            return "the phone cannot show card SMS"
        self._chosen[d.id] = {**doc, "enterprise": d.enterprise}
        while len(self._chosen) > REMEMBER:
            del self._chosen[next(iter(self._chosen))]
        return ""

    def chosen(self, delivery: str) -> dict[str, Any] | None:
        """The template the step's check found for this delivery (once: the send takes it)."""
        return self._chosen.pop(delivery, None)

    async def capable(self, tpl_id: str, approved: str, number: str) -> bool:
        """Whether `number`'s phone can draw the template, cached per (template, vendors that
        approved it, number) for `ttl`: a vendor's change of mind asks afresh. Questions for the
        same number at once share one answer; different numbers share one platform call."""
        key = (tpl_id, approved, number)
        hit = self._capable.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(self.checks.ask(tpl_id, number))
            self._asking[key] = asking
            asking.add_done_callback(lambda _f: self._asking.pop(key, None))
        yes = await asyncio.shield(asking)
        self._capable[key] = (yes, time.monotonic() + self.ttl)
        if len(self._capable) > 4 * REMEMBER:
            self._capable = {k: v for k, v in self._capable.items() if v[1] > now}
        return yes

    async def _check(self, tpl_id: str, numbers: list[str]) -> list[bool]:
        unique = list(dict.fromkeys(numbers))
        answers: dict[str, bool] = {}
        for i in range(0, len(unique), BATCH):
            answers |= await self.platform.check(tpl_id, unique[i : i + BATCH])
        return [answers.get(n, False) for n in numbers]

    async def _resolve(self, key: tuple[str, str], items: list[dict[str, Any]]) -> list[ParseLink]:
        tpl_id, sign = key
        links = await self.platform.resolve(tpl_id, sign, self.days, self.domain, items)
        out = []
        for item in items:
            link = links.get(item["cust_flag"])
            if link is None:
                raise PlatformError(f"no parse link for {item['cust_flag']}")
            out.append(link)
        return out

    # -- callbacks ----------------------------------------------------------------------------
    async def fresh_nonce(self, nonce: str) -> bool:
        """True the first time a callback's nonce is seen (within NONCE_KEEP, past which its
        timestamp is refused anyway): remembered here, and claimed in the counters so another
        process refuses it too (Redis; the SQLite counters serve one process, whose memory this is)."""
        now = time.monotonic()
        while self._nonces and (len(self._nonces) > NONCES_HERE or next(iter(self._nonces.values())) < now):
            del self._nonces[next(iter(self._nonces))]
        if nonce in self._nonces:
            return False
        self._nonces[nonce] = now + NONCE_KEEP
        if self.counters is not None:
            key = f"cardsms-nonce:{nonce}"
            if await self.counters.claim(key, NONCE_KEEP) != "new":
                return False
            self.counters.confirm(key, NONCE_KEEP)
        return True

    # -- the render receipt --------------------------------------------------------------------
    async def rendered(
        self, body: dict[str, Any], accept: Callable[[str, str, str], Awaitable[None]]
    ) -> bool:
        """A `send-status` callback: a successful parse (`callback_type` shortchain) is the render
        receipt of its attempt (`accept(message id, stat, vendor)`, receipts.py). The `sms` results
        are the platform's own sends' (ours go through our SMSC): nothing to do. True when applied."""
        if body.get("callback_type") != "shortchain" or str(body.get("status", "0")).lower() not in (
            "0", "success", "succeeded", "true",
        ):  # fmt: skip
            return False
        mid = render_id(str(body.get("aim_code") or ""), str(body.get("aim_url") or ""))
        if mid == "aim:":
            return False
        vendor = factory_of(body)
        await accept(mid, RENDERED, vendor)
        did, _, step = str(body.get("cust_flag", "")).rpartition("#")
        if self.displayed is not None and did and step.isdigit():
            where = await self.store.get(TPL_INDEX, "", str(body.get("tpl_id", "")))  # cached
            if where is not None:
                await self.displayed(did, int(step), where["enterprise"], time.time(), vendor)
        return True


class CardSmsChannel:
    """The `cardsms` channel: the parse link, then one SMS through the account's SMPP sessions."""

    name = "cardsms"

    def __init__(self, cardsms: CardSms, pool: SmppPool, numbering: Numbering) -> None:
        self.cardsms = cardsms
        self.pool = pool
        self.numbering = numbering

    async def ready(self, timeout: float) -> bool:
        return await self.pool.wait_bound(timeout)

    async def send(self, out: Outgoing) -> Handed:
        doc = self.cardsms.chosen(out.delivery)
        if doc is None:  # checked in another process's life: look again on the next step
            return Handed(False, detail="card-SMS template not checked for this send", skipped=True)
        end = time.monotonic() + self.pool.wait
        if "deadline" in out.extra:
            end = min(end, time.monotonic() + float(out.extra["deadline"]) - time.time())
        item: dict[str, Any] = {
            "cust_flag": f"{out.delivery}#{out.extra.get('step', 0)}",
            "mobile": out.destination[3:] if out.destination.startswith("+86") else out.destination,
            "dync_params": params(out.message),
        }
        if self.cardsms.custom_url is not None:
            url = await self.cardsms.custom_url(out, doc["enterprise"])
            if url:
                item["custom_url"] = url
        try:
            link = await self.cardsms.resolves.ask((doc["tpl_id"], doc["sign"]), item)
        except PlatformError as exc:
            return Handed(False, detail=f"parse link: {exc}"[:300], retryable=True)
        title = out.message.cards[0].title if out.message.cards else ""
        body = text(doc["sign"], title or "", link.aim_url.removeprefix("https://").removeprefix("http://"))
        try:
            src = self.numbering.source(out.extra.get("sender", out.source))
            dst = self.numbering.address(out.destination)
        except AddressError as exc:
            return Handed(False, detail=str(exc))
        sm = smpp.ShortMessage(
            src.digits, dst.digits, body.encode("utf-16-be", "surrogatepass"), 0x08, registered_delivery=1,
            source_ton=src.ton, source_npi=src.npi, dest_ton=dst.ton, dest_npi=dst.npi,
        )  # fmt: skip
        res = await self.pool.submit(sm, end)
        if not res.ok:
            return Handed(False, detail=res.detail, retryable=res.status in smpp.RETRYABLE)
        return Handed(True, (res.message_id, render_id(link.aim_code, link.aim_url)))


def _resigned(doc: dict[str, Any], ent: dict[str, Any]) -> bool:
    """The template speaks with a signature that is no longer the enterprise's."""
    return doc.get("state") != "error" and doc.get("sign") != str(ent.get("signature", ""))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
