"""The legacy target: a rendered card → USSD / flash SMS / SMS text that fits the channel exactly.

Layout (docs/legacy.md): 【signature】title, description, then one line per suggestion in
`Message.all_suggestions` order — "回复N 文本" for actions the chatbot answers, "文本：URL/电话"
for links and phone numbers, which a feature phone can use as plain text. Reply key N always
means all_suggestions[N-1], on every channel, so the chatbot resolves a reply without knowing
what fitted on the screen.

Flash SMS and USSD must fit one segment / screen. What gives way, in order: the description is
shortened (cut on a character boundary, with an ellipsis), link/phone lines fall back to their
short "回复N" form, then menu lines are dropped from the end (an opt-out line last). SMS may use
several segments, up to a cap (default 8), with the same shrinking beyond it.

One module past the usual ~500 lines, on purpose: the layout, the shrinking and the fitting
share private types (_Item, _Block, _Layout), and designers' overrides are checked with the same
helpers; split, those would become a public interface nothing else should use. Replies to the
text are parsed in replies.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from . import gsm
from .errors import LimitExceeded, Problem
from .gsm import CHANNELS, Channel, Encoded, Encoding, Segment
from .links import WEB_URL, link_refusal
from .model import Card, Message, Suggestion
from .profiles import CarrierProfile
from .replies import OPT_OUT_KEY

if TYPE_CHECKING:
    from .templates import CardTemplate

__all__ = [
    "CHANNELS",
    "SMS_MAX_SEGMENTS",
    "LegacyText",
    "LinkForm",
    "LinkSlot",
    "ReplyOption",
    "check_override",
    "degrade",
    "degrade_template",
    "override_problems",
]

# Chinese carriers accept long industry SMS of up to a few hundred characters; 8 segments
# (536 UCS-2 units) keeps a degraded carousel readable and the cost bounded.
SMS_MAX_SEGMENTS = 8
CAROUSEL_DESC_UNITS = 30  # "briefly": each carousel card keeps at most this much description
MIN_DESC_UNITS = 6  # a cut description shorter than this (5 characters + …) says nothing
_ELLIPSIS: dict[Encoding, str] = {"UCS-2": "…", "GSM-7": "..."}  # "…" is not in GSM-7
_LINK_KINDS = frozenset({"openUrl", "dial", "composeTextMessage"})
_SPACES = re.compile(r"\s+")
_LINE_DIRTY = re.compile(r"[^\S ]|  |[\ud800-\udfff]")  # anything _line would change
_TRAILING = " \t\n，,、；;：:。"
_WORD_TAIL = re.compile(r"[0-9A-Za-z_.@/:%?&=+-]+$")  # an ASCII token (number, URL) at a cut


LINK_PLACEHOLDER = "0"  # fills a short link's code while the layout is decided (GSM-7, 1 unit)
PAGE_LABEL = "查看名片"  # the card-page line: 查看名片：<short link>


@dataclass(frozen=True, slots=True)
class LinkForm:
    """How short links are written in the text (the renderer knows nothing of who mints them):
    `prefix` (the public base as written, e.g. `mp.cn/`) then `width` code characters. Every
    link of a text has the same length, so the layout and the segments are decided once per
    card with placeholders and each recipient's codes are filled in after (`LegacyText.fill`)."""

    prefix: str
    width: int
    urls: bool = True  # web links of buttons (openUrl, showLocation's fallback) become short links
    card_page: bool = False  # a line linking the card's page (查看名片：…), kept like the title


@dataclass(frozen=True, slots=True)
class LinkSlot:
    """A short link in a degraded text: the reply key of its button ("page": the card-page line),
    the URL it stands for ("" for the page) and where its code starts in the text."""

    key: str
    target: str
    start: int


