"""The studio in a real headless Chromium: edit → card changes, live reload keeps input, XSS probe,
profiles and share links, arrays, legacy numbered replies, chips, screenshots of every phone view."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import ARTIFACTS, PageProbe, ServerThread

Studio = tuple[ServerThread, Path]
CARD_TITLE = "#phone-rcs .card-title"


@pytest.fixture
def page(browser: Any, studio: Studio) -> Iterator[tuple[Any, PageProbe]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    probe = PageProbe(pg)
    yield pg, probe
    context.close()
    assert probe.errors == [], probe.errors
    assert probe.dialogs == [], f"a script ran: {probe.dialogs}"


def open_template(pg: Any, server: ServerThread, name: str, fragment: str = "") -> None:
    pg.goto(f"{server.url}/t/{name}{fragment}")
    pg.wait_for_selector("main[data-ready=true]")


def wait_rendered_after(pg: Any, before: int) -> int:
    pg.wait_for_function(f"() => Number(document.querySelector('main').dataset.renders || 0) > {before}")
    return int(pg.eval_on_selector("main", "m => m.dataset.renders"))


def renders(pg: Any) -> int:
    return int(pg.eval_on_selector("main", "m => m.dataset.renders || 0"))


def field(pg: Any, path: str) -> Any:
    return pg.locator(f'[data-path="{path}"]').locator("input, select, textarea").first


def test_edit_a_field_and_the_card_changes(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "courier-hangup")
    assert pg.text_content(CARD_TITLE) == "您的快递派送中"
    assert field(pg, "$.waybill").input_value() == "SF1234567890123"  # prefilled with the sample
    assert pg.locator('label:has-text("运单号") .req').count() == 1  # required marker
    # enum → select
    n = renders(pg)
    field(pg, "$.status").select_option(label="已签收")
    wait_rendered_after(pg, n)
    assert pg.text_content(CARD_TITLE) == "您的快递已签收"
    # nested object field
    n = renders(pg)
    field(pg, "$.courier.name").fill("欧阳娜娜")
    wait_rendered_after(pg, n)
    assert "欧**娜 刚刚联系过您" in pg.text_content("#phone-rcs .card-desc")
    # a bad value: the server's 422 problem is shown inline at that field, the card goes stale
    n = renders(pg)
    field(pg, "$.waybill").fill("bad waybill")
    wait_rendered_after(pg, n)
    err = pg.locator('[data-path="$.waybill"] .err')
    assert err.is_visible() and err.text_content() == "「运单号」须为 8–20 位大写字母或数字"
    assert field(pg, "$.waybill").get_attribute("aria-invalid") == "true"
    assert "数据有 1 处错误" in pg.text_content("#problem-list")
    assert pg.locator("#phone-rcs.stale").count() == 1
    assert pg.locator("#phone-rcs .stale-badge").is_visible()
    # a missing required nested field is reported at the field itself
    n = renders(pg)
    field(pg, "$.waybill").fill("SF42")
    field(pg, "$.courier.phone").fill("")
    wait_rendered_after(pg, n)
    assert pg.text_content('[data-path="$.courier.phone"] .err') == "「电话」必填"
    n = renders(pg)
    field(pg, "$.waybill").fill("SF1234567890")
    field(pg, "$.courier.phone").fill("95338")
    wait_rendered_after(pg, n)
    assert pg.locator("#problems").is_hidden()
    assert pg.locator("#phone-rcs.stale").count() == 0
    assert "运单号 SF1234567890" in pg.text_content("#phone-rcs .card-desc")


def test_arrays_add_and_remove_carousel_cards(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "ad-carousel")
    cards = pg.locator("#phone-rcs .carousel .rcs-card")
    start = cards.count()
    assert start >= 3
    n = renders(pg)
    pg.get_by_role("button", name=re.compile(f"删除商品第 {start} 项")).click()
    wait_rendered_after(pg, n)
    assert cards.count() == start - 1
    # a new, empty item: the server names each missing field of the new item by its path
    n = renders(pg)
    pg.get_by_role("button", name="添加商品").click()
    wait_rendered_after(pg, n)
    path = f"$.offers[{start - 1}].sku"
    assert pg.text_content(f'[data-path="{path}"] .err') == "「货号」必填"
    assert pg.evaluate("() => document.activeElement.closest('[data-path]').dataset.path") == path


def test_live_reload_keeps_form_input(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, templates = studio
    folder = templates / "personal-show"
    open_template(pg, server, "personal-show")
    pg.wait_for_function("() => document.querySelector('main').dataset.live === 'on'")
    n = renders(pg)
    field(pg, "$.nickname").fill("小蓝")
    wait_rendered_after(pg, n)
    title = pg.text_content(CARD_TITLE)
    assert "小蓝" in title
    card = folder / "card.yaml"
    source = card.read_text("utf-8")
    assert "{{ nickname }}{% if" in source
    card.write_text(source.replace("{{ nickname }}{% if", "★{{ nickname }}★{% if", 1), "utf-8")
    saved = time.monotonic()
    pg.wait_for_function(
        f"() => document.querySelector('{CARD_TITLE}').textContent.includes('★小蓝★')", timeout=5000
    )
    print(f"live reload: card updated {time.monotonic() - saved:.2f}s after the save")
    assert field(pg, "$.nickname").input_value() == "小蓝"  # the user's input survived
    # a schema change rebuilds the form around the user's values
    schema = folder / "schema.json"
    text = schema.read_text("utf-8")
    schema.write_text(
        text.replace(
            '"properties": {',
            '"properties": {\n    "city": {"type": "string", "title": "所在城市", "maxLength": 10},',
            1,
        ),
        "utf-8",
    )
    pg.wait_for_selector('[data-path="$.city"] input')
    assert field(pg, "$.nickname").input_value() == "小蓝"
    # a broken save shows file:line, and fixing it brings the preview back
    card.write_text('card:\n  title: "{{ nickname "\n', "utf-8")
    pg.wait_for_selector("#problem-list li.template-problem")
    assert "card.yaml" in pg.text_content("#problem-list")
    card.write_text(source, "utf-8")
    pg.wait_for_function(
        f"() => document.querySelector('{CARD_TITLE}').textContent.includes('小蓝') && "
        f"!document.querySelector('{CARD_TITLE}').textContent.includes('★')"
    )
    assert pg.locator("#problems").is_hidden()


def test_broken_template_shows_file_and_line_then_recovers(
    page: tuple[Any, PageProbe], studio: Studio
) -> None:
    pg, _ = page
    server, templates = studio
    card = templates / "staff-card" / "card.yaml"
    source = card.read_text("utf-8")
    card.write_text(source + "\n  title: [unclosed\n", "utf-8")
    try:
        open_template(pg, server, "staff-card")
        problem = pg.locator("#problem-list li.template-problem code.where").first
        assert re.search(r"staff-card/card\.yaml:\d+$", problem.text_content())
        assert pg.locator("#phone-rcs.stale").count() == 1
    finally:
        card.write_text(source, "utf-8")
    pg.locator(f"{CARD_TITLE}").first.wait_for()  # live reload brings the form and card back
    assert pg.locator("#problems").is_hidden()
    assert field(pg, "$.employee.name").input_value() != ""  # the sample data, now the schema is known


XSS = ['<script>alert("s")</script>', '<img src=x onerror=alert("i")>']


def test_xss_probe_every_field(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "courier-hangup")
    # Free-text fields that pass validation: the payload is displayed as text on every phone.
    n = renders(pg)
    field(pg, "$.eta").fill(XSS[1])
    field(pg, "$.pickup_point").fill(XSS[0])
    field(pg, "$.courier.name").fill(XSS[0][:20])
    wait_rendered_after(pg, n)
    desc = pg.text_content("#phone-rcs .card-desc")
    assert XSS[1] in desc and XSS[0] in desc
    assert XSS[1] in pg.text_content("#phone-sms .legacy-text")
    assert pg.locator('img[src="x"], script:not([src])').count() == 0
    # Every field at once (most now fail validation, and the errors quote the values).
    n = renders(pg)
    for control in pg.locator(
        "#data-form input[type=text], #data-form input[type=url], #data-form textarea"
    ).all():
        control.fill(XSS[0] if "script" not in control.input_value() else XSS[1])
    wait_rendered_after(pg, n)
    # the problems name fields by title and never echo the values; nothing was parsed as markup
    assert pg.locator("#problems").is_visible() and "「运单号」" in pg.text_content("#problems")
    assert pg.locator('img[src="x"], script:not([src])').count() == 0
    # The payload also travels safely through a share link.
    pg.click("#share")
    pg.wait_for_function("() => location.hash.startsWith('#s=')")
    url = pg.evaluate("() => location.href")
    pg.goto("about:blank")
    pg.goto(url)
    pg.wait_for_selector("main[data-ready=true]")
    assert field(pg, "$.eta").input_value() in XSS
    assert pg.locator('img[src="x"], script:not([src])').count() == 0
    assert pg.evaluate("() => window.__xss") is None


def test_profile_switch_and_share_link(page: tuple[Any, PageProbe], studio: Studio, browser: Any) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "bank-identity")
    card = pg.locator("#phone-rcs .rcs-card")
    assert "horizontal" in card.get_attribute("class")  # layout.cardOrientation of the payload
    assert card.evaluate("c => c.querySelector('.card-body').getBoundingClientRect().width") > 200
    options = pg.locator("#profile option")
    assert options.count() >= 4
    n = renders(pg)
    assert "轮播 2–10 张" in pg.text_content("#profile-limits")
    pg.select_option("#profile", "china-telecom")
    wait_rendered_after(pg, n)
    assert "轮播 2–12 张" in pg.text_content("#profile-limits")
    pg.click("#raw-box summary")
    assert '"profile": "china-telecom"' in pg.text_content("#raw")
    n = renders(pg)
    field(pg, "$.customer_title").fill("李女士")
    wait_rendered_after(pg, n)
    pg.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    pg.click("#share")
    pg.wait_for_function("() => document.querySelector('#share').dataset.url")
    url = pg.eval_on_selector("#share", "b => b.dataset.url")
    assert "#s=" in url and "李女士" not in url  # compressed and encoded
    assert pg.evaluate("() => navigator.clipboard.readText()") == url
    pg.click("#copy-raw")  # the raw payload's copy button
    pg.wait_for_function("() => navigator.clipboard.readText().then(t => t.includes('china-telecom'))")
    other = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    probe = PageProbe(other)
    other.goto(url)
    other.wait_for_selector("main[data-ready=true]")
    assert other.eval_on_selector("#profile", "s => s.value") == "china-telecom"
    assert field(other, "$.customer_title").input_value() == "李女士"
    assert "李女士" in other.text_content(CARD_TITLE)
    other.context.close()
    assert probe.errors == []


def test_tap_a_chip_and_the_bot_replies(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "courier-hangup")
    rcs = pg.locator("#phone-rcs")
    # An action button: the phone shows what it does locally, and the bot gets the postback.
    rcs.get_by_role("button", name="打开链接：查询物流").click()
    reply = rcs.locator(".reply .card-title")
    reply.first.wait_for()
    assert reply.first.text_content() == "运单 SF1234567890123：派送中"
    assert "https://www.sf-express.com/track?no=SF1234567890123" in rcs.locator(".sys").first.text_content()
    assert rcs.locator(".bubble.user").first.text_content() == "查询物流"
    # The conversation continues from a button of the bot's own card.
    rcs.locator(".reply").first.get_by_role("button", name="回复：改约派送").click()
    pg.wait_for_function(
        "() => [...document.querySelectorAll('#phone-rcs .reply .card-title')]"
        ".some(t => t.textContent === '请选择新的派送时间')"
    )
    pg.click("#raw-box summary")
    pg.select_option("#raw-kind", "chat")
    assert '"node": "reschedule"' in pg.text_content("#raw")


def test_chips_are_tappable_and_answered(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "ad-carousel")
    chips = pg.locator("#phone-rcs .chips button.chip")
    assert chips.count() == 2  # 联系门店 (dial) and 退订 (reply), after the carousel
    assert pg.locator("#phone-rcs button.unanswered").count() == 0  # the shop's flow answers them all
    chips.nth(1).click()
    pg.wait_for_selector("#phone-rcs .bubble.user")
    pg.wait_for_function("() => document.querySelector('#phone-rcs .convo').textContent.includes('退订成功')")


def test_numbered_replies_on_legacy_screens(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "courier-hangup")
    sms = pg.locator("#phone-sms")
    box = sms.locator("input.legacy-input")
    box.fill("回复3")  # the card's third button, 改约派送
    box.press("Enter")
    sms.locator(".reply").first.wait_for()
    assert "回复 3 → reschedule:SF1234567890123" in sms.locator(".legacy-replies").text_content()
    assert sms.locator(".reply").first.text_content().startswith("【顺丰速运】请选择新的派送时间")
    box.fill("1")  # now answers the bot's own SMS menu: 今天 18:00-21:00
    sms.locator("button", has_text="发送").click()
    pg.wait_for_function("() => document.querySelectorAll('#phone-sms .reply').length === 2")
    assert "改约成功" in sms.locator(".reply").nth(1).text_content()
    # USSD: a number that is not on the menu is refused on the phone itself
    ussd = pg.locator("#phone-ussd")
    ussd.locator("input.legacy-input").fill("9")
    ussd.locator("input.legacy-input").press("Enter")
    pg.wait_for_function(
        "() => document.querySelector('#phone-ussd .legacy-replies').textContent.includes('没有第 9 项')"
    )


def test_rendered_image_and_video(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "courier-hangup")
    caps = pg.evaluate("() => fetch('/api/capabilities').then(r => r.json())")
    if "png" not in caps["formats"] or "mp4" not in caps["formats"]:
        pytest.skip("media formats are not registered on this server")
    img = pg.locator("#phone-image img.rendered")
    img.wait_for()
    assert re.search(r"/media/[0-9a-f]+\.png$", img.get_attribute("src"))
    pg.wait_for_function("() => document.querySelector('#phone-image img.rendered').naturalWidth > 0")
    pg.click("#phone-video button.make-video")
    video = pg.locator("#phone-video video.rendered")
    video.wait_for(timeout=60_000)
    assert re.search(r"/media/[0-9a-f]+\.mp4$", video.get_attribute("src"))
    pg.wait_for_function("() => document.querySelector('#phone-video video.rendered').readyState >= 1")
    # the 5G view can show the rendered media slot instead of a placeholder
    pg.select_option("#media-mode", "card")
    pg.locator("#phone-rcs .media img").wait_for()
    assert "/media/" in pg.get_attribute("#phone-rcs .media img", "src")


def test_keyboard_and_labels(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    open_template(pg, server, "gov-hotline")
    unlabeled = pg.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.outerHTML)""")
    assert unlabeled == []
    # Tab from the page start reaches the form and, later, the card's buttons
    reached = set()
    pg.focus("body")
    for _ in range(60):
        pg.keyboard.press("Tab")
        reached.add(pg.evaluate("() => document.activeElement.closest('#data-form, #phone-rcs')?.id || ''"))
    assert {"data-form", "phone-rcs"} <= reached
    # Enter on a focused card button activates it (a real button)
    pg.locator("#phone-rcs button.sugg").first.focus()
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#phone-rcs .bubble.user")


