"""`/docs`: the user's guide (`docs_dir/guide/*.md`, Chinese) as the landing page, then the
reference (README and `docs_dir/*.md`, English) as pages; `/api`: the API explorer, a page of
our own script that reads `/api/openapi.json` and sends requests from the browser. Both wear the
studio's shell and CSP: no CDN, no inline script, no third-party code.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from aiohttp import web

from ..errors import ApiError
from ..keys import settings_key
from ..studio.assets import asset_url
from ..studio.pages import html_response, page
from .markdown import DocLinks, Page, render

DOC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DOC_BYTES = 2 * 1024 * 1024  # a doc is read whole; nothing in docs/ comes near this
README = "README"  # the project's README, served among the reference pages
GUIDE = "guide"  # the guide's folder inside docs_dir; its `index.md` is the page at /docs
GUIDE_INDEX = "index"
# The two groups of the docs menu: the guide for the people who use Mingpian, in Chinese, then
# the developer and operations reference, in English.
GUIDE_GROUP = "使用指南"
REFERENCE_GROUP = "参考资料"


@dataclass(frozen=True, slots=True)
class DocFile:
    """One served Markdown file: its key (`guide/designer`, `api`), file, URL and group."""

    key: str
    path: Path
    url: str
    group: str
    lang: str


@dataclass
class Docs:
    """The doc files of one folder, rendered once per file version (mtime and size)."""

    folder: Path
    _cache: dict[str, tuple[tuple[int, int], Page]] = field(default_factory=dict)

    def files(self) -> dict[str, DocFile]:
        """Key → file, in the menu's order: the guide (its index first), then the README and
        the folder's docs by name."""
        out: dict[str, DocFile] = {}
        guide = self.folder / GUIDE
        if guide.is_dir():
            names = sorted(p.stem for p in guide.glob("*.md") if p.is_file() and DOC_NAME.match(p.stem))
            if GUIDE_INDEX in names:
                names.remove(GUIDE_INDEX)
                names.insert(0, GUIDE_INDEX)
            for name in names:
                url = "/docs" if name == GUIDE_INDEX else f"/docs/{GUIDE}/{name}"
                key = f"{GUIDE}/{name}"
                out[key] = DocFile(key, guide / f"{name}.md", url, GUIDE_GROUP, "zh-CN")
        readme = self.folder.parent / "README.md"
        if readme.is_file():
            out[README] = DocFile(README, readme, f"/docs/{README}", REFERENCE_GROUP, "en")
        if self.folder.is_dir():
            for p in sorted(self.folder.glob("*.md")):
                if p.is_file() and DOC_NAME.match(p.stem) and p.stem != README:
                    out[p.stem] = DocFile(p.stem, p, f"/docs/{p.stem}", REFERENCE_GROUP, "en")
        return out

    def landing(self) -> str | None:
        """The key of the page at /docs: the guide's index, else the README."""
        files = self.files()
        for key in (f"{GUIDE}/{GUIDE_INDEX}", README):
            if key in files:
                return key
        return None

    def _links(self, doc: DocFile, files: dict[str, DocFile]) -> DocLinks:
        """Where a relative `.md` link of `doc` is served: the file it names from the doc's own
        folder, else (links written from the project root or from docs/) from those."""
        by_path = {f.path.resolve(): f.url for f in files.values()}
        roots = (doc.path.parent, self.folder, self.folder.parent)

        def link(href: str) -> str | None:
            for root in roots:
                target = Path(posixpath.normpath(str(root / href))).resolve()
                if target in by_path:
                    return by_path[target]
            return None

        return link

    def page(self, key: str) -> Page | None:
        files = self.files()
        doc = files.get(key)
        if doc is None:
            return None
        st = doc.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cache.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
        if st.st_size > MAX_DOC_BYTES:
            raise ApiError(404, "not_found", f"doc {key!r} is too large to serve", path="name")
        rendered = render(doc.path.read_text("utf-8", errors="replace"), self._links(doc, files))
        self._cache[key] = (stamp, rendered)
        return rendered

    def title(self, key: str) -> str:
        """A page's title for the menu: its first heading, else its file name."""
        try:
            doc = self.page(key)
        except (ApiError, OSError):
            doc = None
        return (doc.title if doc else "") or key.rsplit("/", 1)[-1]


docs_key = web.AppKey("manual_docs", Docs)


def _nav(docs: Docs, current: str) -> str:
    groups: dict[str, list[str]] = {}
    for key, doc in docs.files().items():
        here = ' aria-current="page"' if key == current else ""
        lang = f' lang="{doc.lang}"'
        item = f'<li><a href="{escape(doc.url)}"{here}{lang}>{escape(docs.title(key))}</a></li>'
        groups.setdefault(doc.group, []).append(item)
    words = {GUIDE_GROUP: "中文", REFERENCE_GROUP: "英文"}
    return "".join(
        f'<h2>{escape(group)}<span class="doc-lang">（{words.get(group, "")}）</span></h2>'
        f'<ul data-group="{escape(group)}">{"".join(items)}</ul>'
        for group, items in groups.items()
    )


def _toc(doc: Page) -> str:
    rows = [
        f'<li class="toc-{level}"><a href="#{escape(anchor)}">{escape(text)}</a></li>'
        for level, text, anchor in doc.headings
        if level in (2, 3)
    ]
    return (
        f'<nav class="toc" aria-label="本页目录"><h2>本页</h2><ul>{"".join(rows)}</ul></nav>' if rows else ""
    )


def _show(docs: Docs, key: str | None) -> web.Response:
    doc = docs.page(key) if key else None
    if doc is None and key is None:  # nothing at /docs itself: a plain list of the docs
        words = "请从左侧选择一篇文档。" if docs.files() else "这次安装没有附带文档。"
        doc = Page("文档", f"<h1>文档</h1>\n<p>{words}</p>\n", ())
    if doc is None:
        raise ApiError(404, "not_found", f"no doc {key!r}", path="name")
    lang = docs.files()[key].lang if key else "zh-CN"
    # `doc.html` is markdown-it's output with raw HTML escaped (mingpian/manual/markdown.py).
    body = f"""<main id="main" class="manual">
<nav class="doc-list" aria-label="文档列表">{_nav(docs, key or "")}</nav>
<article class="doc" lang="{lang}">{doc.html}</article>
{_toc(doc)}
</main>"""
    return _page(f"名片工作台 · 文档 · {doc.title or key}", body)


async def doc_index(request: web.Request) -> web.Response:
    docs = request.app[docs_key]
    return _show(docs, docs.landing())


async def doc_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not DOC_NAME.match(name):
        raise ApiError(404, "not_found", f"no doc {name!r}", path="name")
    return _show(request.app[docs_key], name)


async def guide_page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not DOC_NAME.match(name):
        raise ApiError(404, "not_found", f"no guide page {name!r}", path="name")
    return _show(request.app[docs_key], f"{GUIDE}/{name}")


def _page(title: str, body: str) -> web.Response:
    return html_response(
        page(title, body, asset_url("manual.js"), (asset_url("manual.css"),), current="/docs")
    )


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
        page(
            "名片工作台 · API 浏览器",
            body,
            asset_url("explorer.js"),
            (asset_url("manual.css"),),
            current="/api",
        )
    )


def setup(app: web.Application) -> None:
    app[docs_key] = Docs(app[settings_key].docs_dir)
    app.router.add_get("/docs", doc_index, name="manual_index")
    app.router.add_get("/docs/{name}", doc_page, name="manual_doc")
    app.router.add_get("/docs/guide/{name}", guide_page, name="manual_guide")
    app.router.add_get("/api", explorer_page, name="api_explorer")