class ReplyOption(NamedTuple):
    """One numbered reply: what the legacy user sends back and what the chatbot receives.
    (An immutable NamedTuple rather than a dataclass: one is built per button per degrade.)"""

    key: str
    kind: str
    text: str
    postback: str
    value: str | None  # the URL / phone number shown as plain text, if any
    shown: bool  # listed in the degraded text
    line: str | None  # the line as shown

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "text": self.text,
            "postback": self.postback,
            "value": self.value,
            "shown": self.shown,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class LegacyText:
    """A card degraded for one legacy channel, ready for a gateway and for reply resolution."""

    channel: Channel
    template: str
    text: str
    encoding: Encoding
    dcs: int
    units: int
    segments: tuple[Segment, ...]
    reply_map: dict[str, str]
    replies: tuple[ReplyOption, ...]
    dropped: tuple[str, ...] = ()  # reply keys whose lines did not fit
    shortened: tuple[str, ...] = ()  # what else gave way: "description", "card 2", "title", ...
    override: bool = False
    limit: int = 0  # units allowed: one segment / screen, or the SMS cap
    notes: tuple[str, ...] = field(default=())
    links: tuple[LinkSlot, ...] = ()  # the short links in `text`, in text order (placeholders until filled)
    link_width: int = 0  # characters of each link's code

    def fill(self, codes: Sequence[str], reference: int | None = None) -> LegacyText:
        """This text with each short link's code (`codes`, in `links` order) in place of its
        placeholder, encoded again: the same units and segments, since every code has the same
        length in GSM-7-safe characters. Cheap: no layout, one encode."""
        if len(codes) != len(self.links):
            raise ValueError(f"{len(self.links)} short links, {len(codes)} codes")
        parts, pos = [], 0
        for slot, code in zip(self.links, codes, strict=True):
            if len(code) != self.link_width or not code.isascii() or not code.isalnum():
                raise ValueError(f"a short link code must be {self.link_width} ASCII letters and digits")
            parts += [self.text[pos : slot.start], code]
            pos = slot.start + self.link_width
        text = "".join(parts) + self.text[pos:]
        encoded = gsm.encode(text, self.channel, reference)
        by_key = {slot.key: code for slot, code in zip(self.links, codes, strict=True)}
        w = self.link_width
        replies = tuple(
            r._replace(line=r.line[:-w] + by_key[r.key]) if r.key in by_key and r.line else r
            for r in self.replies
        )
        return replace(
            self, text=text, dcs=encoded.dcs, units=encoded.units, segments=encoded.segments, replies=replies
        )

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    @property
    def remaining(self) -> int:
        """Units still free in the last segment / on the USSD screen."""
        last = self.segments[-1]
        return last.capacity - last.units

    def report(self) -> str:
        """The text, then a summary of segments and replies in Chinese (the CLI prints this; the
        same facts with stable English keys are `to_json`)."""
        name = {"ussd": "USSD", "flash": "闪信", "sms": "短信"}[self.channel]
        out = [
            self.text,
            "",
            "-" * 40,
            f"{name} · {self.encoding} · DCS 0x{self.dcs:02X} · {self.units}/{self.limit} 单位 · "
            f"{self.segment_count} 段 · 最后一段还剩 {self.remaining}"
            + (" · 设计师自定义文本" if self.override else ""),
        ]
        for seg in self.segments:
            udh = f"UDH {seg.udh_hex}  " if seg.udh_hex else ""
            octets = len(seg.user_data_hex) // 2
            out.append(f"  第 {seg.seq} 段：{seg.units}/{seg.capacity} 单位  {udh}UD {octets} 字节")
        if self.shortened:
            out.append("已缩短：" + "、".join(_shortened_words(s) for s in self.shortened))
        out.append("回复：")
        for r in self.replies:
            if self.override:
                where = f"列为 {r.line!r}" if r.shown else "自定义文本里没有列出"
            else:
                where = f"显示为 {r.line!r}" if r.shown else "没有显示（放不下）"
            kind = REPLY_KIND_WORDS.get(r.kind, r.kind)
            out.append(f"  {r.key} → {r.postback}  （{kind} {r.text}；{where}）")
        extra = sorted(set(self.reply_map) - {r.key for r in self.replies})
        out.extend(f"  {k} → {self.reply_map[k]}" for k in extra)
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        by_key = {r.key: r for r in self.replies}
        return {
            "channel": self.channel,
            "template": self.template,
            "text": self.text,
            "encoding": self.encoding,
            "dcs": self.dcs,
            "dcsHex": f"{self.dcs:02X}",
            "units": self.units,
            "limit": self.limit,
            "segmentCount": self.segment_count,
            "remaining": self.remaining,
            "segments": [s.to_json() for s in self.segments],
            "replyMap": dict(self.reply_map),
            "replies": [r.to_json() for r in self.replies],
            "dropped": [{"key": k, "text": by_key[k].text} for k in self.dropped if k in by_key],
            "shortened": list(self.shortened),
            "override": self.override,
            "notes": list(self.notes),
        }


