"""Designer SVG templates (card.svg.j2) cannot read files, reach the network or blow up memory,
and draw text with the project's font."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from renderer import TemplateInvalid, TemplateStore
from renderer.image import ImageOptions, render_card_bytes
from renderer.localfiles import FileRefused, MediaContext
from renderer.svgcard import SvgRefused, make_fetcher, render_svg
from tests.support.templates import TEMPLATES, write_template

ASSETS = TEMPLATES.parent / "assets"
CARD = "card:\n  title: '{{ title }}'\n  description: 测试\n"
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}}
HEAD = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="200" height="100" viewBox="0 0 200 100">'
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_template(tmp_path, "svgcard", CARD, SCHEMA)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real TCP port on 127.0.0.1: if the renderer tried to fetch from it, a connection waits."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s
    s.close()


def _render(folder: Path, svg: str, width: int = 400) -> Image.Image:
    return render_svg(svg, MediaContext(folder, ASSETS), width, "svgcard/card.svg.j2")


def _no_connection(listener: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_file_url_is_refused(folder: Path) -> None:
    with pytest.raises(SvgRefused, match="不允许引用"):
        _render(folder, HEAD + '<image href="file:///etc/passwd" width="10" height="10"/></svg>')
    with pytest.raises(SvgRefused):
        _render(folder, HEAD + '<image xlink:href="/etc/passwd" width="10" height="10"/></svg>')
    with pytest.raises(SvgRefused):
        _render(folder, HEAD + '<image href="../../../../../etc/passwd" width="10" height="10"/></svg>')


def test_http_url_is_refused_and_nothing_connects(folder: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    for svg in (
        HEAD + f'<image href="http://127.0.0.1:{port}/x.png" width="10" height="10"/></svg>',
        HEAD + f'<rect width="10" height="10" style="fill: url(http://127.0.0.1:{port}/p#x)"/></svg>',
        HEAD + f'<style>@import "http://127.0.0.1:{port}/a.css";</style></svg>',
        HEAD + f'<rect width="10" height="10" fill="url(http://127.0.0.1:{port}/g#x)"/></svg>',
    ):
        with pytest.raises(SvgRefused):
            _render(folder, svg)
    time.sleep(0.05)
    _no_connection(listener)


def test_fetcher_itself_refuses_everything_outside_the_roots(folder: Path, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    fetch = make_fetcher((folder.resolve(), ASSETS.resolve()), folder.resolve())
    for url in (
        "file:///etc/passwd",
        f"http://127.0.0.1:{port}/",
        "https://example.cn/a.png",
        "data:image/svg+xml;base64,PHN2Zy8+",
        "ftp://127.0.0.1/x",
        "file://otherhost/etc/passwd",
    ):
        with pytest.raises(FileRefused):
            fetch(url, "image/png")
    (folder / "link.png").symlink_to("/etc/hostname")
    with pytest.raises(FileRefused):
        fetch((folder / "link.png").as_uri(), "image/png")
    _no_connection(listener)


def test_xxe_is_refused(folder: Path) -> None:
    svg = (
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + HEAD
        + "<text>&xxe;</text></svg>"
    )
    with pytest.raises(SvgRefused, match="DOCTYPE"):
        _render(folder, svg)


def test_billion_laughs_is_refused_quickly(folder: Path) -> None:
    ents = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    svg = f'<?xml version="1.0"?><!DOCTYPE svg [{ents}]>' + HEAD + "<text>&lol9;</text></svg>"
    start = time.monotonic()
    with pytest.raises(SvgRefused):
        _render(folder, svg)
    assert time.monotonic() - start < 5  # refused up front, never expanded


def test_nested_use_bomb_and_cycles_are_refused(folder: Path) -> None:
    defs = ['<rect id="u0" width="1" height="1"/>']
    for i in range(1, 12):
        defs.append(f'<g id="u{i}">' + "".join(f'<use href="#u{i - 1}"/>' for _ in range(10)) + "</g>")
    bomb = HEAD + "<defs>" + "".join(defs) + '</defs><use href="#u11"/></svg>'
    with pytest.raises(SvgRefused, match="use"):
        _render(folder, bomb)
    cycle = HEAD + '<g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>'
    with pytest.raises(SvgRefused, match="引用回它自己"):
        _render(folder, cycle)


def test_oversized_dimensions_are_refused(folder: Path) -> None:
    tall = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 100000"><rect width="1" height="1"/></svg>'
    )
    with pytest.raises(SvgRefused, match="像素高"):
        _render(folder, tall)
    with pytest.raises(SvgRefused):
        _render(folder, '<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>')
    deep = HEAD + "<g>" * 100 + "</g>" * 100 + "</svg>"
    with pytest.raises(SvgRefused, match="超过"):
        _render(folder, deep)


def test_local_image_in_the_template_folder_is_allowed(folder: Path) -> None:
    Image.new("RGB", (20, 20), (0, 0, 255)).save(folder / "dot.png")
    im = _render(
        folder,
        HEAD + '<image href="dot.png" x="0" y="0" width="200" height="100" '
        'preserveAspectRatio="none"/></svg>',
        200,
    )
    r, _g, b = im.getpixel((100, 50))
    assert b > 200 and r < 40


def test_text_uses_the_project_font_whatever_family_is_asked(folder: Path) -> None:
    def text(family: str, s: str) -> Image.Image:
        return _render(
            folder, HEAD + f'<text x="10" y="60" font-family="{family}" font-size="40">{s}</text></svg>', 200
        )

    ours = text("Noto Sans CJK SC", "名A")
    for family in ("DejaVu Serif", "serif", "Comic Sans MS"):
        assert ImageChops.difference(ours, text(family, "名A")).getbbox() is None, family
    a, b = text("sans-serif", "名"), text("sans-serif", "片")
    assert a.convert("L").getextrema()[0] < 100  # ink was drawn
    assert ImageChops.difference(a, b).getbbox() is not None  # distinct glyphs, not one box


def test_card_svg_template_with_data_escaped_and_wrapped(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "svgcard", CARD, SCHEMA)
    (folder / "card.svg.j2").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 360 200">'
        '<rect width="360" height="200" fill="{{ brand.color }}"/>'
        "{% for line in wrap(card.title, 20, 300, 2) %}"
        '<text x="10" y="{{ 40 + loop.index0 * 28 }}" font-size="20" fill="#fff">{{ line }}</text>'
        "{% endfor %}</svg>",
        "utf-8",
    )
    t = TemplateStore(tmp_path, 0).get("svgcard")
    msg = t.render({"title": "<b>&amp; 合作伙伴</b>" * 4})
    data = render_card_bytes(msg, MediaContext(folder, ASSETS), ImageOptions(width=720))
    import io

    im = Image.open(io.BytesIO(data))
    assert im.size == (720, 400)


def test_svg_template_errors_carry_the_file(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "svgcard", CARD, SCHEMA)
    (folder / "card.svg.j2").write_text('<svg xmlns="http://www.w3.org/2000/svg">\n{{ card.title(', "utf-8")
    t = TemplateStore(tmp_path, 0).get("svgcard")
    with pytest.raises(TemplateInvalid) as err:
        render_card_bytes(t.render({"title": "x"}), MediaContext(folder, ASSETS), ImageOptions(width=360))
    assert err.value.problems[0].file == "svgcard/card.svg.j2"
    (folder / "card.svg.j2").write_text("{{ ''.__class__.__mro__ }}", "utf-8")
    with pytest.raises(TemplateInvalid):
        render_card_bytes(t.render({"title": "x"}), MediaContext(folder, ASSETS), ImageOptions(width=360))


def test_lint_reports_a_refused_svg_template_with_its_file(tmp_path: Path) -> None:
    from mingpian.lint import lint_templates
    from renderer import DEFAULT

    folder = write_template(tmp_path, "svgcard", CARD, SCHEMA, sample={"title": "标题"})
    assert lint_templates(TemplateStore(tmp_path, 0), None, DEFAULT) == []
    (folder / "card.svg.j2").write_text(HEAD + '<image href="http://127.0.0.1/x.png"/></svg>', "utf-8")
    lines = lint_templates(TemplateStore(tmp_path, 0), None, DEFAULT)
    assert (
        len(lines) == 1
        and str(lines[0]).startswith(f"{tmp_path.name}/svgcard/card.svg.j2: E030 ")
        and "不允许引用" in lines[0].message
    )


GROUP = '<defs><g id="g">' + '<rect width="1" height="1"/>' * 1000 + "</g></defs>"
PATTERN = (
    '<defs><pattern id="p" width="10" height="10">'
    + '<rect width="1" height="1"/>' * 1000
    + "</pattern></defs>"
)
CSS_REFUSED = [
    # the bypass found by the hardening review: <use> targets set from CSS were not counted
    ("css-href", HEAD + GROUP + '<style>use{href:"#g"}</style>' + "<use/>" * 2000 + "</svg>", "'href'"),
    ("style-href", HEAD + GROUP + '<use style="href:#g"/>' * 2000 + "</svg>", "'href'"),
    ("css-xlink", HEAD + GROUP + "<style>use{xlink-href:url(#g)}</style><use/></svg>", "不能用 CSS 属性"),
    ("css-id", HEAD + "<style>rect{id:g}</style><rect/></svg>", "'id'"),
    ("import-local", HEAD + '<style>@import "a.css";</style></svg>', "@import"),
    ("import-url", HEAD + "<style>@import url(a.css);</style></svg>", "@import"),
    ("css-url-file", HEAD + "<style>rect{fill:url(file:///etc/passwd)}</style><rect/></svg>", "不允许引用"),
    (
        "pattern-attribute",
        HEAD + PATTERN + '<rect width="5" height="5" fill="url(#p)"/>' * 100 + "</svg>",
        "展开后超过",
    ),
    (
        "pattern-sheet",
        HEAD
        + PATTERN
        + "<style>rect{fill:url(#p)}</style>"
        + '<rect width="5" height="5"/>' * 100
        + "</svg>",
        "展开后超过",
    ),
    (
        "marker-style",
        HEAD + PATTERN + '<path d="M0 0L1 1" style="marker-start:url(#p)"/>' * 100 + "</svg>",
        "展开后超过",
    ),
    ("duplicate-id", HEAD + '<g id="a"/><g id="a"/></svg>', "被多个元素使用"),
]


@pytest.mark.parametrize(("svg", "words"), [c[1:] for c in CSS_REFUSED], ids=[c[0] for c in CSS_REFUSED])
def test_css_cannot_reach_past_the_checks(folder: Path, svg: str, words: str) -> None:
    start = time.monotonic()
    with pytest.raises(SvgRefused, match=words.replace("(", r"\(")):
        _render(folder, svg)
    assert time.monotonic() - start < 1.0


def test_presentation_css_and_a_gradient_fill_still_draw(folder: Path) -> None:
    svg = (
        HEAD + '<defs><linearGradient id="lg"><stop offset="0" stop-color="#00f"/>'
        '<stop offset="1" stop-color="#00f"/></linearGradient></defs>'
        "<style>rect{fill:url(#lg); stroke:none; -inkscape-x:1} text{font-family:serif; font-size:20px}</style>"
        '<rect width="200" height="100" style="opacity:1"/><text x="5" y="50">名片</text></svg>'
    )
    r, _g, b = _render(folder, svg, 200).getpixel((100, 10))
    assert b > 200 and r < 40


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("<svg xmlns='http://www.w3.org/2000/svg'>\n{{ card.title|truncate(1) }}</svg>", "AssertionError"),
        ("<svg xmlns='http://www.w3.org/2000/svg'>\n\n{{ 'x'.ljust(10**7) }}</svg>", "limit"),
        (
            "<svg xmlns='http://www.w3.org/2000/svg'>{% for i in range(1000) %}{% for j in range(1000) %}"
            "{% endfor %}{% endfor %}</svg>",
            "steps",
        ),
    ],
)
def test_svg_template_failures_are_template_errors_with_their_line(
    tmp_path: Path, source: str, words: str
) -> None:
    folder = write_template(tmp_path, "svgcard", CARD, SCHEMA)
    (folder / "card.svg.j2").write_text(source, "utf-8")
    t = TemplateStore(tmp_path, 0).get("svgcard")
    with pytest.raises(TemplateInvalid) as err:
        render_card_bytes(
            t.render({"title": "长标题"}), MediaContext(folder, ASSETS), ImageOptions(width=360)
        )
    problem = err.value.problems[0]
    assert problem.file == "svgcard/card.svg.j2" and words in problem.message
    assert problem.line == source.count("\n", 0, source.index("{{" if "{{" in source else "{%")) + 1
