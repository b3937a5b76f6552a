"""The console's HTML shell and static files, with the studio's CSP.

The shell holds no data: the page asks `/api/session` who is signed in and builds everything
with DOM APIs (textContent only), so nothing from the store ever reaches the page as markup.
"""

from __future__ import annotations

import hashlib
from html import escape
from pathlib import Path

from aiohttp import web

from ..openapi import add_paths, static_files
from ..studio.assets import asset_url
from ..studio.pages import html_response, site_nav
from ..studio.security import add_pages

STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript", ".css": "text/css"}
PREFIX = "/console/static/"


def _files() -> dict[str, str]:
    return {p.name: TYPES[p.suffix] for p in sorted(STATIC.iterdir()) if p.suffix in TYPES}


FILES = _files()
VERSION = hashlib.sha256(b"".join((STATIC / n).read_bytes() for n in FILES)).hexdigest()[:12]


def url(name: str) -> str:
    return f"{PREFIX}{name}?v={VERSION}"


# The modules console.js imports before it can ask who is signed in, fetched at once with it
# (as imported: the module map is keyed by URL) rather than one import level after another.
# Not every page's module: they would take the browser's six connections first.
PRELOAD = (f"{PREFIX}capi.js", f"{PREFIX}ui.js", "/static/dom.js")


def shell(title: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{asset_url("fonts.css")}">
<link rel="stylesheet" href="{asset_url("studio.css")}">
<link rel="stylesheet" href="{url("console.css")}">
<link rel="icon" href="{asset_url("icon.svg")}" type="image/svg+xml">
<script type="module" src="{url("console.js")}"></script>
{"".join(f'<link rel="modulepreload" href="{href}">{chr(10)}' for href in PRELOAD)}
</head>
<body class="console">
<a class="skip" href="#main">跳到正文</a>
<header class="top">
  <a class="logo" href="/console"><span aria-hidden="true">名</span> 名片 控制台</a>
  {site_nav("/console")}
  <p id="who" class="who"></p>
</header>
<div class="frame">
<nav id="nav" class="side" aria-label="控制台"></nav>
<main id="main" class="pane" tabindex="-1"><p class="loading">加载中…</p></main>
</div>
<p id="status" class="sr-only" role="status" aria-live="polite"></p>
</body>
</html>
"""


async def console(request: web.Request) -> web.Response:
    resp = html_response(shell("名片 控制台"))
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    cache = "public, max-age=31536000, immutable" if request.query.get("v") == VERSION else "no-cache"
    # a FileResponse answers a revalidation (If-None-Match) with 304: modules imported by
    # plain name are checked on each load rather than downloaded again
    return web.FileResponse(
        STATIC / name, headers={"Cache-Control": cache, "Content-Type": f"{FILES[name]}; charset=utf-8"}
    )


def _is_page(path: str) -> bool:
    """The page and its files: served with the studio's security headers."""
    return path == "/console" or path.startswith(PREFIX)


def setup(app: web.Application) -> None:
    app.router.add_get("/console", console)
    app.router.add_get(PREFIX + "{name}", static)
    add_pages(app, _is_page)
    html = {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}}
    paths = {
        "/console": {
            "get": {
                "summary": "The console: enterprises and the operator (browser)",
                "tags": ["delivery"],
                "responses": html,
            }
        },
        PREFIX + "{name}": static_files("The console's scripts and stylesheet"),
    }
    add_paths(app, paths)