# What `report` calls a button's kind and a part that gave way (`shortened` keeps the English).
REPLY_KIND_WORDS = {
    "reply": "回复",
    "openUrl": "打开链接",
    "dial": "拨打电话",
    "showLocation": "查看位置",
    "createCalendarEvent": "加入日历",
    "composeTextMessage": "发短信",
}
_PART_WORDS = {"title": "标题", "signature": "签名", "description": "描述"}


def _shortened_words(part: str) -> str:
    """ "card 2 description" → "第 2 张卡片的描述"; "card 2" → its title; "title" → "标题"."""
    words = part.split()
    if words[:1] == ["card"] and len(words) >= 2:
        what = _PART_WORDS.get(words[2], words[2]) if len(words) > 2 else "标题"
        return f"第 {words[1]} 张卡片的{what}"
    return _PART_WORDS.get(part, part)


# -- building the text ---------------------------------------------------------------------------


def _line(value: str | None) -> str:
    """A one-line field: whitespace runs (newlines included) become one space."""
    if not value:
        return ""
    if _LINE_DIRTY.search(value) is None:
        return value.strip(" ")
    return _SPACES.sub(" ", gsm.clean(value)).strip()


def _block(value: str | None) -> str:
    """A description: lines stripped, blank lines removed, line breaks kept (1 unit each)."""
    if not value:
        return ""
    lines = (_SPACES.sub(" ", ln).strip() for ln in gsm.clean(value).splitlines())
    return "\n".join(ln for ln in lines if ln)


def _is_opt_out(s: Suggestion) -> bool:
    return s.kind == "reply" and "退订" in s.text


@dataclass(slots=True)
class _Item:
    key: str
    suggestion: Suggestion
    text: str
    value: str | None
    short: str
    full: str
    pinned: bool
    # "page": a web link's button left to the card page the text links (its line not written)
    form: Literal["full", "short", "none", "page"] = "full"
    refused: str | None = None  # why its link is not shown (links.py)
    linked: bool = False  # its full line ends with a short link's placeholder

    def shown_line(self) -> str | None:
        return self.full if self.form == "full" else self.short if self.form == "short" else None


def _items(message: Message, links: LinkForm | None = None) -> list[_Item]:
    out = []
    short = LINK_PLACEHOLDER * links.width if links is not None and links.urls else ""
    for n, s in enumerate(message.all_suggestions, 1):
        key = str(n)
        text = _line(s.text)
        value: str | None = None
        refused = None
        if s.kind in ("openUrl", "showLocation"):
            value = _line(s.url) or None
            if value is not None and (refused := link_refusal(s.kind, value)) is not None:
                value = None  # the RCS target refuses it: no plain-text copy either
        elif s.kind in ("dial", "composeTextMessage"):
            value = _line(s.phone) or None
        pinned = _is_opt_out(s)
        brief = f"回{OPT_OUT_KEY}退订" if pinned else f"回复{key} {text}"
        web = value is not None and s.kind in ("openUrl", "showLocation") and WEB_URL.match(value) is not None
        if web and links is not None and links.card_page:
            # the card page the text links shows this button: one link for all of them keeps
            # the text short (a plain SMS of the courier card stays in two segments)
            out.append(_Item(key, s, text, value, brief, brief, pinned, form="page", refused=refused))
            continue
        linked = bool(short) and web
        assert links is not None or not linked
        shown = f"{links.prefix}{short}" if linked and links is not None else value
        full = f"{text}：{shown}" if value else brief
        out.append(_Item(key, s, text, value, brief, full, pinned, refused=refused, linked=linked))
    return out


@dataclass(slots=True)
class _Block:
    """One card's lines (title, description, its buttons) or the chips."""

    title: str
    desc: str
    items: list[_Item]
    title_kept: bool = True
    desc_shown: str = ""


