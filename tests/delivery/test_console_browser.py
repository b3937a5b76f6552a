"""The console in Chromium (Debian's, driven by Playwright): the enterprise's journey (sign in →
add a line → a hang-up card → dry run → import 1,000 staff → issue a key), the operator's
(verify a number, approve a brand change, suspend an enterprise, top up a pool), every page without a script error or CSP violation,
at phone width too, XSS probes in every field, a write from another origin, another
enterprise's ids through the page's own requests; screenshots in test-artifacts/console/.

Why one module of this length: the journeys share one browser, one server and one seeded
database, started once for the module.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from mingpian.settings import PROJECT_ROOT
from tests.support.browser import PageProbe, ServerThread
from tests.support.processes import free_port

from .support import CMB_KEY, OPERATOR, SF_KEY, seeded_server

SHOTS = PROJECT_ROOT / "test-artifacts" / "console"
XSS = '<img src=x onerror="window.__xss=1">'
ENTERPRISE_PAGES = [
    "lines",
    "cards",
    "dry-run",
    "staff",
    "media",
    "keys",
    "optouts",
    "audit",
    "packages",
    "reports",
]
OPERATOR_PAGES = ["enterprises", "queue", "reviews", "brands", "pools", "fleet"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv, _ = seeded_server(tmp_path_factory.mktemp("console"))
    yield srv
    srv.stop()


def _api(server: ServerThread, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def sign_in(page: Any, server: ServerThread, key: str) -> None:
    page.goto(f"{server.url}/console")
    page.wait_for_selector("main[data-ready=signin]")
    page.fill("input[name=key]", key)
    page.press("input[name=key]", "Enter")
    page.wait_for_selector("#nav a")


def open_page(page: Any, hash_: str, name: str) -> None:
    page.evaluate("h => { location.hash = h; }", hash_)
    page.wait_for_selector(f"main[data-ready='{name}']", timeout=15_000)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def staff_file(rows: int, bad: dict[int, str] | None = None) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "name", "employee.name", "employee.title", "employee.mobile"])
    for i in range(rows):
        w.writerow([f"k{i}", f"快递员{i}", f"快递员{i}", "快递员", (bad or {}).get(i, f"139{i:08d}")])
    return out.getvalue().encode()


def test_enterprise_journey(browser: Any, server: ServerThread) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(page)
    page.goto(f"{server.url}/console")
    page.wait_for_selector("main[data-ready=signin]")
    page.fill("input[name=key]", "mpk_wrong")
    page.press("input[name=key]", "Enter")
    page.wait_for_selector(".notice.error")
    assert "密钥不正确" in page.inner_text(".notice.error")
    shot(page, "01-sign-in-wrong-key")
    page.fill("input[name=key]", SF_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("main[data-ready=lines]")
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: the page cannot read it
    assert page.evaluate("() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
    # add a line
    page.fill("form.grid-form input[name=number]", "138 1234 5678")
    page.fill("form.grid-form input[name=label]", "朝阳网点")
    page.fill("form.grid-form input[name=group]", "网点")
    page.fill("form.grid-form input[name=evidence]", "营业执照 91110000")
    page.click("button:has-text('添加线路')")
    page.wait_for_selector("text=已添加 138 1234 5678")
    page.fill("input[name=q]", "朝阳")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector(".paged[data-total='1']")
    assert "待审核" in page.inner_text(".paged")
    shot(page, "02-line-added")
    # a hang-up card for that line, previewed on the phones with its cost
    open_page(page, "#/cards", "cards")
    page.click("button:has-text('新建名片')")
    page.wait_for_selector("#phone-rcs .convo *", timeout=15_000)
    page.fill("input[name=id]", "chaoyang-hangup")
    page.select_option("select[name=phase]", "ended")
    page.select_option("select[name=scope]", "line")
    page.fill("input[name=target]", "13812345678")
    page.select_option("select[name=template]", "courier-hangup")
    page.wait_for_selector(".cost table", timeout=15_000)
    page.wait_for_selector("#phone-sms .legacy-text", timeout=15_000)
    assert "短信" in page.inner_text(".cost table")
    page.click("button:has-text('保存名片')")
    page.wait_for_selector("text=名片 chaoyang-hangup v1 已提交审核，通过后才会发送")
    shot(page, "03-card-saved")
    # a new card is sent once the operator approves it (the review queue has a journey of its own)
    decision = "/api/enterprises/sf/cards/chaoyang-hangup/versions/1/decision"
    assert _api(server, "POST", decision, OPERATOR, {"approve": True})[0] == 200
    # the dry run says what a call would send, channel by channel
    open_page(page, "#/dry-run", "dry-run")
    page.fill("input[name=line]", "13812345678")
    page.fill("input[name=to]", "13912345678")
    page.select_option("select[name=phase]", "ended")
    page.click("button:has-text('试拨')")
    page.wait_for_selector(".dry-result[data-done]")
    summary = page.inner_text(".dry-result")
    assert "chaoyang-hangup" in summary and "未认证" in summary and "USSD" in summary
    page.wait_for_selector("#phone-sms .legacy-text")
    assert "138 1234 5678" in page.inner_text("#phone-sms")  # unverified: the number signs, as people read it
    shot(page, "04-dry-run")
    # staff: a file with bad rows imports nothing and lists them; a good one of 1,000 rows imports
    open_page(page, "#/staff", "staff")
    page.set_input_files(
        "input[type=file]",
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": staff_file(1000, {3: "123", 998: "x"})}],
    )
    page.click("button:has-text('导入')")
    page.wait_for_selector(".import-report table")
    report = page.inner_text(".import-report")
    assert (
        "2 行有错误" in report
        and "\n5\t" in report
        and "1000" in report
        and "「手机」须为 11 位数字" in report
    )
    shot(page, "05-staff-import-errors")
    page.set_input_files(
        "input[type=file]", files=[{"name": "staff.csv", "mimeType": "text/csv", "buffer": staff_file(1000)}]
    )
    page.click("button:has-text('导入')")
    page.wait_for_selector("text=已导入 1000 名员工", timeout=15_000)
    page.wait_for_selector(".paged[data-total='1001']")
    page.fill("input[name=q]", "快递员999")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector(".paged[data-total='1']")
    page.click("button[aria-label='编辑 快递员999']")
    page.fill(".editor-slot input[name='employee.title']", "站长")
    page.click(".editor-slot button[type=submit]")
    page.wait_for_selector(".editor-slot .notice.ok")
    assert (
        _api(server, "GET", "/api/enterprises/sf/staff/k999", SF_KEY)[1]["data"]["employee"]["title"]
        == "站长"
    )
    shot(page, "06-staff")
    # a logo into the media library, listed with the media:<id> a card names
    open_page(page, "#/media", "media")
    buf = io.BytesIO()
    Image.new("RGB", (120, 120), (20, 120, 60)).save(buf, "PNG")
    page.set_input_files(
        "input[type=file]", files=[{"name": "logo.png", "mimeType": "image/png", "buffer": buf.getvalue()}]
    )
    page.click("button:has-text('上传')")
    page.wait_for_selector("text=已上传，名片里填写 media:")
    page.wait_for_selector("main img.thumb-media")
    assert page.evaluate("() => document.querySelector('main img.thumb-media').naturalWidth") > 0
    shot(page, "065-media")
    # a key, shown once, that works
    open_page(page, "#/keys", "keys")
    page.fill("input[name=label]", "呼叫中心")
    page.click("button:has-text('签发新密钥')")
    page.wait_for_selector(".key-once code.secret")
    key = page.inner_text(".key-once code.secret").strip()
    assert key.startswith("mpk_") and _api(server, "GET", "/api/enterprises/sf", key)[0] == 200
    shot(page, "07-key-issued")
    # every page of the enterprise, at desktop and phone width, without a script error
    for name in ENTERPRISE_PAGES:
        open_page(page, f"#/{name}", name)
    page.set_viewport_size({"width": 390, "height": 844})
    for name in ("lines", "cards", "staff"):
        open_page(page, f"#/{name}", name)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390 + 1
        shot(page, f"08-phone-{name}")
    # revoking the key from the list; signing out ends the session
    page.set_viewport_size({"width": 1280, "height": 900})
    open_page(page, "#/keys", "keys")
    row = page.locator("tr", has_text="呼叫中心")
    row.locator("button").click()
    row.locator("button").click()  # confirm
    page.wait_for_selector("text=已吊销")
    assert _api(server, "GET", "/api/enterprises/sf", key)[0] == 401
    page.click("button:has-text('退出登录')")
    page.wait_for_selector("main[data-ready=signin]")
    assert page.evaluate("async () => (await fetch('/api/enterprises/sf/lines')).status") == 401
    assert probe.errors == [] and probe.dialogs == []


def test_operator_journey(browser: Any, server: ServerThread) -> None:
    assert _api(
        server,
        "POST",
        "/api/enterprises/sf/lines",
        SF_KEY,
        {"number": "13700001111", "evidence": "号码证明 A-1"},
    )[0] in (201, 409)
    assert _api(server, "POST", "/api/enterprises/cmb/lines", CMB_KEY, {"number": "13700002222"})[0] in (
        201,
        409,
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(page)
    sign_in(page, server, OPERATOR)
    page.wait_for_selector("main[data-ready=enterprises]")
    open_page(page, "#/queue", "queue")
    page.fill("input[name=q]", "13700001111")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector(".paged[data-total='1']")
    assert "号码证明 A-1" in page.inner_text(".paged")
    page.fill("input[aria-label='137 0000 1111 的审核备注']", "材料齐全")
    page.click("button[aria-label='通过 137 0000 1111']")
    page.wait_for_selector("text=137 0000 1111：已通过")
    line = _api(server, "GET", "/api/enterprises/sf/lines/13700001111", SF_KEY)[1]
    assert line["verified"] is True and line["verify_note"] == "材料齐全"
    # refusing needs a reason, which the enterprise then sees
    page.fill("input[name=q]", "13700002222")
    page.press("input[name=q]", "Enter")
    page.wait_for_selector(".paged[data-total='1']")
    page.click("button[aria-label='拒绝 137 0000 2222']")
    page.wait_for_selector("text=拒绝时请写明原因")
    page.fill("input[aria-label='137 0000 2222 的审核备注']", "号码与企业名称不符")
    page.click("button[aria-label='拒绝 137 0000 2222']")
    page.wait_for_selector("text=137 0000 2222：已拒绝")
    shot(page, "10-operator-queue")
    audit = _api(server, "GET", "/api/enterprises/cmb/audit", OPERATOR)[1]["audit"]
    assert audit[0]["action"] == "unverify" and audit[0]["detail"]["note"] == "号码与企业名称不符"
    # a brand change: the enterprise files it in its console, the operator approves it in the queue
    ent_page = browser.new_page(viewport={"width": 1280, "height": 900})
    ent_probe = PageProbe(ent_page)
    sign_in(ent_page, server, SF_KEY)
    open_page(ent_page, "#/brand", "brand")
    ent_page.fill("form.grid-form input[name=brand_name]", "顺丰速运·新")
    ent_page.fill("form.grid-form input[name=note]", "品牌升级")
    ent_page.click("button:has-text('提交变更申请')")
    ent_page.wait_for_selector("text=已提交，等待运营方审核")
    ent_page.wait_for_selector("main table >> text=待审核")  # the list is drawn again after the notice
    shot(ent_page, "13-brand-request-filed")
    open_page(page, "#/brands", "brands")
    assert "品牌名：顺丰速运·新" in page.inner_text("main") and "品牌升级" in page.inner_text("main")
    page.fill("input[aria-label='顺丰速运有限公司 品牌申请的审核备注']", "商标证书已核")
    page.click("button[aria-label='通过 顺丰速运有限公司 的品牌申请']")
    page.wait_for_selector("text=顺丰速运有限公司：已通过，品牌已更新")
    shot(page, "14-brand-request-approved")
    assert _api(server, "GET", "/api/enterprises/sf", SF_KEY)[1]["brand_name"] == "顺丰速运·新"
    open_page(ent_page, "#/audit", "audit")
    ent_page.evaluate("() => { location.hash = '#/brand'; }")
    ent_page.wait_for_selector("main[data-ready='brand'] >> text=已通过")
    assert "商标证书已核" in ent_page.inner_text("main")
    assert ent_probe.errors == [] and ent_probe.dialogs == []
    # suspend an enterprise: its key stops working; resume it
    open_page(page, "#/enterprises", "enterprises")
    page.click("button[aria-label='暂停 招商银行']")
    page.wait_for_selector("text=已暂停，不再发送名片")
    assert _api(server, "GET", "/api/enterprises/cmb", CMB_KEY)[0] == 403
    page.click("button[aria-label='恢复 招商银行']")
    page.wait_for_selector("text=招商银行：已恢复")
    assert _api(server, "GET", "/api/enterprises/cmb", CMB_KEY)[0] == 200
    # a pool topped up
    open_page(page, "#/pools", "pools")
    page.select_option("select[name=enterprise]", "sf")
    page.fill("input[aria-label='pool1 充值条数']", "500")
    page.click("tr:has-text('pool1') button:has-text('充值')")
    page.wait_for_selector("text=pool1 已充值 500 条")
    shot(page, "11-operator-pools")
    for name in OPERATOR_PAGES:
        open_page(page, f"#/{name}", name)
    open_page(page, "#/e/sf/lines", "lines")  # the operator inside one enterprise's pages
    shot(page, "12-operator-fleet")
    assert probe.errors == [] and probe.dialogs == []


def test_xss_probes_in_every_field_stay_text(browser: Any, server: ServerThread) -> None:
    """Markup typed into every field the console shows comes back as text: no script runs."""
    img = '<img src=x onerror="window.__xss=1">'
    script = "<script>window.__xss=2</script>"
    ent = {"id": "xss", "name": img, "signature": '"><script>1</script>', "brand_name": script}
    assert _api(server, "POST", "/api/enterprises", OPERATOR, ent)[0] in (201, 409)
    _status, issued = _api(server, "POST", "/api/enterprises/xss/keys?label=%3Cb%3Ex", OPERATOR)
    key = issued["key"]
    line = {"number": "13600000001", "label": img, "group": script, "evidence": img}
    assert _api(server, "POST", "/api/enterprises/xss/lines", key, line)[0] == 201
    staff = {
        "id": "s1",
        "name": img,
        "data": {"employee": {"name": script, "title": img, "mobile": "13900000000"}},
    }
    assert _api(server, "POST", "/api/enterprises/xss/staff", key, staff)[0] == 201
    short = "<svg onload=window.__xss=3>"  # fits the template's shorter fields
    card_data = {
        "employee": {"name": "<b>x</b>", "title": short, "mobile": "13900000000", "greeting": script},
        "company": {
            "name": img,
            "short_name": "<i>x</i>",
            "office": {"label": img, "latitude": 30, "longitude": 120},
        },
    }
    card = {"id": "c1", "phase": "ended", "template": "staff-card", "group": img, "data": card_data}
    assert _api(server, "POST", "/api/enterprises/xss/cards", key, card)[0] == 201
    note = {"verified": False, "note": img}
    assert _api(server, "POST", "/api/enterprises/xss/lines/13600000001/verify", OPERATOR, note)[0] == 200
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    probe = PageProbe(page)
    page.goto(f"{server.url}/console")
    page.wait_for_selector("main[data-ready=signin]")
    page.fill("input[name=key]", img)  # the sign-in field itself
    page.press("input[name=key]", "Enter")
    page.wait_for_selector(".notice.error")
    page.fill("input[name=key]", key)
    page.press("input[name=key]", "Enter")
    page.wait_for_selector("main[data-ready=lines]")
    assert img in page.inner_text("main") and script in page.inner_text("main")
    page.fill("input[name=q]", img)  # and a search box
    page.press("input[name=q]", "Enter")
    page.wait_for_selector(".paged[data-total='1']")
    for name in ENTERPRISE_PAGES:
        open_page(page, f"#/{name}", name)
    open_page(page, "#/cards", "cards")
    page.click("button[aria-label='编辑名片 c1']")
    page.wait_for_selector("#phone-rcs .convo *, #phone-rcs.stale", timeout=15_000)
    assert img in page.input_value("input[name=target]")
    open_page(page, "#/dry-run", "dry-run")
    page.fill("input[name=line]", img)
    page.fill("input[name=to]", script)
    page.click("button:has-text('试拨')")
    page.wait_for_selector(".notice.error")
    shot(page, "20-xss-enterprise")
    op = browser.new_page(viewport={"width": 1280, "height": 900})
    op_probe = PageProbe(op)
    sign_in(op, server, OPERATOR)
    for name in OPERATOR_PAGES:
        open_page(op, f"#/{name}", name)
    open_page(op, "#/enterprises", "enterprises")
    assert img in op.inner_text("main")
    shot(op, "21-xss-operator")
    for p, pr in ((page, probe), (op, op_probe)):
        assert p.evaluate("() => window.__xss") is None
        assert p.locator("main img[src='x']").count() == 0
        assert pr.errors == [] and pr.dialogs == []


def test_a_page_on_another_origin_cannot_write(browser: Any, server: ServerThread) -> None:
    """Signed in to the console, the user opens a page served elsewhere (same host, another port:
    the same site, so even SameSite=Strict sends the cookie) that posts to the console's API by
    fetch and by a form. The server refuses both: no CSRF token, a foreign Origin."""
    evil_port = free_port()
    target = server.url
    html = f"""<!doctype html><meta charset="utf-8"><title>evil</title>
