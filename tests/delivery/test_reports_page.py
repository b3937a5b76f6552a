"""The reports page: served with the studio's CSP, its own scripts only, and in Chromium it
draws the charts from the enterprise's data with no script error or CSP violation."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.settings import Settings
from tests.support.browser import ARTIFACTS, PageProbe, ServerThread
from tests.support.gatewaysim import GatewaySim, Rule

from .support import CUSTOMER, OPERATOR, SF_KEY, seed_doc


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("reports")
    seed = base / "seed.yaml"
    seed.write_text(yaml.safe_dump(seed_doc(), allow_unicode=True), "utf-8")
    smpp_port = _free_port()
    settings = Settings(
        data_dir=base / "var",
        log_format="text",
        log_level="WARNING",
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{smpp_port}",
        delivery_smpp_password="secret",
    )

    def prepare(app: web.Application) -> None:
        async def gateway(app: web.Application) -> Any:
            sim = GatewaySim(password="secret")
            sim.set_rules([Rule("fail", channel="ussd", times=2)])
            await sim.start(port=smpp_port)
            yield
            await sim.stop()

        app.cleanup_ctx.insert(0, gateway)

    srv = ServerThread(settings, prepare).start()
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
    page = browser.new_page()
    probe = PageProbe(page)
    page.goto(f"{server.url}/reports?enterprise=sf")
    page.fill("input[name=key]", SF_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("figure svg rect.c-delivered", timeout=10_000)
    captions = page.locator("figcaption").all_text_contents()
    assert captions[:4] == ["投递结果（按天、渠道）", "回执时延（平均）", "回落率", "套餐余量"]
    assert page.locator("svg rect.c-failed").count() >= 1
    assert "pool1" in page.locator("figure").nth(3).inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / "reports.png"), full_page=True)
    # a wrong key is an explained error, not a broken page
    page.fill("input[name=key]", "mpk_wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("#error:not([hidden])", timeout=5_000)
    assert "无法加载" in page.inner_text("#error")
    assert probe.errors == [
        e for e in probe.errors if "status of 401" in e
    ]  # the refused key is the only console error
    page.close()
