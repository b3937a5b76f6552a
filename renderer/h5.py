"""A rendered card as a small mobile web page (the H5 card page a short link in an SMS opens).

The page is for any phone browser, fast and without scripts: one static stylesheet inline (its
hash is `STYLE_HASH`, for a Content-Security-Policy that allows nothing else), links and
`tel:` dialling that work with scripts off, reply buttons as a plain `<form method="post">`.
The brand colour is an SVG rectangle's `fill` (a presentation attribute, not a style), so one
hash covers every brand.

The renderer knows nothing of the web server: where a button leads, where a form posts and which
pictures may be loaded are the caller's `H5Actions`. Card data is untrusted (designers' templates,
per-person data): the template is autoescaped, and every URL is checked once more here.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .links import OPEN_URL
from .model import Card, Message, Suggestion

HERE = Path(__file__).resolve().parent
CSS = (HERE / "h5_page.css").read_text("utf-8").strip()
STYLE_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() + "'"
DEFAULT_COLOR = "#1F6FEB"
_COLOR = re.compile(r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")
_PHONE_CHARS = re.compile(r"[^0-9+*]")
_RELATIVE = re.compile(r"^/(?!/)[^\s\\]*$")  # a path on the page's own server, never `//host`
_FRAGMENT = re.compile(r"^#[A-Za-z0-9_-]*$")  # a place in the page itself (previews)

_env = Environment(
    loader=FileSystemLoader(HERE),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=False,
    lstrip_blocks=False,
    auto_reload=False,
)
_page = _env.get_template("h5_page.html.j2")

Href = Callable[[int, Suggestion], "str | None"]


def _none(n: int, s: Suggestion) -> str | None:
    return None


def _no_image(url: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class H5Actions:
    """Where one message's buttons lead. `n` is the button's index in `Message.all_suggestions`.

    - `link(n, s)`: the href of an openUrl or showLocation button (None: shown, not a link);
    - `value(n, s)`: what a reply button or quick reply submits as `field` in the form to `form`
      ("" form: no form, reply buttons are shown but do nothing);
    - `ping(n, s)`: a URL the browser pings when a dial or SMS link is followed (a tap counted
      without a redirect); None: no ping;
    - `image(url)`: a picture's URL as the page may load it (None: left out, e.g. a host the
      page's policy does not allow)."""

    link: Href = _none
    form: str = ""
    token: str = ""
    field: str = "tap"
    value: Callable[[int, Suggestion], str] = lambda n, s: str(n)
    ping: Href = _none
    image: Callable[[str], str | None] = _no_image


@dataclass(frozen=True, slots=True)
class Answer:
    """One reply of the chatbot shown under the card: a text, or a card with its own actions."""

    text: str = ""
    message: Message | None = None
    actions: H5Actions = field(default_factory=H5Actions)


def card_page(
    message: Message,
    *,
    actions: H5Actions,
    answers: Sequence[Answer] = (),
    you: str = "",
    notice: str = "",
    footer: str = "",
) -> str:
    """The page of `message`; under it, the button the person tapped (`you`) and the chatbot's
    `answers`; `notice` above the card (e.g. that a tap was received)."""
    brand = message.brand
    return _render(
        title=message.cards[0].title if message.cards and message.cards[0].title else brand.name,
        brand=brand.name,
        color=brand.color,
        card=_view(message, actions),
        answers=[_answer(a) for a in answers],
        you=you,
        notice=notice,
        footer=footer,
    )


def expired_page(name: str, number: str, tel: str, color: str = DEFAULT_COLOR) -> str:
    """The page of an expired card link: who sent it and the number to call, nothing of the card."""
    phone = _PHONE_CHARS.sub("", tel)
    text = "这张名片已过期，内容不再显示。" + (f"如有需要，请致电{name}。" if name else "")
    return _render(
        title="名片已过期",
        brand=name or "来电名片",
        color=color,
        expired={
            "heading": "名片已过期",
            "text": text,
            "number": number,
            "tel": f"tel:{phone}" if phone else "",
        },
    )


def notice_page(heading: str, text: str, color: str = DEFAULT_COLOR) -> str:
    """A page that only says something (the card cannot be shown right now)."""
    return _render(
        title=heading,
        brand="来电名片",
        color=color,
        expired={"heading": heading, "text": text, "number": "", "tel": ""},
    )


