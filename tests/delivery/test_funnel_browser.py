"""The console's reports page draws the delivery funnel per channel in Chromium — 已发送 → 已送达 →
已展示 → 已打开链接 with the numbers the API reports — and a phone (390 px) reads it without
scrolling sideways, with every chart label of the page at least 11 px."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mingpian.api.delivery import delivery_key
from tests.support.browser import ARTIFACTS, VISIBLE_TEXT, PageProbe, ServerThread, english_words

from .support import CUSTOMER, OPERATOR, SF_KEY, seeded_server
from .test_console_browser import open_page, sign_in


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv, _ = seeded_server(tmp_path_factory.mktemp("funnel"))
    yield srv
    srv.stop()


def _api(server: ServerThread, method: str, path: str, key: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def _on_server(server: ServerThread, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, server._loop).result(10)  # type: ignore[arg-type]


def test_the_console_draws_the_funnel_per_channel_at_phone_width(browser: Any, server: ServerThread) -> None:
    for i in range(3):
        _api(server, "POST", "/api/calls", OPERATOR,
             {"call_id": f"fb{i}", "caller": "13800000001", "callee": CUSTOMER, "phase": "ringing"})  # fmt: skip
    service = server.app[delivery_key]  # type: ignore[attr-defined]
    delivered: list[Any] = []
    for _ in range(200):
        atts = [_on_server(server, service.store.attempts(f"fb{i}:ringing")) for i in range(3)]
        delivered = [a for att in atts for a in att if a.state == "delivered"]
        if len(delivered) == 3:
            break
        time.sleep(0.05)
    assert len(delivered) == 3
    a = delivered[0]
    now = time.time()
    assert _on_server(server, service.funnel.displayed(a.delivery, a.step, a.channel, "sf", now, how="h5"))
    assert _on_server(server, service.funnel.opened(a.delivery, a.step, a.channel, "sf", now))
    report = _api(server, "GET", "/api/enterprises/sf/reports/funnel", SF_KEY)
    [row] = report["channels"]
    assert (row["sent"], row["delivered"], row["displayed"], row["opened"]) == (3, 3, 1, 1)

    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    probe = PageProbe(page)
    sign_in(page, server, SF_KEY)
    open_page(page, "#/reports", "reports")
    page.wait_for_selector(".funnel svg rect.c-step-opened")
    figure = page.locator(".funnel figure").first
    text = figure.inner_text()
    assert figure.locator("figcaption").inner_text() in ("USSD", "闪信", "短信")
    for word in ("已发送", "已送达", "已展示", "已打开链接", "3（100%）", "1（33.3%）", "1（100%）"):
        assert word in text, (word, text)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 844})
        page.wait_for_function(
            "w => [...document.querySelectorAll('.reports svg')].every((s) => s.getBoundingClientRect().width"
            " <= s.parentElement.clientWidth + 1)",
            arg=width,
        )
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width + 1
        box = figure.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1
        smallest = page.evaluate("""() => Math.min(...[...document.querySelectorAll('.reports svg text')].map((t) => {
          const svg = t.ownerSVGElement;
          return parseFloat(getComputedStyle(t).fontSize) * svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        }))""")
        assert smallest >= 11, (width, smallest)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(ARTIFACTS) / f"console-funnel-{width}.png"), full_page=True)
    funnel_text = page.locator(".funnel").inner_text()
    assert english_words(funnel_text, {"sf", "USSD"}) == [], funnel_text
    assert english_words(page.evaluate(VISIBLE_TEXT), {"sf", "USSD", "CSV", "pool1", "courier-hangup"}) == []
    assert probe.errors == [] and probe.dialogs == []
