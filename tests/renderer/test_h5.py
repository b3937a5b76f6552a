"""The H5 card page (renderer/h5.py): hostile card data stays text, only safe links are links,
every shipped template's page is small and loads nothing from elsewhere, a carousel shows all
its cards, and the inline stylesheet is exactly the one its hash names."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from renderer import TemplateStore
from renderer.h5 import CSS, STYLE_HASH, Answer, H5Actions, card_page, expired_page
from renderer.model import Brand, Card, Media, Message, Suggestion

TEMPLATES = Path(__file__).resolve().parents[2] / "card_templates"
EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;{{7*7}}'
LIMIT = 60 * 1024


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


def actions(**kw: object) -> H5Actions:
    base = {
        "link": lambda n, s: f"/s/CODE/tap/{n}",
        "form": "/s/CODE/reply",
        "token": "TOKEN",
        "ping": lambda n, s: f"/s/CODE/tap/{n}",
    }
    return H5Actions(**{**base, **kw})  # type: ignore[arg-type]


def hostile_message() -> Message:
    buttons = (
        Suggestion("openUrl", EVIL, EVIL, url="javascript:alert(3)"),
        Suggestion("dial", EVIL, "p", phone='+86 138"><script>0013800</script>'),
        Suggestion("reply", EVIL, EVIL),
        Suggestion(
            "showLocation", EVIL, "p", url="data:text/html,<script>alert(4)</script>", latitude=1, longitude=2
        ),
        Suggestion("composeTextMessage", EVIL, "p", phone="10086", message=EVIL),
        Suggestion("createCalendarEvent", EVIL, "p", start="2026-12-24T18:00:00+08:00", end=EVIL),
    )
    card = Card(
        EVIL, EVIL + "\n第二行", Media("javascript:alert(5)", "image/jpeg", description=EVIL), buttons
    )
    return Message(
        "card",
        (card,),
        Brand(EVIL, EVIL, color='red;background:url(//evil.example/x)"', logo=EVIL),
        "t",
        "hang-up",
        chips=(Suggestion("reply", EVIL, EVIL),),
    )


def test_hostile_values_stay_text() -> None:
    # the caller's links are hostile too: only safe ones become links
    html = card_page(
        hostile_message(),
        actions=actions(link=lambda n, s: s.url, image=lambda url: url),
        answers=[Answer(text=EVIL), Answer(message=hostile_message(), actions=actions(form="javascript:x"))],
        you=EVIL,
        notice=EVIL,
    )
    tags = parse(html)
    names = [t for t, _ in tags.tags]
    assert "script" not in names and "img" not in names and "iframe" not in names
    for tag, attrs in tags.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src", "action", "ping") and value:
                assert re.match(r"^(/s/CODE/|tel:|sms:|geo:|https?:)", value), (tag, name, value)
    assert "javascript:" not in html and "data:text" not in html and "evil.example" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp;amp;{{7*7}}" in html
    hrefs = [a.get("href") for t, a in tags.tags if t == "a"]
    assert "tel:+861380013800" in hrefs  # the dial number keeps its digits only
    assert "geo:1.0,2.0" in hrefs  # showLocation without a safe fallback: the point itself
    assert any(h and h.startswith("sms:10086?body=%22%3E%3Cscript") for h in hrefs)
    assert 'fill="#1F6FEB"' in html  # a colour that is no colour: the default
    forms = [a for t, a in tags.tags if t == "form"]
    assert [f["action"] for f in forms] == ["/s/CODE/reply"]  # the answer's bad form is dropped


def test_buttons_and_form() -> None:
    store = TemplateStore(TEMPLATES)
    msg = store.get("courier-hangup").render(
        json.loads((TEMPLATES / "courier-hangup" / "sample.json").read_text())
    )
    html = card_page(msg, actions=actions())
    tags = parse(html)
    links = {a["href"]: a for t, a in tags.tags if t == "a"}
    assert "/s/CODE/tap/0" in links and links["tel:13800138000"]["ping"] == "/s/CODE/tap/1"
    buttons = [(a["name"], a["value"], a["type"]) for t, a in tags.tags if t == "button"]
    assert buttons == [("tap", "2", "submit"), ("tap", "3", "submit")]
    token = [a for t, a in tags.tags if t == "input" and a.get("name") == "token"]
    assert token and token[0]["value"] == "TOKEN" and token[0]["type"] == "hidden"
    assert '<html lang="zh-CN">' in html and 'name="viewport"' in html


def test_style_hash_and_no_outside_references() -> None:
    store = TemplateStore(TEMPLATES)
    digest = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    assert f"'sha256-{digest}'" == STYLE_HASH
    for name in store.names():
        sample = json.loads((TEMPLATES / name / "sample.json").read_text("utf-8"))
        msg = store.get(name).render(sample)
        html = card_page(msg, actions=actions(image=lambda url: None))
        size = len(html.encode())
        assert size < LIMIT, (name, size)
        tags = parse(html)
        assert tags.style == CSS, name  # exactly the hashed text, so the page's CSP admits it
        assert [t for t, a in tags.tags if t == "style"] == ["style"]
        for tag, attrs in tags.tags:
            assert tag not in ("script", "link", "iframe", "object", "embed", "base"), (name, tag)
            assert "style" not in attrs, (name, tag)  # inline styles would need unsafe-inline
            src = attrs.get("src") or ""
            assert not src, (name, tag, src)  # pictures only when the caller allows them
        assert "@import" not in CSS and "url(" not in CSS and "@font-face" not in CSS


@pytest.mark.parametrize("name", ["ad-carousel"])
def test_carousel_shows_every_card(name: str) -> None:
    store = TemplateStore(TEMPLATES)
    sample = json.loads((TEMPLATES / name / "sample.json").read_text("utf-8"))
    msg = store.get(name).render(sample)
    assert msg.kind == "carousel" and len(msg.cards) > 1
    html = card_page(msg, actions=actions(image=lambda url: "/media/x.png"))
    tags = parse(html)
    assert sum(1 for t, a in tags.tags if t == "article") == len(msg.cards)
    assert f"1 / {len(msg.cards)}" in html and f"{len(msg.cards)} / {len(msg.cards)}" in html
    for card in msg.cards:
        assert card.title is None or card.title.replace("&", "&amp;") in html
    n = len(msg.all_suggestions)
    indexes = {
        int(a["href"].rsplit("/", 1)[1]) for t, a in tags.tags if t == "a" and a["href"].startswith("/s/")
    }
    values = {int(a["value"]) for t, a in tags.tags if t == "button"}
    assert indexes | values <= set(range(n))


def test_expired_page_has_no_card() -> None:
    html = expired_page("顺丰速运" + EVIL, "138 0000 0001", '+8613800000001"><x')
    assert "&lt;script&gt;" in html and "<script" not in html
    assert 'href="tel:+8613800000001"' in html and "138 0000 0001" in html and "已过期" in html
    assert "<form" not in html
