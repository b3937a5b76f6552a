"""HTML shells of the studio pages. The server writes only escaped text (html.escape) into them;
everything data-driven is built in the browser with DOM APIs (see static/dom.js)."""

from __future__ import annotations

from html import escape

from aiohttp import web

from renderer import Problem, TemplateInvalid

from ..keys import demo_page_key, templates_key
from .assets import asset_url

PHASE_LABELS = {"pre-call": "来电前", "in-call": "通话中", "hang-up": "挂机后"}


# The site's parts, in every page's header: the studio, the console, the reports, the guide.
SITE = (("/", "设计室"), ("/console", "控制台"), ("/reports", "报表"), ("/docs", "使用指南"), ("/api", "API"))


def site_nav(current: str = "") -> str:
    """The header's links to the site's parts; the one at `current` marked as this page."""
    here = ' aria-current="page"'
    links = " ".join(
        f'<a href="{href}"{here if href == current else ""}>{escape(label)}</a>' for href, label in SITE
    )
    return f'<nav class="site" aria-label="站点">{links}</nav>'


def page(title: str, body: str, script_url: str, extra_css: tuple[str, ...] = (), current: str = "") -> str:
    """The shell every studio-looking page shares (head, skip link, header and nav, status line);
    `body` is trusted markup, `title` is escaped, scripts and stylesheets are same-origin URLs."""
    css = "".join(f'\n<link rel="stylesheet" href="{href}">' for href in extra_css)
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{asset_url("fonts.css")}">
<link rel="stylesheet" href="{asset_url("studio.css")}">{css}
<link rel="icon" href="{asset_url("icon.svg")}" type="image/svg+xml">
<script type="module" src="{script_url}"></script>
</head>
<body>
<a class="skip" href="#main">跳到正文</a>
<header class="top">
  <a class="logo" href="/"><span aria-hidden="true">名</span> 名片工作台</a>
  {site_nav(current)}
</header>
{body}
<p id="status" class="sr-only" role="status" aria-live="polite"></p>
</body>
</html>
"""


def html_response(text: str) -> web.Response:
    return web.Response(
        text=text, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"}
    )


async def gallery(request: web.Request) -> web.Response:
    store = request.app[templates_key]
    items = []
    for name in store.names():
        n = escape(name)
        try:
            m = store.get(name).manifest
        except TemplateInvalid as exc:
            items.append(f"""<li class="tile broken" data-name="{n}">
  <div class="thumb" aria-hidden="true"></div>
  <h2><a href="/t/{n}">{n}</a></h2>
  {broken_text(exc)}
</li>""")
            continue
        phase = escape(m.phase)
        items.append(f"""<li class="tile" data-name="{n}">
  <div class="thumb" data-thumb="{n}" aria-hidden="true"></div>
  <h2><a href="/t/{n}">{escape(m.title)}</a></h2>
  <p class="meta"><span class="phase phase-{phase}">{escape(PHASE_LABELS.get(m.phase, m.phase))}</span>
  <code>{n}</code></p>
  <p class="desc">{escape(m.description)}</p>
</li>""")
    body = f"""<main id="main" class="gallery">
<h1>模板</h1>
<p class="lead">选择一个名片模板，填入自己的数据，看 5G 消息手机和老手机上的效果。</p>{_demo_note(request)}
<ul class="tiles">
{"".join(items) or '<li class="empty">模板目录里还没有模板。</li>'}
</ul>
</main>"""
    return html_response(page("名片工作台 · 模板", body, asset_url("gallery.js"), current="/"))


def _demo_note(request: web.Request) -> str:
    """While the demo runs: where to place a simulated call."""
    href = request.app.get(demo_page_key)
    if not href:
        return ""
    return (
        f'\n<p class="lead demo-note">演示模式：到控制台的 <a href="{escape(href)}">模拟来电</a>，'
        "拨一通电话，看名片经模拟的运营商网络送到各种手机上。</p>"
    )


def broken_text(exc: TemplateInvalid) -> str:
    """A broken template's problems, each once: `file:line` and the Chinese sentence, with the
    parser's own words folded away for developers."""
    rows = []
    for p in exc.problems or [Problem("", exc.message)]:
        where = f'<code class="where">{escape(p.location())}</code> ' if p.file else ""
        detail = (
            f'<details class="detail"><summary>原文</summary><code>{escape(p.detail)}</code></details>'
            if p.detail
            else ""
        )
        rows.append(f"<li>{where}{escape(p.message)}{detail}</li>")
    return f'<div class="error"><p>模板有错误：</p><ul class="problems">{"".join(rows)}</ul></div>'


async def template_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    store = request.app[templates_key]
    store.folder(name)  # 404 JSON for unknown names, before any HTML is sent
    try:
        title = store.get(name).manifest.title
    except TemplateInvalid:
        title = name  # the page still opens and shows the template's errors
    n = escape(name)
    body = f"""<main id="main" class="studio" data-template="{n}">
<div class="bar">
  <h1 id="title">{escape(title)}</h1>
  <div class="controls">
    <label for="profile">运营商</label>
    <select id="profile" name="profile"><option value="">默认</option></select>
    <span class="media-mode" hidden><label for="media-mode">卡片媒体</label>
    <select id="media-mode"><option value="">占位</option>
      <option value="card">渲染图片</option></select></span>
    <button type="button" id="share">复制分享链接</button>
    <button type="button" id="reset">恢复示例数据</button>
  </div>
</div>
<p id="profile-limits" class="limits"></p>
<div class="layout">
  <section class="editor" aria-labelledby="editor-h">
    <h2 id="editor-h">数据</h2>
    <form id="data-form" novalidate autocomplete="off"></form>
    <div id="problems" class="problems" aria-live="polite" hidden>
      <h3>错误</h3><ul id="problem-list"></ul>
    </div>
  </section>
  <section class="previews" aria-labelledby="preview-h">
    <h2 id="preview-h">预览</h2>
    <div id="phones" class="phones"></div>
    <details class="raw" id="raw-box">
      <summary>原始报文</summary>
      <div class="raw-tools">
        <label for="raw-kind">报文</label>
        <select id="raw-kind"><option value="rcs">5G 消息</option></select>
        <button type="button" id="copy-raw">复制</button>
      </div>
      <pre id="raw" tabindex="0"></pre>
    </details>
  </section>
</div>
</main>"""
    return html_response(page(f"名片工作台 · {title}", body, asset_url("template.js")))


def setup(app: web.Application) -> None:
    app.router.add_get("/", gallery, name="studio_gallery")
    app.router.add_get("/t/{name}", template_page, name="studio_template")