<form id="f" method="POST" action="{target}/api/enterprises/sf/keys"></form>
<script>
fetch("{target}/api/enterprises/sf/lines", {{method: "POST", credentials: "include", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{number: "13600009999"}})}})
  .finally(() => {{ document.title = "sent"; document.getElementById("f").submit(); }});
</script>"""

    async def evil(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", evil)
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", evil_port).start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await runner.cleanup()

        asyncio.run(main())

    ready = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        keys_before = _api(server, "GET", "/api/enterprises/sf/keys", OPERATOR)[1]["keys"]
        page = browser.new_page()
        statuses: dict[str, int] = {}
        page.on("response", lambda r: statuses.__setitem__(f"{r.request.method} {r.url}", r.status))
        sign_in(page, server, SF_KEY)
        page.goto(f"http://127.0.0.1:{evil_port}/")
        page.wait_for_url(f"{target}/api/enterprises/sf/keys", timeout=10_000)
        assert statuses[f"POST {target}/api/enterprises/sf/keys"] == 403
        assert "csrf_failed" in page.content()
        assert statuses[f"POST {target}/api/enterprises/sf/lines"] == 403
        assert _api(server, "GET", "/api/enterprises/sf/keys", OPERATOR)[1]["keys"] == keys_before
        assert _api(server, "GET", "/api/enterprises/sf/lines/13600009999", SF_KEY)[0] == 404
        shot(page, "30-csrf-refused")
    finally:
        stop.set()
        thread.join(5)


def test_an_enterprise_session_cannot_reach_another_enterprise(browser: Any, server: ServerThread) -> None:
    """The page's own requests (its session cookie, its CSRF token) aimed at the other
    enterprise's ids answer 404 as if they did not exist; operator-only actions 403."""
    from delivery.keys import hash_key

    page = browser.new_page()
    probe = PageProbe(page)
    sign_in(page, server, SF_KEY)
    cmb_key_id = hash_key(CMB_KEY)[:12]
    probes = [
        ["GET", "/api/enterprises/cmb", None],
        ["PUT", "/api/enterprises/cmb", {"id": "cmb", "name": "x", "signature": "x"}],
        ["GET", "/api/enterprises/cmb/lines?limit=5", None],
        ["GET", "/api/enterprises/cmb/lines/95555", None],
        ["PUT", "/api/enterprises/cmb/lines/95555", {"number": "95555", "label": "x"}],
        ["DELETE", "/api/enterprises/cmb/cards/identity", None],
        ["GET", "/api/enterprises/cmb/staff-csv", None],
        ["GET", "/api/enterprises/cmb/keys", None],
        ["POST", "/api/enterprises/cmb/keys", None],
        ["DELETE", f"/api/enterprises/cmb/keys/{cmb_key_id}", None],
        ["DELETE", f"/api/enterprises/sf/keys/{cmb_key_id}", None],
        ["POST", "/api/enterprises/cmb/dry-run", {"line": "95555", "to": "13912345678", "phase": "ended"}],
        ["POST", "/api/enterprises/sf/dry-run", {"line": "95555", "to": "13912345678", "phase": "ended"}],
        ["GET", "/api/enterprises/cmb/optouts?format=csv", None],
        ["GET", "/api/enterprises/cmb/audit", None],
        ["GET", "/api/lines?unverified=1", None],
        ["POST", "/api/enterprises/sf/lines/13800000001/verify", {"verified": True}],
        ["POST", "/api/enterprises", {"id": "mine", "name": "x", "signature": "x"}],
        [
            "PUT",
            "/api/enterprises/sf/packages/pool1",
            {"id": "pool1", "units": 1, "valid_from": 0, "valid_to": 1},
        ],
    ]
    got = page.evaluate(
        """async (probes) => {
          const s = await (await fetch('/api/session')).json();
          const out = [];
          for (const [method, url, body] of probes) {
            const r = await fetch(url, {method, headers: {'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json'},
              body: body ? JSON.stringify(body) : undefined});
            out.push(r.status);
          }
          return out;
        }""",
        probes,
    )
    want = [404] * 14 + [404, 403, 403, 403, 403]
    assert dict(zip([f"{m} {u}" for m, u, _ in probes], got, strict=True)) == dict(
        zip([f"{m} {u}" for m, u, _ in probes], want, strict=True)
    )
    assert _api(server, "GET", "/api/enterprises/cmb", CMB_KEY)[0] == 200  # its key still works
    # the router, asked for another enterprise's pages, shows the session's own
    open_page(page, "#/e/cmb/lines", "lines")
    assert "95555" not in page.inner_text("main")
    assert [e for e in probe.errors if "HTTP 5" in e] == []


def test_keyboard_only(browser: Any, server: ServerThread) -> None:
    """Sign in, move between pages, search and open a row's editor with the keyboard alone."""
    page = browser.new_page()
    probe = PageProbe(page)
    page.goto(f"{server.url}/console")
    page.wait_for_selector("main[data-ready=signin]")
    assert page.evaluate("() => document.activeElement.name") == "key"  # focus starts in the field
    page.keyboard.type(SF_KEY)
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-ready=lines]")
    assert page.evaluate("() => document.activeElement.id") == "main"  # focus moves to the page
    page.keyboard.press("Shift+Tab")
    for _ in range(20):  # back through the navigation to 员工名片
        if page.evaluate("() => document.activeElement.textContent") == "员工名片":
            break
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-ready=staff]")
    page.focus("input[name=q]")
    page.keyboard.type("王建国")
    page.keyboard.press("Enter")
    page.wait_for_selector(".paged[data-total='1']")
    page.keyboard.press("Tab")  # the search button
    page.keyboard.press("Tab")  # the row's 编辑
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "编辑 王建国"
    page.keyboard.press("Enter")
    page.wait_for_selector(".editor-slot input[name=name]")
    assert page.evaluate("() => document.activeElement.name") == "name"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    assert probe.errors == []
