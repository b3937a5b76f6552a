"""The experiment story in the console, in Chromium at phone width (390 px): an enterprise starts
an experiment on its hang-up card from the card page (a wrong field is named beside it in
Chinese first), two versions go to simulated recipients through the real server and SMSC
simulator, each person taps at their version's rate, the reports page's 名片漏斗 shows both
variants with each conversion's 95% interval and the very numbers the simulator saw (and the CSV
says the same), the card page declares the better variant and the enterprise promotes it.
Screenshots in test-artifacts/console/."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mingpian.api.delivery import delivery_key
from simulators.seeds import sample
from tests.support.browser import PageProbe, ServerThread, english_words

from .support import DAY, OPERATOR, SF_KEY, SF_LINE, GatewaySim, seed_doc, seeded_server
from .test_console_browser import _api, open_page, shot, sign_in

HANGUP = "/api/enterprises/sf/cards/hangup"
V2_WAYBILL = "SF2000000000002"
PEOPLE = 120
RATES = {"A": 0.1, "B": 0.6}  # version 1 and version 2: far apart, so 120 people settle it


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, list[GatewaySim]]]:
    now = time.time()
    pool = {"id": "pool1", "kind": "pool", "units": 5000, "price": 5.0, "policy": "stop",
            "valid_from": now - DAY, "valid_to": now + DAY}  # fmt: skip
    srv, sims = seeded_server(tmp_path_factory.mktemp("experiment-funnel"), doc=seed_doc(packages=[pool]))
    yield srv, sims
    srv.stop()


def _on_server(server: ServerThread, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, server._loop).result(20)  # type: ignore[arg-type]


def _fits(page: Any, width: int) -> None:
    """No sideways scrolling, and every button and link of the page within the screen."""
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= width
    outside = page.evaluate(
        """w => [...document.querySelectorAll('main button, main a.button, main select, main input')]
          .filter((el) => el.offsetParent !== null)
          .map((el) => [el.textContent || el.name, el.getBoundingClientRect()])
          .filter(([, r]) => r.left < 0 || r.right > w + 1).map(([t]) => t)""",
        width,
    )
    assert outside == [], outside


def _recipients(server: ServerThread) -> dict[str, str]:
    """Calls to PEOPLE people through the API; each delivery settled; person → variant."""

    def call(i: int) -> None:
        body = {"call_id": f"x{i}", "caller": SF_LINE, "callee": f"+86137{i:08d}", "phase": "ended"}
        status, got = _api(server, "POST", "/api/calls", OPERATOR, body)
        assert status in (200, 202), got

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(PEOPLE)))
    store = server.app[delivery_key].store  # type: ignore[attr-defined]
    variants: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(variants) < PEOPLE and time.monotonic() < deadline:
        for i in range(PEOPLE):
            person = f"+86137{i:08d}"
            if person in variants:
                continue
            d = _on_server(server, store.delivery(f"x{i}:ended"))
            if d is not None and d.state != "active":
                assert d.state == "delivered", (d.id, d.state)
                variants[person] = d.data["variant"]
        time.sleep(0.1)
    assert len(variants) == PEOPLE
    return variants


def test_an_experiment_from_start_to_promotion_with_its_funnel(
    browser: Any, served: tuple[ServerThread, list[GatewaySim]]
) -> None:
    server, sims = served
    data = {**sample("courier-hangup"), "waybill": V2_WAYBILL}
    card = {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": data}
    assert _api(server, "PUT", HANGUP, OPERATOR, card)[0] == 200  # version 2, approved as made
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    probe = PageProbe(page)
    sign_in(page, server, SF_KEY)

    # the card page: no experiment yet, the form to start one
    open_page(page, "#/cards", "cards")
    page.locator("button[aria-label='名片 hangup 的实验']").click()
    page.wait_for_selector("text=这张名片还没有实验")
    form = page.locator("form.exp-start")
    assert form.locator(".exp-variant").count() == 2  # the two approved versions, both ticked
    # a wrong weight and too small a sample: each named beside its field, in Chinese
    form.locator("input[aria-label='第 1 版的权重']").fill("-1")
    form.locator("input[name=min_sample]").fill("10")
    form.locator("button[type=submit]").click()
    row = form.locator(".exp-variant[data-version='1'] .err")
    row.wait_for()
    assert "权重" in row.inner_text() and "不小于 0" in row.inner_text()
    assert form.locator("input[aria-label='第 1 版的权重']").get_attribute("aria-invalid") == "true"
    sample_err = form.locator("input[name=min_sample] ~ .err")
    assert "最小样本" in sample_err.inner_text() and "不小于 30" in sample_err.inner_text()
    _fits(page, 390)
    shot(page, "70-experiment-form-errors")
    assert english_words(form.inner_text(), set()) == [], form.inner_text()
    form.locator("input[aria-label='第 1 版的权重']").fill("1")
    form.locator("input[name=min_sample]").fill("30")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=进行中")
    status, xs = _api(server, "GET", f"{HANGUP}/experiments", SF_KEY)
    assert status == 200, xs
    [x] = xs["experiments"]
    assert x["state"] == "running" and [(v["name"], v["version"]) for v in x["variants"]] == [
        ("A", 1),
        ("B", 2),
    ]
    assert x["goal"] == "tap_rate" and x["min_sample"] == 30 and x["auto_promote"] is False

    # people get the card, each taps with their variant's rate (drawn per person)
    t0 = time.monotonic()
    variants = _recipients(server)
    taps = dict.fromkeys(RATES, 0)
    for i in range(PEOPLE):
        person = f"+86137{i:08d}"
        v = variants[person]
        if random.Random(f"tap/{i}").random() < RATES[v]:
            taps[v] += 1
            reply = {"from": person, "to": SF_LINE, "text": "1", "channel": "sms"}
            assert _api(server, "POST", "/api/replies", OPERATOR, reply)[0] == 200
    service = server.app[delivery_key]  # type: ignore[attr-defined]
    _on_server(server, service.events.settled())
    # what the simulated SMSC got: one message per person, its version told by the waybill
    [sim] = sims
    texts = [s["text"] for s in sim.submits]
    at_sim = {"B": sum(V2_WAYBILL in t for t in texts), "A": sum(V2_WAYBILL not in t for t in texts)}
    assert sum(at_sim.values()) == PEOPLE and at_sim == {
        v: sum(1 for w in variants.values() if w == v) for v in RATES
    }
    assert sim.receipts_sent == PEOPLE and min(at_sim.values()) >= 30
    print(f"{PEOPLE} people sent and tapped in {time.monotonic() - t0:.1f} s: {at_sim}, taps {taps}")

    # from the experiment to the reports page: the card's funnel by variant, at 390 px
    page.locator("a.button", has_text="在报表中查看漏斗").click()
    page.wait_for_selector("main[data-ready='reports']")
    section = page.locator("section.card-funnel-section")
    section.locator(".card-funnel[data-groups='2']").wait_for()
    assert section.locator("select[name=card]").input_value() == "hangup"
    assert section.locator("select[name=by]").input_value() == "variant"
    section.locator("select[name=card]").select_option("pre")  # a card sent to nobody: what to do
    section.locator("button[type=submit]").click()
    section.locator(".card-funnel[data-groups='0']").wait_for()
    assert "还没有这张名片的发送记录" in section.inner_text() and "开始实验" in section.inner_text()
    section.locator("select[name=card]").select_option("hangup")
    section.locator("button[type=submit]").click()
    section.locator(".card-funnel[data-groups='2']").wait_for()
    page.wait_for_selector(".card-funnel-rate svg g.whisker")
    table = section.locator("table.card-funnel-numbers")
    for v in RATES:
        cells = table.locator("tr", has_text=f"版本 {v}").locator("td").all_inner_texts()
        # 分组, 已发送, 已送达, 已展示, 已打开链接, 已点击, …
        assert cells[1] == str(at_sim[v]) and cells[2] == str(at_sim[v]), (v, cells)
        assert cells[5] == str(taps[v]), (v, cells, taps)
    # every conversion figure: a whisker per variant, and each rate told with its interval
    figures = section.locator("figure.card-funnel-rate")
    assert figures.count() == 5
    for i in range(figures.count()):
        assert figures.nth(i).locator("g.whisker").count() == 2
    tap_rate = figures.filter(has_text="占已发送").locator("svg desc").text_content() or ""
    for v in RATES:
        pct = f"{round(1000 * taps[v] / at_sim[v]) / 10:g}%（"
        assert f"版本 {v}：{pct}" in tap_rate, (pct, tap_rate)
    _fits(page, 390)
    shot(page, "71-card-funnel-phone")
    assert english_words(section.inner_text(), {"CSV", "hangup", "pre"}) == [], section.inner_text()
    # the CSV link answers the same report
    href = section.locator("a.button", has_text="下载 CSV").get_attribute("href")
    assert href and "by=variant" in href and "format=csv" in href
    got = page.request.get(server.url + href)
    assert got.ok
    rows = [r for r in csv.DictReader(io.StringIO(got.text())) if r["bucket"] == "total"]
    assert {r["group"]: (int(r["sent"]), int(r["tapped"])) for r in rows} == {
        v: (at_sim[v], taps[v]) for v in RATES
    }

    # the card page declares B and the enterprise promotes it
    open_page(page, "#/cards", "cards")
    page.locator("button[aria-label='名片 hangup 的实验']").click()
    page.wait_for_selector("text=胜出：B")
    _fits(page, 390)
    assert "null" not in page.inner_text("main") and "undefined" not in page.inner_text("main")
    shot(page, "72-experiment-declared-phone")
    row = page.locator("tr", has_text="B（第 2 版）")
    row.locator("button", has_text="提升为唯一版本").click()
    row.locator("button", has_text="确认提升").click()
    page.wait_for_selector("text=B 已成为唯一发送的版本")
    got_x = _api(server, "GET", f"{HANGUP}/experiments/{x['id']}", SF_KEY)[1]
    assert got_x["state"] == "promoted" and got_x["winner"] == "B"
    assert got_x["analysis"]["verdict"]["winner"] == "B"
    # a new experiment can be started again once this one has ended
    assert page.locator("form.exp-start").count() == 1
    assert probe.errors == [] and probe.dialogs == []
