"""The H5 card page in Chromium at 360 px, scripts off: nothing scrolls sideways, text and buttons
are large enough, 联系快递员 is a `tel:` link, tapping 改约派送 shows the courier bot's answer on the
page; and the studio's seventh phone shows the same page from its form."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import yaml
from aiohttp import web

from mingpian.api.delivery import delivery_key
from mingpian.settings import Settings
from simulators.smsc import GatewaySim
from tests.support.browser import ARTIFACTS, PageProbe, ServerThread
from tests.support.processes import free_port

from .support import CHATBOT, CUSTOMER, DAY, OPERATOR, seed_doc


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("h5")
    seed = seed_doc(policy={"chain": ["sms"], "timeouts": {"sms": 0.5}})
    seed["enterprises"][0]["chatbot"] = CHATBOT
    (base / "seed.yaml").write_text(yaml.safe_dump(seed, allow_unicode=True), "utf-8")
    smpp_port = free_port()
    settings = Settings(
        data_dir=base / "var",
        log_format="text",
        log_level="WARNING",
        delivery_seed=str(base / "seed.yaml"),
        delivery_smpp=f"127.0.0.1:{smpp_port}",
        delivery_smpp_password="secret",
    )

    def prepare(app: web.Application) -> None:
        srv.app = app  # type: ignore[attr-defined]  # the app, for coroutines run on its loop

        async def gateway(app: web.Application) -> AsyncIterator[None]:
            sim = GatewaySim(password="secret")
            await sim.start(port=smpp_port)
            yield
            await sim.stop()

        app.cleanup_ctx.insert(0, gateway)

    srv = ServerThread(settings, prepare)
    srv.start()
    yield srv
    srv.stop()


def _on_server(server: ServerThread, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, server._loop).result(10)  # type: ignore[arg-type]


def _card_link(server: ServerThread, call_id: str) -> str:
    req = urllib.request.Request(
        server.url + "/api/calls",
        data=json.dumps(
            {"call_id": call_id, "caller": "13800000001", "callee": CUSTOMER, "phase": "ended"}
        ).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        delivery = json.loads(resp.read())["delivery"]
    service = server.app[delivery_key]  # type: ignore[attr-defined]
    link = _on_server(server, service.links.mint("sf", CUSTOMER, delivery, 0, "sms", "card", "", DAY))
    _on_server(server, service.store.durable())
    return f"{server.url}/s/{link.code}"


def test_card_page_at_360_px_without_scripts(browser: Any, server: ServerThread) -> None:
    url = _card_link(server, "h5b-1")
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, locale="zh-CN", java_script_enabled=False
    )
    context.set_default_timeout(10_000)
    pg = context.new_page()
    probe = PageProbe(pg)
    try:
        resp = pg.goto(url)
        assert resp is not None and resp.status == 200
        assert pg.locator("h1").first.text_content() == "您的快递派送中"
        dial = pg.get_by_role("link", name="联系快递员")
        assert dial.get_attribute("href") == "tel:13800138000"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "h5-card-360.png"), full_page=True)
        sizes = pg.evaluate(
            """() => ({
              scroll: document.documentElement.scrollWidth, width: window.innerWidth,
              fonts: [...document.querySelectorAll('p, h1, h2, .btn, header span')]
                .map((e) => parseFloat(getComputedStyle(e).fontSize)),
              targets: [...document.querySelectorAll('a, button')]
                .map((e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; }),
            })"""
        )
        assert sizes["scroll"] <= sizes["width"], sizes
        assert min(sizes["fonts"]) >= 16, sizes["fonts"]
        assert all(w >= 44 and h >= 44 for w, h in sizes["targets"]), sizes["targets"]

        pg.get_by_role("button", name="改约派送").click()
        pg.wait_for_selector("#answer")
        answer = pg.locator("#answer").text_content() or ""
        assert "请选择新的派送时间" in answer and "明天 09:00-12:00" in answer
        assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        pg.screenshot(path=str(ARTIFACTS / "h5-answer-360.png"), full_page=True)
        # the answer's own button goes on with the conversation, still without scripts
        pg.get_by_role("button", name="明天 09:00-12:00").click()
        pg.wait_for_selector("#answer")
        assert "明天 09:00-12:00" in (pg.locator("#answer").text_content() or "")
        assert "GY" in (pg.locator("#answer").text_content() or "")
    finally:
        context.close()
    assert probe.errors == [], probe.errors


def test_the_studio_shows_the_page_as_its_seventh_phone(browser: Any, server: ServerThread) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    probe = PageProbe(pg)
    try:
        pg.goto(f"{server.url}/t/courier-hangup")
        pg.wait_for_selector("main[data-ready=true]")
        assert pg.locator("figure.phone").count() == 7
        assert "H5 页面" in (pg.locator("#phone-h5 figcaption").text_content() or "")
        frame = pg.frame_locator("#phone-h5 iframe")
        frame.locator("h1").wait_for()
        assert frame.locator("h1").text_content() == "您的快递派送中"
        assert frame.get_by_role("link", name="联系快递员").get_attribute("href") == "tel:13800138000"
        assert pg.locator("#phone-h5 iframe").get_attribute("sandbox") == ""
        # the preview's link buttons stay in the page: nothing reaches the enterprise's site
        assert frame.get_by_role("link", name="查询物流").get_attribute("href") == "#tap-0"
        pg.locator("#phone-h5").screenshot(path=str(ARTIFACTS / "phone-h5.png"))
        # an edit of the form reaches the seventh phone too
        pg.locator('[data-path="$.status"]').locator("select").first.select_option("已签收")
        frame.locator("h1", has_text="已签收").wait_for()
    finally:
        context.close()
    assert probe.errors == [], probe.errors
