"""Card composition: which card a call shows, and that card rendered for one delivery.

line → enterprise → card for the phase (the line's own, its group's, the enterprise's; ad lines
rotate by weight) → data (card data, the line's staff member, call fields) → render → brand (a
verified number speaks with the enterprise's brand, an unverified one shows the bare number).
Every call on a line shows the same card unless it uses call fields, so a rendered card is
shared by (template version, card, line, staff member, verification, configuration
generation), and so are its degraded texts.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import replace
from typing import Any

from renderer import TemplateStore
from renderer.gsm import Channel
from renderer.legacy import LegacyText, LinkForm, degrade
from renderer.links import WEB_URL
from renderer.mediarefs import media_id, refs, with_urls, without_refs
from renderer.model import Brand, Message

from .library.library import MediaLibrary
from .model import national
from .readable import readable
from .records import Delivery
from .shortlinks import policy_of
from .storage import DocumentStore

SHARED_CARDS = 4096  # rendered cards kept for reuse; the cache is cleared when full


async def choose_card(
    store: DocumentStore, enterprise: str, line: dict[str, Any], phase: str, call_id: str
) -> dict[str, Any] | None:
    cards = [c for c in await store.list("card", enterprise) if c["phase"] == phase]
    for pick in (
        (lambda c: c.get("line") == line["number"]),
        (lambda c: bool(line.get("group")) and c.get("group") == line.get("group")),
        (lambda c: not c.get("line") and not c.get("group")),
    ):
        found = [c for c in cards if pick(c)]
        if found:
            return _weighted(found, call_id) if line.get("ad") or len(found) > 1 else found[0]
    return None


def _weighted(cards: list[dict[str, Any]], call_id: str) -> dict[str, Any]:
    """A card by weight, stable per call id (a retried event picks the same card)."""
    total = sum(int(c.get("weight", 1)) for c in cards)
    if total <= 0:
        return cards[0]
    x = zlib.crc32(call_id.encode()) % total
    for c in cards:
        x -= int(c.get("weight", 1))
        if x < 0:
            return c
    return cards[-1]


class Composer:
    def __init__(
        self,
        store: DocumentStore,
        templates: TemplateStore,
        library: MediaLibrary | None = None,
        links: tuple[str, int] | None = None,
    ) -> None:
        """`links`: how short links are written (the public base as written, the code's length)."""
        self.store = store
        self.templates = templates
        self.library = library  # `media:<id>` values → the files' public URLs (if the enterprise owns them)
        self.links = links
        self._rendered: dict[str, Message] = {}  # delivery id → its card, while its chain runs
        self._shared: dict[tuple[Any, ...], Message] = {}
        self._legacy: dict[int, dict[tuple[Channel, LinkForm | None], LegacyText]] = {}

    def forget(self, delivery: str) -> None:
        """The delivery's chain is over: drop its entry (a shared card stays shared)."""
        self._rendered.pop(delivery, None)

    async def message(self, d: Delivery, enterprise: dict[str, Any]) -> Message:
        """The card of delivery `d` (raises RenderError)."""
        msg = self._rendered.get(d.id)
        if msg is not None:
            return msg
        template = self.templates.get(d.template)
        shared = None
        if not d.data.get("call_fields"):
            shared = (
                id(template),
                template.version,
                d.enterprise,
                d.card,
                d.data.get("version"),  # an experiment's variants are versions of one card
                d.line,
                d.data.get("staff"),
                bool(d.data.get("verified")),
                self.store.generation,
            )
            hit = self._shared.get(shared)
            if hit is not None:
                self._rendered[d.id] = hit
                return hit
        data = await self._data(d, template.schema)
        if self.library is not None:  # photo URLs fetched into the library before: its copies
            data = await self.library.cached(enterprise, data)
        msg = template.render(data)
        if d.data.get("verified"):  # a verified number speaks with the enterprise's brand
            logo = enterprise.get("logo")
            msg.brand = Brand(
                enterprise.get("signature") or msg.brand.signature,
                enterprise.get("brand_name") or enterprise.get("name") or msg.brand.name,
                enterprise.get("color") or msg.brand.color,
                logo if media_id(logo) else msg.brand.logo,  # a library logo of its own
            )
        else:  # unverified: the number as people read it, never a brand the operator has not checked
            num = readable(d.line)
            msg.brand = replace(msg.brand, signature=num, name=num)
        if self.library is not None:  # library files: the enterprise's own become public URLs
            msg = await self.library.published(d.enterprise, msg)
        elif refs(msg):  # no library: any file it names is dropped
            msg = without_refs(with_urls(msg, {}))
        self._rendered[d.id] = msg
        if shared is not None:
            if len(self._shared) >= SHARED_CARDS:
                self._shared.clear()
                self._legacy.clear()
            self._shared[shared] = msg
            self._legacy[id(msg)] = {}
        return msg

    async def _data(self, d: Delivery, schema: dict[str, Any]) -> dict[str, Any]:
        data = _deep_merge({}, d.data["card_data"])
        staff_id = d.data.get("staff")
        if staff_id:  # the line's staff member: only what this template's data has room for
            staff = await self.store.get("staff", d.enterprise, staff_id)
            props = schema.get("properties") or {}
            open_ = schema.get("additionalProperties", True) is not False
            if staff:
                data = _deep_merge(
                    data, {k: v for k, v in (staff.get("data") or {}).items() if open_ or k in props}
                )
        fields = {
            "caller": d.data["caller"],
            "callee": d.data["callee"],
            "line": national(d.line),
            "recipient": national(d.recipient),
            "time": d.data["time"],
        }
        for name, src in d.data.get("call_fields", {}).items():
            data[name] = (
                fields[src]
                if src != "time"
                else time.strftime("%Y-%m-%d %H:%M", time.gmtime(fields["time"] + 8 * 3600))
            )
            if src in ("caller", "callee"):
                data[name] = national(data[name])
        return data

    def degrade(self, msg: Message, channel: Channel, links: LinkForm | None = None) -> LegacyText:
        """Degrade once per shared message, channel and link form (a shared message stays alive
        in `_shared`, so its id is not reused while its entry exists)."""
        texts = self._legacy.get(id(msg))
        if texts is None:
            return degrade(msg, channel, links=links)
        key = (channel, links)
        if key not in texts:
            texts[key] = degrade(msg, channel, links=links)
        return texts[key]

    def text(self, msg: Message, channel: Channel, enterprise: dict[str, Any]) -> LegacyText:
        """The text of a legacy channel under the enterprise's link policy (`policy.links`): web
        links as short links when it says `always`, counts opens, or (`auto`) when that saves an
        SMS segment or keeps more of the card on USSD / flash; on SMS a card-page link line when
        `card_page`. Its `links` are placeholders until the chain fills each recipient's codes;
        a text without any is exactly `degrade`'s, and costs the chain nothing more."""
        if self.links is None:
            return self.degrade(msg, channel)
        policy = policy_of(enterprise)
        page = policy.card_page and channel == "sms"
        urls = policy.shorten != "never" and _has_web_links(msg)
        if not urls and not page:
            return self.degrade(msg, channel)
        prefix, width = self.links
        plain = self.degrade(msg, channel, LinkForm(prefix, width, False, page) if page else None)
        if not urls:
            return plain
        short = self.degrade(msg, channel, LinkForm(prefix, width, True, page))
        if policy.shorten == "always" or policy.count_opens or _better(short, plain):
            return short
        return plain


def _has_web_links(msg: Message) -> bool:
    return any(
        s.kind in ("openUrl", "showLocation") and s.url and WEB_URL.match(s.url) for s in msg.all_suggestions
    )


def _better(short: LegacyText, plain: LegacyText) -> bool:
    """Whether the text with short links is worth them: fewer SMS segments (or, at the cap, fewer
    buttons left out); on USSD and flash fewer buttons left out or parts shortened, or more link
    lines shown with their link rather than as a numbered reply."""
    if len(short.segments) != len(plain.segments):
        return len(short.segments) < len(plain.segments)
    if short.channel == "sms":  # as many segments: only buttons that fit at the cap count
        return len(short.dropped) < len(plain.dropped)

    def kept(t: LegacyText) -> tuple[int, int, int]:
        linked = sum(1 for r in t.replies if r.value and r.line and not r.line.startswith("回"))
        return (-len(t.dropped), -len(t.shortened), linked)

    return kept(short) > kept(plain)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