class _Layout:
    def __init__(self, message: Message, items: list[_Item], page_line: str = "") -> None:
        self.page_line = page_line  # the card-page link's line, kept like the title
        sig = _line(message.brand.signature).strip("【】[] ") or _line(message.brand.name)
        self.head_sig = f"【{sig}】"
        self.carousel = message.kind == "carousel"
        self.blocks: list[_Block] = []
        pos = 0
        if self.carousel:
            self.head_title = ""
            for card in message.cards:
                n = len(card.suggestions)
                title, desc = _line(card.title), _block(card.description).split("\n", 1)[0]
                if not title:  # a card without a title is listed by its description
                    title, desc = desc, ""
                self.blocks.append(_Block(title, desc, items[pos : pos + n]))
                pos += n
        else:
            first = message.cards[0] if message.cards else Card()
            self.head_title = _line(first.title)
            pos = len(first.suggestions)
            self.blocks.append(_Block("", _block(first.description), items[:pos]))
        self.blocks.append(_Block("", "", items[pos:]))  # chips
        self.items = items
        self.full_head = (self.head_sig, self.head_title)  # _shrink starts from these each time

    def head(self) -> str:
        return self.head_sig + self.head_title

    def lines(self) -> list[str]:
        return [line for line, _ in self.tagged()]

    def tagged(self) -> list[tuple[str, str | None]]:
        """The lines, each with the reply key ("page": the card-page line) of the short link it
        ends with, if any."""
        out: list[tuple[str, str | None]] = [(self.head(), None)]
        for i, b in enumerate(self.blocks):
            if b.title and b.title_kept:
                out.append((b.title, None))
            if b.desc_shown:
                if not self.carousel and not self.head_title and len(out) == 1:
                    out[0] = (out[0][0] + b.desc_shown, None)  # no title: it follows 【signature】
                else:
                    out.append((b.desc_shown, None))
            if i == 0 and self.page_line:  # after the card's text, before its buttons
                out.append((self.page_line, "page"))
            for it in b.items:
                line = it.shown_line()
                if line is not None:
                    out.append((line, it.key if it.linked and it.form == "full" else None))
        return out

    def slots(self, width: int) -> tuple[LinkSlot, ...]:
        """Where each short link's code stands in text()."""
        out, pos = [], 0
        for line, key in self.tagged():
            if key is not None:
                target = "" if key == "page" else self.items[int(key) - 1].value or ""
                out.append(LinkSlot(key, target, pos + len(line) - width))
            pos += len(line) + 1
        return tuple(out)

    def text(self) -> str:
        return "\n".join(self.lines())


