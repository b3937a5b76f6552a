"""The reports page: served with the studio's CSP, its own scripts only, and in Chromium it
draws the charts from the enterprise's data with no script error or CSP violation."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from simulators.smsc import Rule
from tests.support.browser import ARTIFACTS, VISIBLE_TEXT, PageProbe, ServerThread, english_words

from .support import CUSTOMER, OPERATOR, SF_KEY, seeded_server


async def test_page_and_assets_carry_the_studio_csp(client: TestClient[Any, web.Application]) -> None:
    resp = await client.get("/reports")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert '<script type="module" src="/delivery/static/reports.js?v=' in html
    for name, kind in (
        ("reports.js", "text/javascript"),
        ("charts.js", "text/javascript"),
        ("reports.css", "text/css"),
    ):
        r = await client.get(f"/delivery/static/{name}")
        assert r.status == 200 and r.content_type == kind
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/delivery/static/../api.py")).status == 404
    assert (await client.get("/delivery/static/evil.js")).status == 404
    js = await (await client.get("/delivery/static/charts.js")).text()
    assert "innerHTML" not in js and "http" not in js.replace("http://www.w3.org/2000/svg", "")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv, sims = seeded_server(tmp_path_factory.mktemp("reports"), [Rule("fail", channel="ussd", times=2)])
    srv.sims = sims  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def _post(url: str, body: dict[str, Any], key: str) -> int:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


def _get(url: str, key: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def test_reports_page_draws_charts_in_chromium(browser: Any, server: ServerThread) -> None:
    for i in range(4):
        assert (
            _post(
                f"{server.url}/api/calls",
                {"call_id": f"rp{i}", "caller": "13800000001", "callee": CUSTOMER, "phase": "ringing"},
                OPERATOR,
            )
            == 202
        )
    time.sleep(2.0)  # USSD fails twice, flash delivers: attempts with two outcomes
    sim = server.sims[0]  # type: ignore[attr-defined]
    server._loop.call_soon_threadsafe(sim.send_mo, CUSTOMER[3:], "13800000001", "退订")  # type: ignore[union-attr]
    for _ in range(100):
        if _get(f"{server.url}/api/enterprises/sf/optouts", SF_KEY)["optouts"]:
            break
        time.sleep(0.05)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
    probe = PageProbe(page)
    page.goto(f"{server.url}/reports?enterprise=sf")
    page.fill("input[name=key]", SF_KEY)
    page.click("#login button[type=submit]")
    page.wait_for_selector("figure svg rect.c-delivered", timeout=10_000)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    captions = page.locator(".charts figcaption").all_text_contents()
    assert captions == [
        "用量（条，按天、渠道）",
        "费用（元，按天）",
        "投递结果（按天）",
        "各渠道送达率",
        "各渠道回执时延（平均）",
        "套餐余量",
        "退订（按天）",
        "按钮点击",
        "广告曝光（按天）",
    ]
    # the delivery funnel of the same range, one figure per channel and one for all of them
    funnel = page.locator(".funnel").inner_text()
    assert all(
        word in funnel for word in ("投递漏斗", "已发送", "已送达", "已展示", "已打开链接", "全部渠道")
    )
    assert page.locator(".funnel figure").count() >= 2
    # usage and cost over time are drawn (they were a table only), opt-outs too
    assert page.locator(".charts figure").nth(0).locator("svg rect[class^=c-]").count() >= 1
    assert page.locator(".charts figure").nth(1).locator("svg rect.c-cost").count() >= 1
    assert page.locator(".charts figure").nth(6).locator("svg rect.c-optout").count() == 1
    assert "送达" in page.locator(".charts figure").nth(2).locator(".legend").inner_text()
    assert (
        "USSD" in page.locator(".charts figure").nth(3).inner_text()
        and "%" in page.locator(".charts figure").nth(3).inner_text()
    )
    assert "pool1" in page.locator(".charts figure").nth(5).inner_text()
    assert "预计" in page.locator(".runout").inner_text() and "到期" in page.locator(".runout").inner_text()
    # every chart label is at least 11 px on screen
    smallest = page.evaluate("""() => Math.min(...[...document.querySelectorAll('figure svg text')].map((t) => {
      const svg = t.ownerSVGElement;
      const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
      return parseFloat(getComputedStyle(t).fontSize) * scale;
    }))""")
    assert smallest >= 11, smallest
    # no English in the Chinese page (enterprise, package and card names are the user's data)
    assert english_words(page.evaluate(VISIBLE_TEXT), {"sf", "pool1", "courier-hangup"}) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / "reports.png"), full_page=True)
    # the CSV download of the usage shown
    with page.expect_download() as dl:
        page.click("#csv")
    csv_path = dl.value.path()
    lines = Path(str(csv_path)).read_text("utf-8").splitlines()
    assert lines[0] == "day,channel,package,messages,units,overage_units,cost" and len(lines) >= 2
    # a date range with nothing in it: the charts say so
    page.fill("#from", "2020-01-01")
    page.fill("#to", "2020-01-31")
    page.click("#range button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('.charts figure').textContent.includes('这段时间没有数据')"
    )
    assert page.locator("figure svg rect.c-delivered").count() == 0
    # that range is older than the deliveries kept (90 days): the page says so
    note = page.locator(".note.pruned").inner_text()
    assert "所选范围早于保留期" in note and "投递漏斗" in note
    # a wrong key is an explained error, not a broken page
    page.fill("input[name=key]", "mpk_wrong")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#error:not([hidden])", timeout=5_000)
    assert "无法加载" in page.inner_text("#error")
    assert probe.errors == [
        e for e in probe.errors if "status of 401" in e
    ]  # the refused key is the only console error
    page.close()
