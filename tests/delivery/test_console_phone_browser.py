"""Every console page at a phone's width (390 px, Chromium through Playwright), for the
enterprise and for the operator: the page is no wider than the screen, every visible button,
field and link can be reached (inside the screen, or inside a table that scrolls sideways and
is itself inside the screen), and the menu's items are one line each. Screenshots in
test-artifacts/console/phone/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mingpian.settings import PROJECT_ROOT
from simulators.seeds import seed_doc
from tests.support.browser import VISIBLE_TEXT, PageProbe, ServerThread, english_words, latin_words_of

from .support import OPERATOR, SF_KEY, seeded_server
from .test_console_browser import ENTERPRISE_PAGES, OPERATOR_PAGES, _api, open_page, sign_in

SHOTS = PROJECT_ROOT / "test-artifacts" / "console" / "phone"
WIDTH = 390

# What cannot be reached at this width: controls outside the screen and not inside a sideways
# scrolling table box that is itself on the screen; menu items taller than one line.
UNREACHABLE = """(width) => {
  const out = [];
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && !el.closest('[hidden], details:not([open]) > :not(summary)');
  };
  for (const el of document.querySelectorAll('button, input, select, textarea, a[href]')) {
    if (!visible(el) || el.type === 'hidden' || el.matches('.skip')) continue;  // shown on focus
    const r = el.getBoundingClientRect();
    if (r.left >= -1 && r.right <= width + 1) continue;
    const wrap = el.closest('.table-wrap');
    if (wrap) {
      const w = wrap.getBoundingClientRect();
      const st = getComputedStyle(wrap);
      if (['auto', 'scroll'].includes(st.overflowX) && w.left >= -1 && w.right <= width + 1) continue;
    }
    out.push(`${el.tagName.toLowerCase()} «${(el.innerText || el.value || el.name || el.getAttribute('aria-label') || '').trim().slice(0, 30)}» at ${Math.round(r.left)}–${Math.round(r.right)}`);
  }
  for (const a of document.querySelectorAll('#nav a, #nav button')) {
    const h = a.getBoundingClientRect().height;
    if (h > 48) out.push(`menu item «${a.innerText.trim()}» ${Math.round(h)} px tall`);
  }
  const sw = document.documentElement.scrollWidth;
  if (sw > width) out.push(`the page is ${sw} px wide`);
  return out;
}"""


# Latin words a console page may show: the enterprises' own data (ids, templates, the seed file),
# version names, the opt-out keyword, a unit, the staff file's column syntax, the tests' packages.
OWN_WORDS = latin_words_of(seed_doc()) | {
    "courier-hangup",
    "staff-card",
    "seed.yaml",
    "v1",
    "v2",
    "TD",
    "KB",
    "UTF-8",
    "employee.name",
    "employee.mobile",
    "q1-utc",
    "q1-america-new_york",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv, _ = seeded_server(tmp_path_factory.mktemp("console-phone"))
    yield srv
    srv.stop()


def _check(page: Any, hash_: str, name: str, tag: str, width: int = WIDTH) -> list[str]:
    open_page(page, hash_, name)
    page.wait_for_timeout(150)  # charts draw at their box's width after a resize observation
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{tag}-{name}.png"), full_page=True)
    foreign = english_words(page.evaluate(VISIBLE_TEXT), OWN_WORDS)
    return [f"{tag} {name}: {p}" for p in page.evaluate(UNREACHABLE, width)] + (
        [f"{tag} {name}: words not in Chinese {sorted(set(foreign))}"] if foreign else []
    )


@pytest.mark.parametrize("width", [WIDTH, 360])
def test_every_enterprise_page_fits_a_phone(browser: Any, server: ServerThread, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 844})
    probe = PageProbe(page)
    sign_in(page, server, SF_KEY)
    problems: list[str] = []
    for name in ENTERPRISE_PAGES:
        problems += _check(page, f"#/{name}", name, f"sf{width}", width)
    assert problems == [], "\n".join(problems)
    # the editors a page opens fit too: a new card with its phones, a line being edited
    open_page(page, "#/cards", "cards")
    page.click("button:has-text('新建名片')")
    page.wait_for_selector("#phone-rcs .convo *", timeout=15_000)
    problems += [f"card editor: {p}" for p in page.evaluate(UNREACHABLE, width)]
    open_page(page, "#/lines", "lines")
    page.locator("button", has_text="编辑").first.click()
    page.wait_for_selector(".editor-slot form")
    problems += [f"line editor: {p}" for p in page.evaluate(UNREACHABLE, width)]
    assert problems == [], "\n".join(problems)
    # the reports page is the one at /reports: its stylesheet, its figures, charts at the box's width
    open_page(page, "#/reports", "reports")
    looks = page.evaluate("""() => ({
      legend: getComputedStyle(document.querySelector('.reports .legend')).display,
      bullets: getComputedStyle(document.querySelector('.reports .legend')).listStyleType,
      captions: [...document.querySelectorAll('.reports .charts figcaption')].map((f) => f.textContent),
      widest: Math.max(...[...document.querySelectorAll('.reports svg')].map((s) => s.getBoundingClientRect().right)),
      totals: document.querySelectorAll('.reports .totals li').length,
    })""")
    assert looks["legend"] == "flex" and looks["bullets"] == "none"
    assert {"套餐余量", "各渠道送达率", "费用（元，按天）", "退订（按天）"} <= set(looks["captions"])
    assert looks["widest"] <= width and looks["totals"] == 4
    assert probe.errors == []
    page.close()


@pytest.mark.parametrize("width", [WIDTH, 360])
def test_every_operator_page_fits_a_phone(browser: Any, server: ServerThread, width: int) -> None:
    line = {"number": "13700003333", "label": "华南区客服热线（夜间）", "evidence": "营业执照 91440300"}
    assert _api(server, "POST", "/api/enterprises/sf/lines", SF_KEY, line)[0] in (201, 409)
    page = browser.new_page(viewport={"width": width, "height": 844})
    probe = PageProbe(page)
    page.goto(f"{server.url}/console")
    page.wait_for_selector("main[data-ready=signin]")
    problems = [f"sign-in: {p}" for p in page.evaluate(UNREACHABLE, width)]
    sign_in(page, server, OPERATOR)
    for name in OPERATOR_PAGES:
        problems += _check(page, f"#/{name}", name, f"op{width}", width)
        if name == "queue":  # the number waiting for review: its decision on the screen
            assert page.locator("button", has_text="通过").first.is_visible()
    for name in ENTERPRISE_PAGES:  # the operator looking at one enterprise
        problems += _check(page, f"#/e/sf/{name}", name, f"op{width}-sf", width)
    assert problems == [], "\n".join(problems)
    assert probe.errors == []
    page.close()


def test_the_words_are_the_readers_own(browser: Any, server: ServerThread) -> None:
    """The enterprise by its name, numbers as people in China read them, the audit log's objects
    and an operator's key in Chinese."""
    line = {"number": "0755-8888 1234", "label": "深圳总部"}
    assert _api(server, "POST", "/api/enterprises/sf/lines", SF_KEY, line)[0] in (201, 409)
    page = browser.new_page(viewport={"width": WIDTH, "height": 844})
    probe = PageProbe(page)
    sign_in(page, server, OPERATOR)
    open_page(page, "#/enterprises", "enterprises")
    page.locator("tr", has_text="顺丰速运有限公司").locator("button", has_text="签发密钥").click()
    page.wait_for_selector("text=新密钥")
    open_page(page, "#/e/sf/keys", "keys")
    keys = page.inner_text("main")
    assert "运营方签发" in keys and "operator" not in keys
    assert "企业：顺丰速运有限公司" in page.inner_text("#nav")
    open_page(page, "#/queue", "queue")
    queue = page.inner_text("main")
    assert "0755-8888 1234" in queue and "+86755" not in queue
    page.close()

    page = browser.new_page(viewport={"width": WIDTH, "height": 844})
    sign_in(page, server, SF_KEY)
    page.wait_for_function("() => document.querySelector('#who').textContent.includes('顺丰')")
    assert page.inner_text("#who") == "企业：顺丰速运有限公司"
    open_page(page, "#/lines", "lines")
    lines = page.inner_text("main")
    assert "0755-8888 1234" in lines and "138 0000 0001" in lines and "+86" not in lines
    page.fill("input[name=q]", "0755-8888 1234")  # searched as it is shown
    page.press("input[name=q]", "Enter")
    page.wait_for_selector(".paged[data-total='1']")
    assert "深圳总部" in page.inner_text(".paged")
    open_page(page, "#/audit", "audit")
    log = page.inner_text("main")
    assert "线路 0755-8888 1234" in log
    for word in ("line:", "card:", "staff", "package:", "operator"):
        assert word not in log
    # a field named by its title, the JSON path left to programs
    open_page(page, "#/dry-run", "dry-run")
    page.fill("input[name=line]", "13800000001")
    page.fill("input[name=to]", "电话号码")
    page.click("button:has-text('试拨')")
    page.wait_for_selector(".notice.error")
    said = page.inner_text(".notice.error")
    assert "对方号码" in said and "$" not in said, said
    assert probe.errors == []
    page.close()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_package_days_are_whole_china_days_in_any_zone(browser: Any, server: ServerThread, zone: str) -> None:
    """A package opened from 2027-01-01 to 2027-03-31 covers the whole of 03-31 in China, and
    every page shows those two China dates whatever the browser's zone."""
    ctx = browser.new_context(viewport={"width": WIDTH, "height": 844}, timezone_id=zone)
    page = ctx.new_page()
    probe = PageProbe(page)
    sign_in(page, server, OPERATOR)
    open_page(page, "#/pools", "pools")
    page.select_option("select[name=enterprise]", "cmb")
    pid = f"q1-{zone.replace('/', '-').lower()}"
    page.fill("input[name=id]", pid)
    page.fill("input[name=units]", "1000")
    page.fill("input[name=valid_from]", "2027-01-01")
    page.fill("input[name=valid_to]", "2027-03-31")
    page.click("button:has-text('开通套餐')")
    page.wait_for_selector(f"text=已为 cmb 开通 {pid}")
    doc = _api(server, "GET", f"/api/enterprises/cmb/packages/{pid}", OPERATOR)[1]
    assert doc["valid_from"] == datetime(2026, 12, 31, 16, tzinfo=UTC).timestamp()  # 01-01 00:00 +08
    assert doc["valid_to"] == datetime(2027, 3, 31, 16, tzinfo=UTC).timestamp()  # the end of 03-31 +08
    page.wait_for_selector(f"tr:has-text('{pid}')")
    assert "2027-03-31" in page.locator("tr", has_text=pid).last.inner_text()
    open_page(page, "#/e/cmb/packages", "packages")
    row = page.locator("tr", has_text=pid).last.inner_text()
    assert "2027-01-01" in row and "2027-03-31" in row and "2026-12-31" not in row and "2027-03-30" not in row
    assert probe.errors == []
    ctx.close()


def test_every_part_of_the_site_links_to_the_others(browser: Any, server: ServerThread) -> None:
    """The studio, the console, the reports and the guide each carry the same small nav in their
    header, the page itself marked, and it fits a phone."""
    page = browser.new_page(viewport={"width": WIDTH, "height": 844})
    probe = PageProbe(page)
    wanted = {"设计室": "/", "控制台": "/console", "报表": "/reports", "使用指南": "/docs"}
    for path in ("/", "/console", "/reports", "/docs", "/docs/guide/enterprise"):
        page.goto(server.url + path)
        nav = page.locator("header nav.site")
        links = dict(
            nav.locator("a").evaluate_all("els => els.map((a) => [a.textContent, a.getAttribute('href')])")
        )
        assert {k: links.get(k) for k in wanted} == wanted, path
        here = nav.locator("a[aria-current=page]").all_text_contents()
        assert here == [
            next(k for k, v in wanted.items() if path.startswith(v) and (v != "/" or path == "/"))
        ]
        assert page.evaluate(UNREACHABLE, WIDTH) == [], path
    assert probe.errors == []
    page.close()