def test_gallery_and_screenshots_of_every_phone(page: tuple[Any, PageProbe], studio: Studio) -> None:
    pg, _ = page
    server, _ = studio
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.goto(server.url + "/")
    pg.wait_for_selector("main[data-ready=true]")
    assert pg.locator(".tile").count() >= 6
    assert pg.locator(".thumb .rcs-card, .thumb img").count() >= 6
    pg.screenshot(path=str(ARTIFACTS / "gallery.png"), full_page=True)
    pg.click('a[href="/t/ad-carousel"]')
    pg.wait_for_selector("main[data-ready=true]")
    pg.screenshot(path=str(ARTIFACTS / "ad-carousel.png"), full_page=True)
    open_template(pg, server, "courier-hangup")
    pg.locator("#phone-image img.rendered, #phone-image.off").first.wait_for()
    pg.evaluate("() => document.fonts.ready.then(() => true)")
    for view in ("rcs", "image", "video", "ussd", "flash", "sms"):
        pg.locator(f"#phone-{view}").screenshot(path=str(ARTIFACTS / f"phone-{view}.png"))
        assert (ARTIFACTS / f"phone-{view}.png").stat().st_size > 1000
    # Narrow window: one column, nothing wider than the screen.
    pg.set_viewport_size({"width": 380, "height": 800})
    pg.screenshot(path=str(ARTIFACTS / "narrow.png"), full_page=True)
    assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_panels_stay_dark_without_their_backends(browser: Any, tmp_path: Path) -> None:
    """A server with only the core rcs format and no chatbot: the studio says what is missing
    instead of pretending, and the gallery falls back to HTML mini-cards."""
    from mingpian.api.templates import formats_key
    from mingpian.settings import PROJECT_ROOT, Settings

    def core_only(app: Any) -> None:
        formats = app[formats_key]
        for fmt in [f for f in formats if f != "rcs"]:
            del formats[fmt]

    (tmp_path / "no-bots").mkdir()
    settings = Settings(
        template_dir=PROJECT_ROOT / "card_templates",
        data_dir=tmp_path / "var",
        chatbot_dir=tmp_path / "no-bots",
        log_format="text",
        log_level="WARNING",
    )
    server = ServerThread(settings, core_only).start()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    probe = PageProbe(pg)
    try:
        pg.goto(server.url + "/")
        pg.wait_for_selector("main[data-ready=true]")
        assert pg.locator(".thumb.mini-card .rcs-card").count() >= 6
        assert pg.locator(".thumb img").count() == 0
        open_template(pg, server, "courier-hangup")
        for view, words in (
            ("image", "图片"),
            ("video", "视频"),
            ("ussd", "USSD"),
            ("flash", "闪信"),
            ("sms", "短信"),
        ):
            assert pg.locator(f"#phone-{view}.off").count() == 1, view
            assert f"没有启用{words}渲染" in pg.text_content(f"#phone-{view} .off-text")
        assert pg.locator(".media-mode").is_hidden()
        pg.get_by_role("button", name="回复：改约派送").click()
        pg.wait_for_function(
            "() => document.querySelector('#phone-rcs .convo').textContent.includes('聊天机器人未启用')"
        )
        assert "reschedule:SF1234567890123" in pg.text_content("#phone-rcs .convo")
    finally:
        context.close()
        server.stop()
    assert probe.errors == [] and probe.dialogs == []
