"""The card review in the console, in Chromium: an enterprise's edit waits in the operator's queue
on the phones beside the version sent now, with what changed; a refusal needs a note, which the
enterprise then reads on its cards page; a new edit approved is what calls get; a version replaced
meanwhile answers in Chinese; the queue at phone width; trusting an enterprise's notification
cards and lifting it. Screenshots in test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulators.seeds import sample
from tests.support.browser import PageProbe, ServerThread

from .support import OPERATOR, SF_KEY, seeded_server
from .test_console_browser import _api, open_page, shot, sign_in

HANGUP = "/api/enterprises/sf/cards/hangup"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv, _ = seeded_server(tmp_path_factory.mktemp("reviews"))
    yield srv
    srv.stop()


def edited(waybill: str) -> dict[str, Any]:
    """The seeded hang-up card with another waybill number."""
    data = {**sample("courier-hangup"), "waybill": waybill}
    return {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": data}


def open_item(page: Any, version: int) -> Any:
    """The queue, searched for the hang-up card, once `version` is drawn on its phones."""
    open_page(page, "#/reviews", "reviews")
    page.fill("input[name=q]", "hangup")
    page.press("input[name=q]", "Enter")
    item = f"article.review[data-card=hangup][data-version='{version}']"
    page.wait_for_selector(f"{item}[data-shown]", timeout=15_000)
    return page.locator(item)


def test_the_operator_reviews_an_enterprise_edit(browser: Any, server: ServerThread) -> None:
    waybill = sample("courier-hangup")["waybill"]
    status, body = _api(server, "PUT", HANGUP, SF_KEY, edited("SF2000000000002"))
    assert status == 200 and body["review"]["state"] == "pending" and body["version"] == 2
    op = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(op)
    sign_in(op, server, OPERATOR)
    assert "名片审核" in op.inner_text("#nav")
    item = open_item(op, 2)
    text = item.inner_text()
    assert "顺丰速运有限公司" in text and "v2" in text and "通知" in text and "企业 顺丰速运有限公司" in text
    assert "待审核版本 v2" in text and "正在发送 v1" in text
    # what changed, the template's own name for the field
    row = item.locator("table.changes tbody tr", has_text="运单号")
    assert waybill in row.inner_text() and "SF2000000000002" in row.inner_text()
    # the phones: the waiting version beside the one calls get
    pending, sent = (item.locator(f".review-version.{v} .phone-sms") for v in ("pending", "sent"))
    pending.locator("text=SF2000000000002").first.wait_for(timeout=15_000)  # drawn once rendered
    sent.locator(f"text={waybill}").first.wait_for(timeout=15_000)
    item.locator(".review-version.pending .phone-rcs .convo *").first.wait_for()
    shot(op, "40-review-queue")
    # refusing needs a note; the enterprise reads it
    item.locator("button[aria-label='拒绝 hangup v2']").click()
    op.wait_for_selector("text=拒绝时请写明原因")
    assert _api(server, "GET", HANGUP, SF_KEY)[1]["review"]["state"] == "pending"
    item.locator("input[name=note]").fill("运单号与实际不符")
    item.locator("button[aria-label='拒绝 hangup v2']").click()
    op.wait_for_selector("text=顺丰速运有限公司 的名片 hangup v2：已拒绝")
    op.wait_for_selector("text=没有待审核的名片")
    ent = browser.new_page(viewport={"width": 1280, "height": 900})
    ent_probe = PageProbe(ent)
    sign_in(ent, server, SF_KEY)
    open_page(ent, "#/cards", "cards")
    row = ent.locator("tr", has_text="hangup")
    assert "未通过" in row.inner_text() and "运单号与实际不符" in row.inner_text()
    assert "正在发送 v1" in row.inner_text()
    shot(ent, "41-card-refused")
    # a new edit in the console waits; approved, it is what calls get
    ent.click("button[aria-label='编辑名片 hangup']")
    ent.wait_for_selector("#phone-rcs .convo *", timeout=15_000)
    assert "v2 未通过审核：运单号与实际不符" in ent.inner_text(".editor-slot")
    ent.fill(".schema-form input[name='$.waybill']", "SF3000000000003")
    ent.click("button:has-text('保存名片')")
    ent.wait_for_selector("text=已提交审核，通过后才会发送")
    assert "在此之前来电继续发送 v1" in ent.inner_text("main")
    item = open_item(op, 3)
    assert "正在发送 v1" in item.inner_text()
    item.locator("input[name=note]").fill("已核对")
    item.locator("button[aria-label='通过 hangup v3']").click()
    op.wait_for_selector("text=顺丰速运有限公司 的名片 hangup v3：已通过")
    open_page(ent, "#/audit", "audit")
    open_page(ent, "#/cards", "cards")
    row = ent.locator("tr", has_text="hangup")
    assert "正在发送 v3" in row.inner_text() and "已通过" in row.inner_text()
    # its versions, newest first
    ent.click("button[aria-label='名片 hangup 的版本记录']")
    ent.wait_for_selector("text=名片 hangup 的版本记录")
    rows = ent.locator(".editor-slot table:has(caption:has-text('最新的在前')) tbody tr")
    assert rows.count() == 3
    # and whether the version sent can go out, channel by channel
    ready = ent.locator(".editor-slot table:has(caption:has-text('v3 的发送情况'))").inner_text()
    assert "短信" in ready and "就绪" in ready and "下一次来电会在这个渠道发送" in ready
    assert "v3" in rows.nth(0).inner_text() and "正在发送" in rows.nth(0).inner_text()
    assert "已核对" in rows.nth(0).inner_text() and "运营方" in rows.nth(0).inner_text()
    assert "企业 顺丰速运有限公司" in rows.nth(0).inner_text()  # who submitted it, by name, not its id
    assert "企业 sf" not in ent.inner_text(".editor-slot")
    assert "未通过" in rows.nth(1).inner_text() and "运单号与实际不符" in rows.nth(1).inner_text()
    assert "已被新版本取代" in rows.nth(2).inner_text()
    # any version on the phones: the first one still shows the seeded waybill
    ent.click("button[aria-label='预览 v1']")
    ent.locator(".version-preview .review-version.history").locator(f"text={waybill}").first.wait_for(
        timeout=15_000
    )
    shot(ent, "42-card-versions")
    assert probe.errors == [] and probe.dialogs == []
    assert ent_probe.errors == [] and ent_probe.dialogs == []


def test_a_version_replaced_meanwhile_says_so(browser: Any, server: ServerThread) -> None:
    shown = _api(server, "PUT", HANGUP, SF_KEY, edited("SF4000000000004"))[1]
    n = shown["version"]
    op = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(op)
    sign_in(op, server, OPERATOR)
    item = open_item(op, n)
    assert _api(server, "PUT", HANGUP, SF_KEY, edited("SF5000000000005"))[0] == 200  # replaces it
    item.locator(f"button[aria-label='通过 hangup v{n}']").click()
    op.wait_for_selector("text=已经处理过了（或已被新版本替换）")
    open_item(op, n + 1)  # the list reloaded: the newer edit waits
    assert _api(server, "GET", HANGUP, SF_KEY)[1]["review"]["sent_version"] != n
    assert [e for e in probe.errors if "HTTP 5" in e or "pageerror" in e] == [] and probe.dialogs == []


def test_the_queue_at_phone_width(browser: Any, server: ServerThread) -> None:
    if _api(server, "GET", HANGUP, SF_KEY)[1]["review"]["state"] != "pending":
        _api(server, "PUT", HANGUP, SF_KEY, edited("SF6000000000006"))
    n = _api(server, "GET", HANGUP, SF_KEY)[1]["version"]
    page = browser.new_page(viewport={"width": 390, "height": 844})
    probe = PageProbe(page)
    sign_in(page, server, OPERATOR)
    item = open_item(page, n)
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
    for label in (f"通过 hangup v{n}", f"拒绝 hangup v{n}"):
        button = item.locator(f"button[aria-label='{label}']")
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
    shot(page, "43-review-queue-phone")
    assert probe.errors == [] and probe.dialogs == []


def test_trusted_notification_cards_are_approved_as_made(browser: Any, server: ServerThread) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(page)
    sign_in(page, server, OPERATOR)
    open_page(page, "#/enterprises", "enterprises")
    page.click("button[aria-label='设为免审 顺丰速运有限公司']")
    page.wait_for_selector("text=通知类名片免审，提交即生效")
    assert _api(server, "GET", "/api/enterprises/sf", OPERATOR)[1]["notification_trusted"] is True
    shot(page, "44-enterprise-trusted")
    card = {**edited("SF7000000000007"), "id": "trusted-note"}
    assert _api(server, "POST", "/api/enterprises/sf/cards", SF_KEY, card)[1]["review"]["state"] == "approved"
    marketing = {**card, "id": "trusted-ad", "class": "marketing"}
    assert (
        _api(server, "POST", "/api/enterprises/sf/cards", SF_KEY, marketing)[1]["review"]["state"]
        == "pending"
    )
    page.click("button[aria-label='取消免审 顺丰速运有限公司']")
    page.wait_for_selector("text=已取消免审")
    assert not _api(server, "GET", "/api/enterprises/sf", OPERATOR)[1].get("notification_trusted")
    # the enterprise's editor offers the class, and says what a save did
    ent = browser.new_page(viewport={"width": 1280, "height": 900})
    ent_probe = PageProbe(ent)
    sign_in(ent, server, SF_KEY)
    open_page(ent, "#/cards", "cards")
    assert "营销" in ent.inner_text("tr:has-text('trusted-ad')")
    ent.click("button[aria-label='编辑名片 trusted-ad']")
    ent.wait_for_selector("#phone-rcs .convo *", timeout=15_000)
    assert ent.input_value("select[name=class]") == "marketing"
    assert "遵守免打扰时段" in ent.inner_text(".editor-slot")
    assert "正在等待审核" in ent.inner_text(".editor-slot")
    ent.select_option("select[name=class]", "notification")
    ent.click("button:has-text('保存名片')")
    ent.wait_for_selector("text=已提交审核，通过后才会发送")
    assert "尚未发送" in ent.inner_text("tr:has-text('trusted-ad')")
    assert probe.errors == [] and probe.dialogs == []
    assert ent_probe.errors == [] and ent_probe.dialogs == []
