"""Docs in the product: `/docs` serves the project's Markdown docs as pages (raw HTML escaped,
links between docs kept), `/api` the explorer page; both under the studio's CSP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings
from mingpian.studio.security import CSP
from tests.support.client import ClientFactory

Client = TestClient[Any, web.Application]


async def test_every_project_doc_is_a_page_linked_from_the_header(client: Client) -> None:
    index = await client.get("/docs")
    html = await index.text()
    assert index.status == 200 and index.content_type == "text/html"
    assert index.headers["Content-Security-Policy"] == CSP
    assert '<h1 id="名片使用指南">名片使用指南</h1>' in html  # the guide (tests/server/test_guide.py)
    readme = await (await client.get("/docs/README")).text()
    assert '<h1 id="mingpian-名片">Mingpian 名片</h1>' in readme
    assert '<a href="/docs" aria-current="page">使用指南</a>' in html  # the header's nav, this page marked
    assert '<a href="/api">API</a>' in html and '<a href="/console">控制台</a>' in html
    for doc in sorted((PROJECT_ROOT / "docs").glob("*.md")):
        assert f'href="/docs/{doc.stem}"' in html, doc.name  # the list of docs
        resp = await client.get(f"/docs/{doc.stem}")
        assert resp.status == 200, doc.name
        assert "<h1 " in await resp.text()
    api = await (await client.get("/docs/api")).text()
    assert "<table>" in api and "<td><code>data_invalid</code></td>" in api  # tables render
    assert 'href="/docs/settings' in api or 'href="/docs/templates' in api  # doc links rewritten


async def test_raw_html_is_shown_as_text_and_odd_links_lose_their_link(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    docs = tmp_path / "site" / "docs"
    docs.mkdir(parents=True)
    (docs / "evil.md").write_text(
        "# 坏文档\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        "[run](javascript:alert(3)) [source](../renderer/rcs.py) [other](good.md#top) "
        "[web](https://example.com/)\n",
        "utf-8",
    )
    (docs / "good.md").write_text("# Good\n\n## Top\n", "utf-8")
    client = await aiohttp_client(create_app(settings.with_(docs_dir=docs)))
    html = await (await client.get("/docs/evil")).text()
    article = html[html.index("<article") : html.index("</article>")]
    assert "<script>" not in article and "&lt;script&gt;alert(1)&lt;/script&gt;" in article
    assert "<img" not in article and "&lt;img src=x onerror=alert(2)&gt;" in article
    assert "javascript:" not in article.replace("[run](javascript:alert(3))", "")
    assert 'href="/docs/good#top"' in article and 'href="https://example.com/"' in article
    assert "rcs.py" not in article and " source " in article  # a source file: words kept, no link
    assert '<h2 id="top">' in await (await client.get("/docs/good")).text()
    # no README beside the folder: /docs is still a page, listing the docs there are
    index = await client.get("/docs")
    assert index.status == 200 and 'href="/docs/evil"' in await index.text()


async def test_unknown_or_malformed_doc_names_are_json_404(client: Client) -> None:
    for path in (
        "/docs/nope",
        "/docs/..%2Fpyproject",
        "/docs/README.md",
        "/docs/guide/nope",
        "/docs/guide/index.md",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"] == "not_found"


async def test_no_docs_folder_says_so(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(settings.with_(docs_dir=tmp_path / "none" / "docs")))
    resp = await client.get("/docs")
    assert resp.status == 200 and "这次安装没有附带文档" in await resp.text()


async def test_api_explorer_page_loads_only_our_script(client: Client) -> None:
    resp = await client.get("/api")
    html = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Security-Policy"] == CSP
    assert 'data-spec="/api/openapi.json"' in html
    assert '<script type="module" src="/static/explorer.js?v=' in html
    js = await (await client.get("/static/explorer.js")).text()
    assert "innerHTML" not in js and "http" not in js  # no markup from data, no CDN
