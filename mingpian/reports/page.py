"""The enterprise reports page (`/reports`): usage and cost over time, deliveries per outcome,
per-channel arrival rate and receipt latency, package balances with their projected run-out
day, opt-outs, taps and ad impressions, over a chosen date range, with a CSV download.

A studio page by look (the studio's stylesheet and DOM helpers) but served from here, so the
studio does not depend on delivery. Same discipline as the studio: an HTML shell with escaped
text only, our own same-origin ES modules, every datum put in the DOM with textContent, charts
drawn by our code as inline SVG (no CDN, no chart library), and the studio's CSP headers. The
data comes from the JSON API with the enterprise's key, which the browser keeps in
sessionStorage only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

from ..openapi import add_paths, static_files
from ..studio.pages import html_response, page
from ..studio.security import add_pages

STATIC = Path(__file__).parent / "static"
FILES = {
    "reports.js": "text/javascript",
    "reports.css": "text/css",
    "charts.js": "text/javascript",
    "report_view.js": "text/javascript",
    "funnel_view.js": "text/javascript",
    "card_funnel_view.js": "text/javascript",
}
PREFIX = "/delivery/static/"


def _version() -> str:
    h = hashlib.sha256()
    for name in sorted(FILES):
        h.update((STATIC / name).read_bytes())
    return h.hexdigest()[:12]


VERSION = _version()


def url(name: str) -> str:
    return f"{PREFIX}{name}?v={VERSION}"


BODY = """<main id="main" class="reports">
<h1>投递报表</h1>
<form id="login" class="login">
  <label>企业 ID <input name="enterprise" required autocomplete="off"
    pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]*"></label>
  <label>API 密钥 <input name="key" type="password" required autocomplete="off"></label>
  <button type="submit">查看</button>
</form>
<form id="range" class="range" hidden>
  <label>从 <input id="from" name="from" type="date"></label>
  <label>到 <input id="to" name="to" type="date"></label>
  <button type="submit">按日期查看</button>
  <button type="button" id="csv">下载用量 CSV</button>
</form>
<p id="error" class="error" role="alert" hidden></p>
<div id="report"></div>
</main>
"""


async def reports(request: web.Request) -> web.Response:
    return html_response(
        page(
            "名片工作台 · 投递报表",
            BODY,
            url("reports.js"),
            extra_css=(url("reports.css"),),
            current="/reports",
        )
    )


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=FILES[name],
        charset="utf-8",
        headers={
            "Cache-Control": "public, max-age=31536000, immutable"
            if request.query.get("v") == VERSION
            else "no-cache"
        },
    )


def _is_page(path: str) -> bool:
    """The page and its files: served with the studio's security headers."""
    return path == "/reports" or path.startswith(PREFIX)


def setup(app: web.Application) -> None:
    app.router.add_get("/reports", reports)
    app.router.add_get(PREFIX + "{name}", static)
    add_pages(app, _is_page)
    html = {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}}
    paths = {
        "/reports": {
            "get": {
                "summary": "Reports page for an enterprise (studio)",
                "tags": ["delivery"],
                "responses": html,
            }
        },
        PREFIX + "{name}": static_files("The reports page's scripts and stylesheet"),
    }
    add_paths(app, paths)