def degrade(
    message: Message,
    channel: Channel,
    profile: CarrierProfile | None = None,
    *,
    max_sms_segments: int = SMS_MAX_SEGMENTS,
    reference: int | None = None,
    links: LinkForm | None = None,
) -> LegacyText:
    """Degrade a rendered card or carousel to one legacy channel (see the module docstring).

    A designer override (`message.legacy_overrides[channel]`) replaces the generated text but
    must fit too: LimitExceeded otherwise. With `links`, web links are written as short links of
    fixed length (placeholders: `LegacyText.links` says where; `fill` puts the codes in) and,
    if asked, a card-page link line is added; a designer override is left as written."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown legacy channel {channel!r}; expected one of {CHANNELS}")
    # `profile` is accepted for symmetry with to_rcs: every carrier shares the 3GPP limits today.
    profile_max = max(1, min(max_sms_segments, gsm.MAX_SEGMENTS))
    override = message.legacy_overrides.get(channel)
    if override:
        items = _items(message)
        return _from_override(message, channel, gsm.clean(override), items, profile_max, reference)
    items = _items(message, links)
    page = ""
    if links is not None and links.card_page:
        page = f"{PAGE_LABEL}：{links.prefix}{LINK_PLACEHOLDER * links.width}"
    layout = _Layout(message, items, page)
    if layout.carousel:
        enc0: Encoding = "GSM-7" if all(gsm.is_gsm7(b.desc) for b in layout.blocks) else "UCS-2"
        for b in layout.blocks:
            b.desc_shown = _brief(b.desc, enc0)
    else:
        for b in layout.blocks:
            b.desc_shown = b.desc
    text = layout.text()
    enc, n = gsm.measure(text)
    fit = _fits_units(n, enc, channel, profile_max)
    if fit is None:  # SMS near the cap: only the real segmentation can tell
        fit = _fits(gsm.encode(text, channel, reference), channel, profile_max)
    shortened: tuple[str, ...] = ()
    budget = _budget(channel, enc, profile_max)
    bmp_only = enc == "UCS-2" and n == len(text)
    if not fit:  # too long: shrink against a budget in the encoding the full text needed
        shortened = _shrink(layout, enc, budget, bmp_only)
        text = layout.text()
    encoded = gsm.encode(text, channel, reference)
    while not _fits(encoded, channel, profile_max) and budget > 0:  # a safety net; see _budget
        budget -= 1
        shortened = _shrink(layout, enc, budget, bmp_only)
        text = layout.text()
        encoded = gsm.encode(text, channel, reference)
    result = _result(message, channel, text, layout, encoded, shortened, profile_max)
    if links is None:
        return result
    slots = layout.slots(links.width)
    return replace(result, links=slots, link_width=links.width) if slots else result


def _fits_units(n: int, enc: Encoding, channel: Channel, max_segments: int) -> bool | None:
    """Whether `n` units fit the channel; None when SMS segment boundaries decide."""
    if channel == "ussd":
        return n <= gsm.USSD_MAX[enc]
    if n <= gsm.SMS_SINGLE[enc]:
        return True
    if channel == "flash" or max_segments == 1:
        return False
    per = gsm.SMS_CONCAT[enc]
    if n <= per * max_segments - (max_segments - 1):
        return True
    return False if n > per * max_segments else None


def _budget(channel: Channel, enc: Encoding, max_segments: int) -> int:
    """Units to shrink to. For concatenated SMS, one unit less per boundary: a segment that
    would end inside an escape or surrogate pair ends one unit early."""
    if channel == "sms" and max_segments > 1:
        return gsm.capacity("sms", enc, max_segments) - (max_segments - 1)
    return gsm.capacity(channel, enc, 1)


def _limit(channel: Channel, enc: Encoding, max_segments: int) -> int:
    """The nominal units allowed (reported to callers)."""
    if channel == "sms" and max_segments > 1:
        return gsm.capacity("sms", enc, max_segments)
    return gsm.capacity(channel, enc, 1)


def _fits(encoded: Encoded, channel: Channel, max_segments: int) -> bool:
    if channel == "ussd":
        return encoded.fits
    if channel == "flash":
        return len(encoded.segments) == 1
    return len(encoded.segments) <= max_segments


def _brief(desc: str, enc: Encoding) -> str:
    if gsm.units(desc, enc) <= CAROUSEL_DESC_UNITS:
        return desc
    return _ellipsize(desc, CAROUSEL_DESC_UNITS, enc)


def _ellipsize(text: str, limit: int, enc: Encoding) -> str:
    """Cut `text` to at most `limit` units including the ellipsis; "" if too little would remain."""
    ell = _ELLIPSIS[enc]
    room = limit - gsm.units(ell, enc)
    if room < 1:
        return ""
    head = gsm.cut(text, room, enc)
    if len(head) < len(text) and text[len(head)].isascii() and text[len(head)].isalnum():
        # never show half a waybill or phone number: back off to before the token
        whole = _WORD_TAIL.sub("", head)
        if whole.strip(_TRAILING):
            head = whole
    head = head.rstrip(_TRAILING)
    return head + ell if head else ""


def _shrink(layout: _Layout, enc: Encoding, budget: int, bmp_only: bool = False) -> tuple[str, ...]:
    """Fit the layout into `budget` units: menu in short form, drop from the end (opt-out last),
    then give back full forms in order, then descriptions with what is left."""

    def u(text: str, enc: Encoding) -> int:
        # every string here is a piece of the full text; when that had no emoji, units = len
        return len(text) if bmp_only else gsm.units(text, enc)

    shortened: list[str] = []
    items = [it for it in layout.items if it.form != "page"]  # a paged button has no line
    layout.head_sig, layout.head_title = layout.full_head
    for it in items:
        it.form = "short"
    for b in layout.blocks:
        b.title_kept = bool(b.title)
        b.desc_shown = ""
    # lines cost: each line's units plus one newline between lines
    head_cost = u(layout.head(), enc) + (u(layout.page_line, enc) + 1 if layout.page_line else 0)
    title_cost = {id(b): u(b.title, enc) + 1 for b in layout.blocks if b.title}
    short_cost = {id(it): u(it.short, enc) + 1 for it in items}
    total = head_cost + sum(title_cost.values()) + sum(short_cost.values())
    if total > budget:
        # droppables in display order; pinned (opt-out) lines go last
        order: list[tuple[str, Any]] = []
        for b in layout.blocks:
            if b.title:
                order.append(("card", b))
            order.extend(("item", it) for it in b.items if not it.pinned and it.form != "page")
        order = [("item", it) for it in items if it.pinned] + order
        while total > budget and order:
            kind, obj = order.pop()
            if kind == "card":
                obj.title_kept = False
                total -= title_cost[id(obj)]
                shortened.append(f"card {layout.blocks.index(obj) + 1}")
            else:
                obj.form = "none"
                total -= short_cost[id(obj)]
    if total > budget:  # the signature and title alone are too long: cut the title
        room = budget - u(layout.head_sig, enc) - (head_cost - u(layout.head(), enc))
        layout.head_title = _ellipsize(layout.head_title, room, enc) if room > 0 else ""
        shortened.append("title")
        if room < 0:  # a (data-driven) signature longer than the screen: cut it too
            layout.head_sig = "【" + _ellipsize(layout.head_sig[1:-1], budget - 2, enc) + "】"
            shortened.append("signature")
        total = head_cost - u(layout.full_head[0] + layout.full_head[1], enc) + u(layout.head(), enc)
    for it in items:  # give back the plain-text URL / phone where it fits, in menu order
        if it.form == "short" and it.full != it.short:
            extra = u(it.full, enc) + 1 - short_cost[id(it)]
            if total + extra <= budget:
                it.form = "full"
                total += extra
    for i, b in enumerate(layout.blocks):  # descriptions with what is left, first card first
        if not b.desc or (layout.carousel and not b.title_kept):
            continue
        attached = not layout.carousel and not layout.head_title
        sep = 0 if attached else 1
        room = budget - total - sep
        want = _brief(b.desc, enc) if layout.carousel else b.desc
        cost = u(want, enc)
        if cost <= room:
            b.desc_shown = want
        else:
            cut = _ellipsize(want, room, enc) if room >= MIN_DESC_UNITS else ""
            if u(cut, enc) < MIN_DESC_UNITS:
                cut = ""
            b.desc_shown = cut
            shortened.append("description" if not layout.carousel else f"card {i + 1} description")
        if b.desc_shown:
            total += u(b.desc_shown, enc) + sep
    return tuple(shortened)


def _replies(items: list[_Item]) -> tuple[ReplyOption, ...]:
    return tuple(
        ReplyOption(
            it.key,
            it.suggestion.kind,
            it.text,
            it.suggestion.postback,
            it.value,
            it.form in ("full", "short"),
            it.shown_line(),
        )
        for it in items
    )


def _reply_map(items: list[_Item]) -> dict[str, str]:
    out = {it.key: it.suggestion.postback for it in items}
    for it in items:
        if it.pinned:
            out.setdefault(OPT_OUT_KEY, it.suggestion.postback)
    return out


def _result(
    message: Message,
    channel: Channel,
    text: str,
    layout: _Layout,
    encoded: Encoded,
    shortened: tuple[str, ...],
    max_segments: int,
) -> LegacyText:
    items = layout.items
    dropped = tuple(it.key for it in items if it.form == "none")
    enc = encoded.encoding
    notes = _link_notes(items)
    if dropped:
        notes.append("did not fit, left out: " + "、".join(f"{k} {items[int(k) - 1].text}" for k in dropped))
    if channel == "sms" and len(encoded.segments) > 1:
        notes.append(f"sent as {len(encoded.segments)} concatenated SMS")
    return LegacyText(
        channel=channel,
        template=message.template,
        text=text,
        encoding=enc,
        dcs=encoded.dcs,
        units=encoded.units,
        segments=encoded.segments,
        reply_map=_reply_map(items),
        replies=_replies(items),
        dropped=dropped,
        shortened=shortened,
        override=False,
        limit=_limit(channel, enc, max_segments),
        notes=tuple(notes),
    )


def _link_notes(items: list[_Item]) -> list[str]:
    notes = [f"link of {it.key} {it.text} left out: {it.refused}" for it in items if it.refused]
    paged = [f"{it.key} {it.text}" for it in items if it.form == "page"]
    if paged:
        notes.append("on the card page only: " + "、".join(paged))
    return notes


def check_override(text: str, channel: Channel, max_sms_segments: int = SMS_MAX_SEGMENTS) -> str | None:
    """Why an override text does not fit its channel, or None when it does."""
    encoded = gsm.encode(gsm.clean(text), channel)
    if _fits(encoded, channel, max_sms_segments):
        return None
    return _too_long(encoded, channel, max_sms_segments)


def _too_long(encoded: Encoded, channel: Channel, max_segments: int) -> str:
    enc, n = encoded.encoding, encoded.units
    unit = " 个 GSM-7 字符" if enc == "GSM-7" else " UCS-2 单位"
    if channel == "ussd":
        limit = gsm.USSD_MAX[enc]
        return f"USSD 文本有 {n}{unit}，一屏 USSD 最多 {limit}{unit}（多了 {n - limit}）"
    if channel == "flash":
        limit = gsm.SMS_SINGLE[enc]
        return f"闪信文本有 {n}{unit}，闪信只能有一段，最多 {limit}{unit}（多了 {n - limit}）"
    return (
        f"短信文本有 {n}{unit}，要分 {len(encoded.segments)} 段；最多发 {max_segments} 段"
        f"（每段 {gsm.SMS_CONCAT[enc]}{unit}）"
    )


def _from_override(
    message: Message,
    channel: Channel,
    text: str,
    items: list[_Item],
    max_segments: int,
    reference: int | None,
) -> LegacyText:
    encoded = gsm.encode(text, channel, reference)
    if not _fits(encoded, channel, max_segments):
        reason = _too_long(encoded, channel, max_segments)
        raise LimitExceeded(
            f"template {message.template!r}: the legacy.{channel} override does not fit: {reason}",
            [Problem(f"legacy.{channel}", reason)],
        )
    for it in items:  # the designer wrote the menu; which keys it lists is not parsed here
        it.form = "full" if it.full in text else "short" if it.short in text else "none"
    notes = ["designer override (manifest legacy." + channel + ")", *_link_notes(items)]
    if channel == "sms" and len(encoded.segments) > 1:
        notes.append(f"sent as {len(encoded.segments)} concatenated SMS")
    return LegacyText(
        channel=channel,
        template=message.template,
        text=text,
        encoding=encoded.encoding,
        dcs=encoded.dcs,
        units=encoded.units,
        segments=encoded.segments,
        reply_map=_reply_map(items),
        replies=_replies(items),
        dropped=(),
        shortened=(),
        override=True,
        limit=_limit(channel, encoded.encoding, max_segments),
        notes=tuple(notes),
    )


def degrade_template(
    template: CardTemplate,
    message: Message,
    channel: Channel,
    profile: CarrierProfile | None = None,
    **kwargs: Any,
) -> LegacyText:
    """degrade(), with an override that does not fit reported at manifest.yaml:line."""
    try:
        return degrade(message, channel, profile, **kwargs)
    except LimitExceeded as exc:
        raise _located(exc, template, channel) from None


def override_problems(
    template: CardTemplate, message: Message, profile: CarrierProfile | None = None
) -> list[LimitExceeded]:
    """Every designer override of `message` that does not fit its channel (for lint)."""
    out = []
    for channel in CHANNELS:
        if channel in message.legacy_overrides:
            try:
                degrade(message, channel, profile)
            except LimitExceeded as exc:
                out.append(_located(exc, template, channel))
    return out


def _located(exc: LimitExceeded, template: CardTemplate, channel: Channel) -> LimitExceeded:
    file = template.files["manifest.yaml"]
    line = template.manifest_line("legacy", channel)
    problems = [Problem(p.path, p.message, file, line) for p in exc.problems]
    return LimitExceeded(f"{file}:{line}: {exc.message}", problems)
