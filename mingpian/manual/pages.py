"""`/docs`: the project's Markdown docs (README and `docs_dir/*.md`) as pages; `/api`: the API
explorer, a page of our own script that reads `/api/openapi.json` and sends requests from the
browser. Both wear the studio's shell and CSP: no CDN, no inline script, no third-party code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from aiohttp import web

from ..errors import ApiError
from ..keys import settings_key
from ..studio.assets import asset_url
from ..studio.pages import html_response, page
from .markdown import Page, render

DOC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DOC_BYTES = 2 * 1024 * 1024  # a doc is read whole; nothing in docs/ comes near this
INDEX = "README"  # the page at /docs itself


@dataclass
class Docs:
    """The doc files of one folder, rendered once per file version (mtime and size)."""

    folder: Path
    _cache: dict[str, tuple[tuple[int, int], Page]] = field(default_factory=dict)

    def files(self) -> dict[str, Path]:
        """Page name → file: README (beside the folder) first, then the folder's docs by name."""
        out: dict[str, Path] = {}
        readme = self.folder.parent / "README.md"
        if readme.is_file():
            out[INDEX] = readme
        if self.folder.is_dir():
            for p in sorted(self.folder.glob("*.md")):
                if p.is_file() and DOC_NAME.match(p.stem) and p.stem != INDEX:
                    out[p.stem] = p
        return out

    def page(self, name: str) -> Page | None:
        files = self.files()
        path = files.get(name)
        if path is None:
            return None
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(name)
        if hit and hit[0] == stamp:
            return hit[1]
        if st.st_size > MAX_DOC_BYTES:
            raise ApiError(404, "not_found", f"doc {name!r} is too large to serve", path="name")
        rendered = render(path.read_text("utf-8", errors="replace"), frozenset(files))
        self._cache[name] = (stamp, rendered)
        return rendered


docs_key = web.AppKey("manual_docs", Docs)


def _nav(docs: Docs, current: str) -> str:
    items = []
    for name in docs.files():
        label = "总览" if name == INDEX else name
        href = "/docs" if name == INDEX else f"/docs/{name}"
        here = ' aria-current="page"' if name == current else ""
        items.append(f'<li><a href="{href}"{here}>{escape(label)}</a></li>')
    return "".join(items)


def _toc(doc: Page) -> str:
    rows = [
        f'<li class="toc-{level}"><a href="#{escape(anchor)}">{escape(text)}</a></li>'
        for level, text, anchor in doc.headings
        if level in (2, 3)
    ]
    return (
        f'<nav class="toc" aria-label="本页目录"><h2>本页</h2><ul>{"".join(rows)}</ul></nav>' if rows else ""
    )


async def doc_page(request: web.Request) -> web.Response:
    docs = request.app[docs_key]
    name = request.match_info.get("name", INDEX)
    if not DOC_NAME.match(name):
        raise ApiError(404, "not_found", f"no doc {name!r}", path="name")
    doc = docs.page(name)
    if doc is None and name == INDEX:  # no README beside the folder: a plain list of the docs
        words = "请从左侧选择一篇文档。" if docs.files() else "这次安装没有附带文档。"
        doc = Page("文档", f"<h1>文档</h1>\n<p>{words}</p>\n", ())
    if doc is None:
        raise ApiError(404, "not_found", f"no doc {name!r}", path="name")
    # `doc.html` is markdown-it's output with raw HTML escaped (mingpian/manual/markdown.py).
    body = f"""<main id="main" class="manual">
<nav class="doc-list" aria-label="文档列表"><h2>文档</h2><ul>{_nav(docs, name)}</ul></nav>
<article class="doc" lang="en">{doc.html}</article>
{_toc(doc)}
</main>"""
    return _page(f"名片工作台 · 文档 · {doc.title or name}", body)


def _page(title: str, body: str) -> web.Response:
    return html_response(page(title, body, asset_url("manual.js"), (asset_url("manual.css"),)))


async def explorer_page(request: web.Request) -> web.Response:
    body = """<main id="main" class="explorer" data-spec="/api/openapi.json">
<div class="explorer-head">
  <h1>API 浏览器</h1>
  <p class="lead">本服务的 HTTP 接口，读自 <a href="/api/openapi.json">OpenAPI 文档</a>。
  展开一个接口可以查看参数和返回，并直接在浏览器里发送请求。</p>
  <div class="explorer-tools">
    <label for="api-filter">筛选</label>
    <input id="api-filter" type="search" placeholder="路径或说明" autocomplete="off">
    <label for="api-key">API 密钥</label>
    <input id="api-key" type="password" autocomplete="off" placeholder="需要鉴权的接口使用">
  </div>
</div>
<p id="api-error" class="error" role="alert" hidden></p>
<div id="api-groups" class="api-groups" aria-busy="true"></div>
</main>"""
    return html_response(
        page("名片工作台 · API 浏览器", body, asset_url("explorer.js"), (asset_url("manual.css"),))
    )


def setup(app: web.Application) -> None:
    app[docs_key] = Docs(app[settings_key].docs_dir)
    app.router.add_get("/docs", doc_page, name="manual_index")
    app.router.add_get("/docs/{name}", doc_page, name="manual_doc")
    app.router.add_get("/api", explorer_page, name="api_explorer")
