"""A card's experiment in the console, in Chromium at phone width: its variants with weights and
rates, the verdict in Chinese, and 提升为唯一版本 making a variant the only version sent.
Screenshots in test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulators.seeds import sample
from tests.support.browser import PageProbe, ServerThread, english_words

from .support import OPERATOR, SF_KEY, seeded_server
from .test_console_browser import _api, open_page, shot, sign_in

HANGUP = "/api/enterprises/sf/cards/hangup"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv, _ = seeded_server(tmp_path_factory.mktemp("experiments"))
    yield srv
    srv.stop()


def test_the_experiment_on_the_card_page_at_phone_width(browser: Any, server: ServerThread) -> None:
    data = {**sample("courier-hangup"), "waybill": "SF2000000000002"}
    card = {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": data}
    assert _api(server, "PUT", HANGUP, OPERATOR, card)[0] == 200  # version 2, approved as made
    variants: list[dict[str, Any]] = [
        {"name": "A", "version": 1, "weight": 1},
        {"name": "B", "version": 2, "weight": 3},
    ]
    status, x = _api(
        server, "POST", f"{HANGUP}/experiments", SF_KEY, {"variants": variants, "goal": "tap_rate"}
    )
    assert status == 201, x
    page = browser.new_page(viewport={"width": 390, "height": 844})
    probe = PageProbe(page)
    sign_in(page, server, SF_KEY)
    open_page(page, "#/cards", "cards")
    page.locator("button[aria-label='名片 hangup 的实验']").click()
    page.wait_for_selector("text=名片 hangup 的实验")
    text = page.inner_text("main")
    assert "进行中" in text and "目标：点击率" in text and "样本未达最小要求，暂无结论" in text
    assert "A（第 1 版）" in text and "B（第 2 版）" in text
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
    section = page.locator("section", has_text="名片 hangup 的实验")
    words = english_words(section.evaluate("el => el.innerText"), {"hangup"})
    assert words == [], words  # every word a person reads is Chinese
    shot(page, "60-experiment-phone")
    promote = page.locator("tr", has_text="B（第 2 版）").locator("button", has_text="提升为唯一版本")
    promote.click()
    page.locator("tr", has_text="B（第 2 版）").locator("button", has_text="确认提升").click()
    page.wait_for_selector("text=B 已成为唯一发送的版本")
    assert "已提升" in page.inner_text("main")
    got = _api(server, "GET", f"{HANGUP}/experiments/{x['id']}", SF_KEY)[1]
    assert got["state"] == "promoted" and got["winner"] == "B"
    assert probe.errors == [] and probe.dialogs == []
