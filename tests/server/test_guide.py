"""The user's guide (docs/guide/*.md, Chinese) is what /docs opens on: its menu lists every page
by its title, the guide first and then the English reference; every link the guide makes opens,
and no page of it is mostly English."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web
from aiohttp.test_utils import TestClient
from markdown_it import MarkdownIt

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings
from tests.support.client import ClientFactory

Client = TestClient[Any, web.Application]
GUIDE = PROJECT_ROOT / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md"))
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z]+")
# Where the words of the screens the guide names live: the console, the reports page, the
# studio and the docs pages (HTML shells and scripts).
UI_SOURCES = ("mingpian/console", "mingpian/reports", "mingpian/studio", "mingpian/manual")


def _url(page: Path) -> str:
    return "/docs" if page.stem == "index" else f"/docs/guide/{page.stem}"


def _title(md: Path) -> str:
    return next(line[2:].strip() for line in md.read_text("utf-8").splitlines() if line.startswith("# "))


def _article(html: str) -> str:
    return html[html.index("<article") : html.index("</article>")]


def _menu(html: str) -> str:
    return html[
        html.index('<nav class="doc-list"') : html.index("</nav>", html.index('<nav class="doc-list"'))
    ]


def _source_links(md: Path) -> list[str]:
    """Every link target of a Markdown file that is not another site's or this page's anchor."""
    out = []
    for tok in MarkdownIt("commonmark").enable("table").parse(md.read_text("utf-8")):
        for child in tok.children or ():
            href = str(child.attrGet("href") or "") if child.type == "link_open" else ""
            if href and not re.match(r"^(https?:|mailto:|#)", href):
                out.append(href)
    return out


def test_the_guide_has_a_page_for_each_reader() -> None:
    assert {p.stem for p in PAGES} >= {"index", "designer", "enterprise", "operator"}


async def test_docs_opens_on_the_guide_and_the_menu_shows_titles(client: Client) -> None:
    resp = await client.get("/docs")
    html = await resp.text()
    assert resp.status == 200
    article = _article(html)
    assert '<article class="doc" lang="zh-CN">' in html
    assert _title(GUIDE / "index.md") == "名片使用指南" and "名片使用指南</h1>" in article
    menu = _menu(html)
    # two groups, the guide first; each says its language
    assert menu.index("使用指南") < menu.index("参考资料")
    assert "（中文）" in menu and "（英文）" in menu
    guide_part, reference_part = menu.split("参考资料", 1)
    for page in PAGES:
        link = f'<a href="{_url(page)}"'
        assert link in guide_part, page.name
        # the page's own title, never its file name
        assert re.search(re.escape(link) + r"[^>]*>" + re.escape(_title(page)) + "</a>", guide_part), (
            page.name
        )
    for doc in sorted((PROJECT_ROOT / "docs").glob("*.md")):
        title = _title(doc)
        assert re.search(
            rf'<a href="/docs/{doc.stem}"[^>]*lang="en">{re.escape(title)}</a>', reference_part
        ), doc
        assert f">{doc.stem}</a>" not in menu or doc.stem == title
    assert '<a href="/docs/README"' in reference_part
    # the index page says which pages are in which language
    assert "中文" in article and "英文" in article
    readme = await client.get("/docs/README")
    assert '<h1 id="mingpian-名片">Mingpian 名片</h1>' in await readme.text()


async def test_every_link_of_the_guide_opens(client: Client) -> None:
    for page in PAGES:
        resp = await client.get(_url(page))
        assert resp.status == 200, page.name
        article = _article(await resp.text())
        wanted = _source_links(page)
        served = [unescape(h) for h in re.findall(r'<a href="([^"]+)"', article) if h.startswith("/")]
        # no link of the source was dropped for pointing at nothing served
        assert len(served) == len(wanted), (page.name, wanted, served)
        for href in served:
            parts = urlsplit(href)
            target = await client.get(parts.path)
            assert target.status == 200, (page.name, href)
            if parts.fragment:
                assert f'id="{unquote(parts.fragment)}"' in await target.text(), (page.name, href)


async def test_no_page_of_the_guide_is_mostly_english(client: Client) -> None:
    for page in PAGES:
        article = _article(await (await client.get(_url(page))).text())
        prose = re.sub(r"<pre>.*?</pre>", " ", article, flags=re.S)  # code examples are code
        text = unescape(re.sub(r"<[^>]+>", " ", prose))
        cjk_words = len(CJK.findall(text)) / 2  # a Chinese word is about two characters
        latin_words = len(LATIN_WORD.findall(text))
        assert cjk_words > 3 * latin_words, (page.name, cjk_words, latin_words)


def test_every_screen_and_button_the_guide_names_is_named_so_in_the_ui() -> None:
    """The guide sets a screen's, button's or field's name in bold, exactly as the UI spells it."""
    ui = "".join(
        f.read_text("utf-8")
        for folder in UI_SOURCES
        for f in sorted((PROJECT_ROOT / folder).rglob("*"))
        if f.suffix in (".js", ".py", ".html", ".j2")
    )
    for page in PAGES:
        named = re.findall(r"\*\*(.+?)\*\*", page.read_text("utf-8"))
        assert named, page.name
        assert [n for n in named if n not in ui] == [], page.name


async def test_without_a_guide_docs_opens_on_the_readme(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "README.md").write_text("# Project\n\nSee [the guide](docs/guide/index.md).\n", "utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ref.md").write_text("# Reference\n\nBack to [the README](../README.md).\n", "utf-8")
    client = await aiohttp_client(create_app(settings.with_(docs_dir=docs)))
    html = await (await client.get("/docs")).text()
    assert "<h1 " in html and ">Project</h1>" in html
    assert "使用指南" not in _menu(html)  # no guide: no empty group
    assert 'href="/docs/README"' in await (await client.get("/docs/ref")).text()
    # then a guide appears: /docs opens on it, and its links to the reference resolve
    (docs / "guide").mkdir()
    (docs / "guide" / "index.md").write_text("# 指南\n\n见 [参考](../ref.md#reference)。\n", "utf-8")
    html = await (await client.get("/docs")).text()
    assert ">指南</h1>" in html and 'href="/docs/ref#reference"' in _article(html)
    assert (await client.get("/docs/guide/nope")).status == 404
    assert (await client.get("/docs/guide/..%2Fref")).status == 404