def _render(*, color: str, **values: Any) -> str:
    color = color if _COLOR.match(color or "") else DEFAULT_COLOR
    values.setdefault("card", None)
    values.setdefault("answers", [])
    values.setdefault("you", "")
    values.setdefault("notice", "")
    values.setdefault("footer", "")
    values.setdefault("expired", None)
    return _page.render(css=CSS, color=color, tone=_tone(color), **values)


def _tone(color: str) -> str:
    """White text on a dark brand colour, dark text on a light one (WCAG relative luminance)."""
    hexes = color[1:]
    if len(hexes) == 3:
        hexes = "".join(c * 2 for c in hexes)
    r, g, b = (int(hexes[i : i + 2], 16) / 255 for i in (0, 2, 4))

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    return "light" if (1.05 / (lum + 0.05)) >= 4.5 else "dark"


def _answer(a: Answer) -> dict[str, Any]:
    if a.message is None:
        return {"said": a.text}
    return _view(a.message, a.actions)


def _view(message: Message, actions: H5Actions) -> dict[str, Any]:
    n = 0
    cards = []
    total = len(message.cards)
    for i, card in enumerate(message.cards):
        buttons = []
        for s in card.suggestions:
            buttons.append(_button(n, s, actions))
            n += 1
        cards.append(_card(card, buttons, actions, f"{i + 1} / {total}" if total > 1 else ""))
    chips = []
    for s in message.chips:
        chips.append(_button(n, s, actions))
        n += 1
    return {
        "said": "",
        "cards": cards,
        "chips": chips,
        "form": actions.form if _safe_href(actions.form) else "",
        "token": actions.token,
    }


def _card(card: Card, buttons: list[dict[str, Any]], actions: H5Actions, page: str) -> dict[str, Any]:
    image = None
    media = card.media
    if media is not None and media.content_type.startswith("image/"):
        src = actions.image(media.url)
        if src and _safe_href(src):
            image = {"src": src, "alt": media.description or card.title or "", "height": media.height}
    return {
        "title": card.title or "",
        "description": (card.description or "").strip(),
        "image": image,
        "buttons": buttons,
        "page": page,
    }


def _button(n: int, s: Suggestion, actions: H5Actions) -> dict[str, Any]:
    text = s.text
    if s.kind in ("openUrl", "showLocation"):
        href = actions.link(n, s)
        if not (href and _safe_href(href)):
            href = None
            if s.kind == "showLocation" and s.latitude is not None and s.longitude is not None:
                href = f"geo:{float(s.latitude)},{float(s.longitude)}"
        if href:
            return {"tag": "a", "cls": "", "href": href, "ping": None, "text": text}
        return {"tag": "span", "text": text}
    if s.kind in ("dial", "composeTextMessage"):
        phone = _PHONE_CHARS.sub("", s.phone or "")
        if not phone:
            return {"tag": "span", "text": text}
        href = f"tel:{phone}"
        if s.kind == "composeTextMessage":
            href = f"sms:{phone}" + (f"?body={quote(s.message, safe='')}" if s.message else "")
        ping = actions.ping(n, s)
        return {
            "tag": "a",
            "cls": "dial",
            "href": href,
            "ping": ping if ping and _safe_href(ping) else None,
            "text": text,
        }
    if s.kind == "reply" and actions.form:
        return {"tag": "button", "cls": "", "name": actions.field, "value": actions.value(n, s), "text": text}
    if s.kind == "createCalendarEvent":
        when = "至".join(x for x in (_day(s.start), _day(s.end)) if x)
        return {"tag": "span", "text": f"{text}（{when}）" if when else text}
    return {"tag": "span", "text": text}


def _day(rfc3339: str | None) -> str:
    """`2026-12-24T18:00:00+08:00` → `2026-12-24 18:00` (shown, not parsed)."""
    if not rfc3339:
        return ""
    return rfc3339[:16].replace("T", " ")


def _safe_href(href: str) -> bool:
    """A link the page may carry: our own path, or a scheme the card links allow (never
    `javascript:`, `data:`, or a protocol-relative `//host`)."""
    ok = _RELATIVE.match(href) or _FRAGMENT.match(href) or OPEN_URL.match(href)
    return bool(href) and bool(ok) and not _ctl(href)


def _ctl(s: str) -> bool:
    return any(ord(c) < 0x21 or ord(c) == 0x7F for c in s)


__all__ = ["CSS", "STYLE_HASH", "Answer", "H5Actions", "card_page", "expired_page", "notice_page"]
