"""The dry run in Chromium on a server with SMPP only: a channel of the enterprise's order the
server has no gateway for is skipped with the setting that would configure it, in Chinese (5G
messages: `maap_url`; card SMS: `delivery_cardsms_url`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import PageProbe, ServerThread

from .support import CHATBOT, SF_KEY, SF_LINE, seed_doc, seeded_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    doc = seed_doc(policy={"chain": ["rcs", "cardsms", "ussd"], "timeouts": {"ussd": 0.6}})
    doc["enterprises"][0]["chatbot"] = CHATBOT
    srv, _ = seeded_server(tmp_path_factory.mktemp("dryrun"), doc=doc)
    yield srv
    srv.stop()


def test_an_unconfigured_channel_names_its_setting(browser: Any, server: ServerThread) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(page)
    page.goto(f"{server.url}/console#/dry-run")
    page.wait_for_selector("main[data-ready=signin]")
    page.fill("input[name=key]", SF_KEY)
    page.press("input[name=key]", "Enter")
    page.wait_for_selector("main[data-ready=dry-run]")
    page.fill("input[name=line]", SF_LINE)
    page.fill("input[name=to]", "13912345678")
    page.click("button:has-text('试拨')")
    page.wait_for_selector(".dry-result[data-done]")
    result = page.inner_text(".dry-result")
    assert "跳过：服务器未配置这个渠道：设置 maap_url（5G 消息平台的地址）" in result, result
    assert "跳过：服务器未配置这个渠道：设置 delivery_cardsms_url（卡片短信平台的地址）" in result, result
    assert "delivery_smpp" not in result  # USSD is configured: it is sent
    assert probe.errors == [], probe.errors
