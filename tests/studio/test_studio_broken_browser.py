"""A designer's mistakes in the studio, in a real Chromium: a broken template's error is said
once, in Chinese, with file:line, in the gallery and on every phone of its page; a button no
chatbot flow answers is marked before anyone taps it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.studio.test_studio_browser import open_template
from tests.support.browser import PageProbe, ServerThread
from tests.support.templates import write_template

Studio = tuple[ServerThread, Path]
BROKEN = 'card:\n  title: "好"\n  description: "{% if a %}x"\n'
MINE = """card:
  title: 我的名片
  suggestions:
    - reply: {text: 点个赞, postback: "show:like"}
    - reply: {text: 没人管, postback: "mine:nobody"}
"""


@pytest.fixture
def broken(studio: Studio) -> Iterator[str]:
    _, templates = studio
    folder = write_template(templates, "broken-one", BROKEN, sample={"a": True})
    yield f"{templates.name}/broken-one/card.yaml:3"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()


def test_gallery_shows_a_broken_template_once_in_chinese(
    page: tuple[Any, PageProbe], studio: Studio, broken: str
) -> None:
    pg, _ = page
    server, _ = studio
    pg.goto(server.url + "/")
    tile = pg.locator('.tile.broken[data-name="broken-one"]')
    text = tile.locator(".error").inner_text()
    assert text.count(broken) == 1, text
    assert "「if」块没有闭合，缺少 {% endif %}" in text and text.count("块没有闭合") == 1, text
    assert "Unexpected end" not in text  # the parser's words are folded away, for developers
    tile.locator("details.detail summary").click()
    assert "Unexpected end of template" in tile.locator("details.detail").inner_text()


def test_every_phone_of_a_broken_template_says_what_and_where(
    page: tuple[Any, PageProbe], studio: Studio, broken: str
) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "broken-one")
    phones = pg.locator("figure.phone:not(.off)")
    assert phones.count() >= 5
    for i in range(phones.count()):
        note = phones.nth(i).locator(".phone-note").inner_text()
        assert broken in note and "「if」块没有闭合" in note, note
        assert "Unexpected" not in note
    problems = pg.locator("#problem-list li.template-problem")
    assert problems.count() == 1
    assert problems.first.get_attribute("title").startswith("Unexpected end of template")
    # fixed on disk: live reload clears the mark from every phone, the video's too
    _, templates = studio
    (templates / "broken-one" / "card.yaml").write_text('card:\n  title: "好"\n', "utf-8")
    pg.locator("#phone-rcs .card-title").first.wait_for()
    pg.wait_for_function("() => document.querySelectorAll('figure.phone.broken').length === 0")


def test_a_button_no_flow_answers_is_marked_before_a_tap(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, templates = studio
    folder = write_template(templates, "mine", MINE)
    (folder / "manifest.yaml").write_text(
        (folder / "manifest.yaml").read_text("utf-8").replace("phase: hang-up", "phase: pre-call"), "utf-8"
    )
    try:
        open_template(pg, server, "mine")
        rcs = pg.locator("#phone-rcs")
        lost = rcs.locator("button.sugg.unanswered")
        lost.first.wait_for()
        assert lost.count() == 1
        assert "没人管" in lost.inner_text() and "无人回答" in lost.inner_text()
        assert "没有聊天机器人流程回答按钮「没人管」（回传 mine:nobody）" in lost.get_attribute("title")
        sms = pg.locator("#phone-sms .phone-note")
        if pg.locator("#phone-sms.off").count() == 0:  # the legacy phones say it too, by number
            sms.wait_for()
            assert "没有机器人回答：回复 2（回传 mine:nobody）" in sms.inner_text()
        liked = rcs.get_by_role("button", name="回复：点个赞")
        assert "unanswered" not in liked.get_attribute("class")
        liked.click()  # the shipped personal-show flow answers it
        pg.wait_for_function(
            "() => document.querySelector('#phone-rcs .convo').textContent.includes('已为 TA 点赞')"
        )
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


def test_gallery_names_a_template_that_fails_with_its_own_sample(
    page: tuple[Any, PageProbe], studio: Studio
) -> None:
    pg, _ = page
    server, templates = studio
    folder = write_template(templates, "fails-late", 'card:\n  title: "{{ who.name }}"\n', sample={"who": {}})
    try:
        pg.goto(server.url + "/")
        pg.wait_for_selector("main[data-ready=true]")
        tile = pg.locator('.tile[data-name="fails-late"]')
        text = tile.locator(".error").inner_text()
        assert f"{templates.name}/fails-late/card.yaml:2" in text and "「name」未定义" in text, text
        assert text.count("未定义") == 1
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
