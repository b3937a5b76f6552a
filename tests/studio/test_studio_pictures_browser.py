"""The studio's picture phone in Chromium: a carousel as one picture per card to swipe through,
and a warning naming the field when a character would be drawn as a box."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import ARTIFACTS, PageProbe, ServerThread
from tests.support.templates import write_template

Studio = tuple[ServerThread, Path]


@pytest.fixture
def page(browser: Any, studio: Studio) -> Iterator[tuple[Any, PageProbe]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(20_000)
    pg = context.new_page()
    probe = PageProbe(pg)
    yield pg, probe
    context.close()
    assert probe.errors == [], probe.errors


def _open(pg: Any, server: ServerThread, name: str) -> None:
    pg.goto(f"{server.url}/t/{name}")
    pg.wait_for_selector("main[data-ready=true]")


def test_a_carousel_shows_one_legible_picture_per_card_to_swipe(
    page: tuple[Any, PageProbe], studio: Studio
) -> None:
    pg, _ = page
    server, templates = studio
    _open(pg, server, "ad-carousel")
    cards = len(json.loads((templates / "ad-carousel" / "sample.json").read_text("utf-8"))["offers"])
    pg.wait_for_function(
        f"() => [...document.querySelectorAll('#phone-image .swipe img.rendered')]"
        f".filter(i => i.naturalWidth > 0).length === {cards}"
    )
    srcs = pg.eval_on_selector_all("#phone-image .swipe img.rendered", "els => els.map(e => e.src)")
    assert len(set(srcs)) == cards  # a picture per card, not one overview
    # Each picture is shown at nearly the phone's width (legible), and the row scrolls sideways.
    shown = pg.eval_on_selector("#phone-image .swipe img.rendered", "e => e.getBoundingClientRect().width")
    row = pg.eval_on_selector("#phone-image .swipe", "e => [e.clientWidth, e.scrollWidth]")
    assert shown > 0.8 * row[0] and row[1] > row[0] * 1.5
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.locator("#phone-image").screenshot(path=str(ARTIFACTS / "carousel-pictures.png"))
    pg.eval_on_selector("#phone-image .swipe", "e => e.scrollBy({left: e.clientWidth})")
    pg.wait_for_timeout(300)
    pg.locator("#phone-image").screenshot(path=str(ARTIFACTS / "carousel-pictures-swiped.png"))


def test_an_undrawable_character_is_named_under_the_picture(
    page: tuple[Any, PageProbe], studio: Studio
) -> None:
    pg, _ = page
    server, templates = studio
    write_template(
        templates,
        "rare-name",
        "card:\n  title: '{{ name }}'\n",
        {"type": "object", "properties": {"name": {"type": "string", "title": "姓名"}}},
        {"name": "王𰀀 🌻"},
    )
    _open(pg, server, "rare-name")
    note = pg.locator("#phone-image .phone-note")
    note.wait_for()
    pg.wait_for_function(
        "() => document.querySelector('#phone-image .phone-note').textContent.includes('U+30000')"
    )
    assert "$.name" in note.text_content()
    pg.locator("#phone-image").screenshot(path=str(ARTIFACTS / "undrawable-character-warning.png"))
