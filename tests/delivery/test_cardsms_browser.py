"""The card page in the console, in Chromium: a card version registered as a card-SMS template
shows each handset vendor's review in its readiness table, in Chinese — approved, under review,
refused with the vendor's reason. Screenshot in test-artifacts/console/."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from delivery.gateways.cardsms_sign import callback_headers
from mingpian.settings import Settings
from simulators.cardsms import CardSmsSim
from simulators.seeds import seed_doc
from simulators.smsc import GatewaySim
from tests.support.browser import PageProbe, ServerThread
from tests.support.processes import free_port

from .support import SF_KEY
from .test_console_browser import _api, open_page, shot, sign_in

VERSION = "/api/enterprises/sf/cards/hangup/versions/1/cardsms"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, CardSmsSim]]:
    base: Path = tmp_path_factory.mktemp("cardsms-console")
    seed = base / "seed.yaml"
    doc = seed_doc(policy={"chain": ["cardsms", "sms"]})
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    smpp_port, platform_port = free_port(), free_port()
    sim = CardSmsSim(callback_secret="cb")
    sim.mode = "hold"
    settings = Settings(
        data_dir=base / "var",
        log_format="text",
        log_level="WARNING",
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{smpp_port}",
        delivery_smpp_password="secret",
        delivery_cardsms_url=f"http://127.0.0.1:{platform_port}",
        delivery_cardsms_app_key="cs-key",
        delivery_cardsms_app_secret="cs-secret",
        delivery_cardsms_callback_secret="cb",
    )

    def prepare(app: web.Application) -> None:
        async def simulators(app: web.Application) -> AsyncIterator[None]:
            gateway = GatewaySim(password="secret")
            await gateway.start(port=smpp_port)
            runner = web.AppRunner(sim.app())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", platform_port).start()
            yield
            await runner.cleanup()
            await gateway.stop()

        app.cleanup_ctx.insert(0, simulators)

    srv = ServerThread(settings, prepare).start()
    sim.callback = f"{srv.url}/api/cardsms/koomessage"
    yield srv, sim
    srv.stop()


def test_the_card_page_lists_each_vendors_review(
    browser: Any, served: tuple[ServerThread, CardSmsSim]
) -> None:
    server, sim = served
    status, body = _api(server, "POST", VERSION, SF_KEY)
    assert status == 200 and body["registered"], body
    [tpl] = sim.templates
    # the platform's signed callback: Huawei approved it, OPPO refused it, the others review it
    factories = [{"factory_type": "HuaWei", "state": 1}, {"factory_type": "OPPO", "state": 2,
                  "reason": "按钮文案不符合规范"}]  # fmt: skip
    data = json.dumps({"tpl_id": tpl, "audit_state": 1, "factory_info": factories}).encode()
    req = urllib.request.Request(
        f"{server.url}/api/cardsms/koomessage/template-status", data=data, method="POST",
        headers=callback_headers("cb", data),
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    states = {v["vendor"]: v["state"] for v in _api(server, "GET", VERSION, SF_KEY)[1]["vendors"]}
    assert states["HuaWei"] == "approved" and states["OPPO"] == "refused", states
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(page)
    sign_in(page, server, SF_KEY)
    open_page(page, "#/cards", "cards")
    page.click("button[aria-label='名片 hangup 的版本记录']")
    table = page.locator(".editor-slot table:has(caption:has-text('v1 的发送情况'))")
    row = table.locator("tr", has_text="卡片短信")
    row.wait_for(timeout=15_000)
    text = row.inner_text()
    assert "就绪" in text and "手机厂商" not in text.split("就绪")[0], text
    vendors = row.locator("ul.vendor-reviews li")
    assert vendors.count() == 6
    shown = {li.split(" ")[0]: li for li in (vendors.nth(i).inner_text() for i in range(6))}
    assert "已通过" in shown["华为"] and "审核中" in shown["小米"], shown
    assert "未通过" in shown["OPPO"] and "原因：按钮文案不符合规范" in shown["OPPO"], shown
    shot(page, "50-card-sms-vendors")
    # the dry run says, in Chinese, why a phone without card SMS gets plain SMS instead
    open_page(page, "#/dry-run", "dry-run")
    page.fill("input[name=line]", "13800000001")
    page.fill("input[name=to]", "13912340009")
    page.click("button:has-text('试拨')")
    page.wait_for_selector(".dry-result[data-done]")
    step = page.locator(".dry-result tr", has_text="卡片短信").inner_text()
    assert "跳过：对方手机不能显示卡片短信" in step, step
    assert not probe.errors and not probe.dialogs, (probe.errors, probe.dialogs)
