"""The studio as a Chinese-speaking designer sees it, in a real Chromium: no English words of
the studio's own, replies readable on every phone (contrast computed from computed styles),
long problem paths that wrap, a visible 未更新 on stale renders, the docs and the API explorer."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    ARTIFACTS,
    VISIBLE_TEXT,
    PageProbe,
    ServerThread,
    english_words,
    latin_words_of,
)

Studio = tuple[ServerThread, Path]

# Each text element inside the phones: its colour against the first opaque background behind
# it (WCAG relative luminance; semi-transparent colours blended over that background).
CONTRAST = """(root) => {
  const rgba = (s) => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const blend = (fg, bg) => [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3]));
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let bg = [255, 255, 255];
    for (const c of layers.reverse()) bg = blend(c, bg);
    return bg;
  };
  const out = [];
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walk.nextNode()) {
    const el = walk.currentNode.parentElement;
    if (!el || seen.has(el) || !walk.currentNode.textContent.trim()) continue;
    seen.add(el);
    if (!el.getBoundingClientRect().width || el.closest('[hidden], .stale, .off, svg')) continue;
    const bg = background(el);
    const fg = blend(rgba(getComputedStyle(el).color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({text: el.textContent.trim().slice(0, 30), cls: el.className, ratio: (a + 0.05) / (b + 0.05)});
  }
  return out;
}"""


@pytest.fixture
def pg(browser: Any, studio: Studio) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    probe = PageProbe(page)
    yield page
    context.close()
    assert probe.errors == [], probe.errors


def _designer_words(server: ServerThread, name: str) -> set[str]:
    """Latin words the template and its sample data bring: content, not the studio's words."""
    with urllib.request.urlopen(f"{server.url}/api/templates/{name}", timeout=10) as resp:
        detail = json.load(resp)
    return latin_words_of(detail) | {name}


def _names(server: ServerThread) -> list[str]:
    with urllib.request.urlopen(f"{server.url}/api/templates", timeout=10) as resp:
        return [t["name"] for t in json.load(resp)["templates"] if t["ok"]]


def test_no_english_of_the_studio_on_any_page(pg: Any, studio: Studio) -> None:
    server, _ = studio
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    names = _names(server)
    pg.goto(server.url + "/")
    pg.wait_for_selector("main[data-ready=true]")
    everything = set().union(*(_designer_words(server, n) for n in names))
    assert english_words(pg.evaluate(VISIBLE_TEXT), everything) == []
    for name in names:
        pg.goto(f"{server.url}/t/{name}")
        pg.wait_for_selector("main[data-ready=true]")
        pg.locator("#phone-image img.rendered, #phone-image.off, #phone-image.stale").first.wait_for()
        pg.evaluate("() => document.fonts.ready.then(() => true)")
        found = english_words(pg.evaluate(VISIBLE_TEXT), _designer_words(server, name))
        assert found == [], f"{name}: {found}"
        pg.screenshot(path=str(ARTIFACTS / f"studio-{name}.png"), full_page=True)
    # an invalid edit: the problems, the stale phones and their notes are Chinese too
    pg.goto(f"{server.url}/t/courier-hangup")
    pg.wait_for_selector("main[data-ready=true]")
    pg.locator('[data-path="$.waybill"] input').fill("sf-123")
    pg.wait_for_selector("#phone-rcs.stale")
    found = english_words(pg.evaluate(VISIBLE_TEXT), _designer_words(server, "courier-hangup") | {"sf-123"})
    assert found == [], found
    problems = pg.text_content("#problems")
    assert "「运单号」须为 8–20 位大写字母或数字" in problems and "^" not in problems
    hint = pg.text_content('[data-path="$.waybill"] .hint')
    assert "8–20 位大写字母或数字" in hint and "[A-Z" not in hint  # the pattern in words, not as regex
    pg.screenshot(path=str(ARTIFACTS / "studio-invalid-edit.png"), full_page=True)


def test_every_phone_is_readable_including_the_bots_replies(pg: Any, studio: Studio) -> None:
    server, _ = studio
    pg.goto(f"{server.url}/t/courier-hangup")
    pg.wait_for_selector("main[data-ready=true]")
    for lane in ("ussd", "flash", "sms"):
        box = pg.locator(f"#phone-{lane} input.legacy-input")
        box.fill("3")  # 改约派送: the bot answers with an SMS menu
        box.press("Enter")
        pg.locator(f"#phone-{lane} .bubble.reply").first.wait_for()
    pg.get_by_role("button", name="回复：改约派送").click()
    pg.locator("#phone-rcs .reply").first.wait_for()
    low = [r for r in pg.evaluate(CONTRAST, pg.query_selector("#phones")) if r["ratio"] < 4.5]
    assert low == [], low
    replies = pg.evaluate(CONTRAST, pg.query_selector("#phone-ussd .legacy-replies"))
    assert replies and min(r["ratio"] for r in replies) >= 4.5  # the reply on the dark USSD screen
    for lane in ("ussd", "flash"):
        pg.locator(f"#phone-{lane}").screenshot(path=str(ARTIFACTS / f"phone-{lane}-reply.png"))


def test_an_invalid_edit_marks_every_shown_render_stale(pg: Any, studio: Studio) -> None:
    server, _ = studio
    pg.goto(f"{server.url}/t/courier-hangup")
    pg.wait_for_selector("main[data-ready=true]")
    pg.locator("#phone-image img.rendered, #phone-image.off").first.wait_for()
    assert pg.locator(".stale-badge:visible").count() == 0
    pg.locator('[data-path="$.waybill"] input').fill("bad")
    pg.wait_for_selector("#phone-rcs.stale")
    for view in ("rcs", "image", "ussd", "flash", "sms"):
        if pg.locator(f"#phone-{view}.off").count():
            continue
        badge = pg.locator(f"#phone-{view} .stale-badge")
        assert badge.is_visible() and badge.text_content() == "未更新", view
        assert pg.text_content(f"#phone-{view} .phone-note").startswith("未更新："), view
    pg.locator('[data-path="$.waybill"] input').fill("SF1234567890123")
    pg.wait_for_function("() => !document.querySelector('#phone-rcs.stale')")
    pg.wait_for_function("() => !document.querySelector('#phone-image.stale')")
    assert pg.locator(".stale-badge:visible").count() == 0


def test_a_long_payload_path_wraps_inside_the_error_box(pg: Any, studio: Studio) -> None:
    server, _ = studio
    long_path = "$.message.generalPurposeCardCarousel.content[0].suggestions[3].action.mapAction.showLocation.fallbackUrl"
    body = {
        "error": "limit_exceeded",
        "message": "the card breaks a carrier limit",
        "problems": [{"path": long_path, "message": "网址有 3000 个字，最多 2048 个字", "code": "too_long"}],
    }

    def refuse(route: Any) -> None:
        if "format=" in route.request.url:
            route.continue_()
        else:
            route.fulfill(
                status=422, content_type="application/json", body=json.dumps(body, ensure_ascii=False)
            )

    pg.set_viewport_size({"width": 900, "height": 900})
    pg.goto(f"{server.url}/t/courier-hangup")
    pg.wait_for_selector("main[data-ready=true]")
    pg.route("**/api/templates/courier-hangup/render*", refuse)
    pg.locator('[data-path="$.eta"] input').fill("明天上午")
    pg.wait_for_selector("#problems:not([hidden])")
    assert long_path in pg.text_content("#problems")
    assert "卡片超出运营商限制（1 处）" in pg.text_content("#problems")
    overflow = pg.evaluate("""() => [...document.querySelectorAll('#problems, #problems li, #problems code')]
        .filter((el) => el.scrollWidth > el.clientWidth + 1 ||
          el.getBoundingClientRect().right > document.querySelector('#problems').getBoundingClientRect().right + 1)
        .map((el) => el.outerHTML.slice(0, 80))""")
    assert overflow == []
    pg.locator("#problems").screenshot(path=str(ARTIFACTS / "problems-long-path.png"))


def test_docs_pages_and_the_api_explorer(pg: Any, studio: Studio) -> None:
    server, _ = studio
    pg.goto(server.url + "/")
    pg.click("header >> text=使用指南")
    pg.wait_for_selector("main[data-ready=true]")
    # /docs opens on the Chinese guide; its menu lists pages by title, the guide first
    assert pg.locator("article.doc h1").first.text_content() == "名片使用指南"
    groups = pg.locator(".doc-list h2").all_text_contents()
    assert groups == ["使用指南（中文）", "参考资料（英文）"]
    pg.click(".doc-list >> text=设计师指南：写名片模板")
    pg.wait_for_selector("article.doc[lang=zh-CN] h1")
    assert pg.url.endswith("/docs/guide/designer")
    pg.click(".doc-list >> text=Card templates")
    pg.wait_for_selector("article.doc h1")
    assert pg.url.endswith("/docs/templates")
    pg.screenshot(path=str(ARTIFACTS / "docs-templates.png"), full_page=False)
    pg.click("header >> text=API")
    pg.wait_for_selector("main[data-ready=true] .api-group")
    assert pg.url.endswith("/api")
    ops = pg.locator("details.op")
    assert ops.count() > 20
    health = pg.locator('details.op[data-path="/healthz"]')
    health.locator("summary").click()
    health.locator("button.send").click()
    pg.wait_for_selector('details.op[data-path="/healthz"] .result-body')
    assert '"status": "ok"' in health.locator(".result-body").text_content()
    assert "200" in health.locator(".result-head").text_content()
    # a path parameter and a JSON body: render a template from the explorer
    render = pg.locator('details.op[data-path="/api/templates/{name}/render"][data-method="post"]')
    render.locator("summary").click()
    render.locator(".try-field input").first.fill("personal-show")
    render.locator("textarea").fill(json.dumps({"nickname": "阿强", "motto": "加油"}, ensure_ascii=False))
    render.locator("button.send").click()
    pg.wait_for_function(
        """() => (document.querySelector('details.op[data-path="/api/templates/{name}/render"][data-method="post"] .result-body')
          || {}).textContent?.includes('阿强')"""
    )
    pg.fill("#api-filter", "healthz")
    assert pg.locator("details.op:visible").count() == 1
    pg.fill("#api-filter", "")
    # the explorer's own words are Chinese (paths, methods and parameter names are the API's)
    words = pg.evaluate(
        "() => [...document.querySelectorAll('.explorer-head, .op-body h4, .params th, .api-group h2, .try h4')]"
        ".map((e) => e.textContent).join(' ')"
    )
    assert english_words(words, {"HTTP", "OpenAPI"}) == []
    # grouped by the document's Chinese tags, in its order; every summary is Chinese
    spec = pg.evaluate("async () => (await fetch('/api/openapi.json')).json()")
    headings = pg.locator(".api-group").evaluate_all("(gs) => gs.map((g) => g.dataset.tag)")
    assert headings == [t["name"] for t in spec["tags"]]
    sums = pg.locator(".op-sum").all_text_contents()
    assert len(sums) == ops.count() and all(re.search(r"[\u4e00-\u9fff]", s) for s in sums)
    pg.screenshot(path=str(ARTIFACTS / "api-explorer.png"), full_page=False)
