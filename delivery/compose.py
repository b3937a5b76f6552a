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
from renderer.legacy import LegacyText, degrade
from renderer.mediarefs import media_id, refs, with_urls, without_refs
from renderer.model import Brand, Message

from .library.library import MediaLibrary
from .model import national
from .records import Delivery
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
        self, store: DocumentStore, templates: TemplateStore, library: MediaLibrary | None = None
    ) -> None:
        self.store = store
        self.templates = templates
        self.library = library  # `media:<id>` values → the files' public URLs (if the enterprise owns them)
        self._rendered: dict[str, Message] = {}  # delivery id → its card, while its chain runs
        self._shared: dict[tuple[Any, ...], Message] = {}
        self._legacy: dict[int, dict[Channel, LegacyText]] = {}

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
        else:  # unverified: the bare number, never a brand the operator has not checked
            num = national(d.line)
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

    def degrade(self, msg: Message, channel: Channel) -> LegacyText:
        """Degrade once per shared message and channel (a shared message stays alive in
        `_shared`, so its id is not reused while its entry exists)."""
        texts = self._legacy.get(id(msg))
        if texts is None:
            return degrade(msg, channel)
        if channel not in texts:
            texts[channel] = degrade(msg, channel)
        return texts[channel]


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
