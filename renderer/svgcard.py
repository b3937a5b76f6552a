"""A designer's own card layout: `card.svg.j2` (Jinja2 SVG) in the template folder → picture.

The template is untrusted, so the SVG it produces is checked before cairosvg sees it, and
cairosvg gets a fetcher that reads only the template folder and assets/:
- no DOCTYPE / ENTITY / XInclude at all (XXE, billion laughs); cairosvg's defusedxml is a second line;
- references (`href`, CSS `url()`, `@import`) must be `#fragment`, a relative file in the
  template folder or assets/, or a `data:image/png|jpeg|webp` URI; `file:`, `http:` and friends
  are refused (and refused again by the fetcher, which resolves symlinks);
- bounded element count, nesting depth, `<use>` chain depth and total `<use>` expansion (a
  tree of `<use>` referencing `<use>` grows exponentially: the SVG billion laughs);
- the output is exactly the requested width and at most MAX_HEIGHT tall.
Text is drawn by cairo through fontconfig; the process's fontconfig is switched to a config that
knows only the full Noto Sans CJK SC faces, so every `font-family` resolves to the project's font,
as in Pillow. Cairo draws a string with one font, so SVG text has no emoji or extension-B
fallback: a designer SVG draws Simplified and Traditional Chinese and extension A.

Why one module of this length: the checks, the fetcher and the rendering are one security
boundary; keeping them together keeps every way into cairosvg in one file to review.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import io
import re
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import tinycss2
from jinja2 import TemplateSyntaxError
from PIL import Image

from .budget import Limits
from .errors import Problem, TemplateInvalid
from .explain import jinja_syntax
from .fields import describe_error
from .fonts import CHAINS, FONT_FAMILY, face, font_dir, locate
from .localfiles import (
    MAX_SOURCE_PIXELS,
    FileRefused,
    MediaContext,
    read_limited,
    resolve_file_url,
    resolve_relative,
)
from .model import Message
from .sandbox import make_environment
from .textlayout import wrap

SVG_TEMPLATE = "card.svg.j2"
MAX_SVG_BYTES = 512 * 1024
MAX_ELEMENTS = 5000
MAX_DEPTH = 48
MAX_USE_DEPTH = 6
MAX_USE_EXPANSION = 20_000
MAX_HEIGHT = 4 * 1440
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|webp);base64,", re.I)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]*)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""", re.I)
_FORBIDDEN = re.compile(r"<!\s*(DOCTYPE|ENTITY)|<\?xml-stylesheet|xi:include", re.I)
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px)?\s*$")
XLINK = "{http://www.w3.org/1999/xlink}href"
SVG_NS = "{http://www.w3.org/2000/svg}"
# cairosvg turns every CSS declaration into an attribute of the elements it matches, so CSS
# could set `href` or `id` and reach past the checks below. CSS in a card SVG may set the
# presentation properties only (SVG 1.1 and 2, CSS Fonts and Text that cairosvg reads).
PRESENTATION = frozenset(
    [
        "alignment-baseline",
        "baseline-shift",
        "clip",
        "clip-path",
        "clip-rule",
        "color",
        "color-interpolation",
        "color-interpolation-filters",
        "color-profile",
        "color-rendering",
        "cursor",
        "direction",
        "display",
        "dominant-baseline",
        "enable-background",
        "fill",
        "fill-opacity",
        "fill-rule",
        "filter",
        "flood-color",
        "flood-opacity",
        "font",
        "font-family",
        "font-feature-settings",
        "font-kerning",
        "font-size",
        "font-size-adjust",
        "font-stretch",
        "font-style",
        "font-variant",
        "font-weight",
        "glyph-orientation-horizontal",
        "glyph-orientation-vertical",
        "image-rendering",
        "isolation",
        "kerning",
        "letter-spacing",
        "lighting-color",
        "line-height",
        "marker",
        "marker-end",
        "marker-mid",
        "marker-start",
        "mask",
        "mix-blend-mode",
        "opacity",
        "overflow",
        "paint-order",
        "pointer-events",
        "shape-rendering",
        "stop-color",
        "stop-opacity",
        "stroke",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-opacity",
        "stroke-width",
        "text-anchor",
        "text-decoration",
        "text-rendering",
        "text-transform",
        "transform",
        "transform-origin",
        "unicode-bidi",
        "vector-effect",
        "visibility",
        "white-space",
        "word-spacing",
        "writing-mode",
    ]
)
# Attributes whose url(#id) draws the referenced element again for the element that names it.
URL_ATTRIBUTES = ("fill", "stroke", "marker-start", "marker-mid", "marker-end", "clip-path", "mask", "filter")


class SvgRefused(TemplateInvalid):
    """The designer SVG breaks a safety rule; reported with the template file like any error."""


# -- fonts -------------------------------------------------------------------------------------
_fc_lock = threading.Lock()
_fc_done = False
FONTCONFIG_XML = """<?xml version="1.0"?>
<fontconfig>
  {dirs}
  <cachedir>{cache}</cachedir>
  <match target="pattern">
    <edit name="family" mode="assign" binding="strong"><string>{family}</string></edit>
  </match>
</fontconfig>
"""


def svg_font_dirs() -> list[Path]:
    """The folders of the full CJK faces: cairo draws a string with one font (no fallback), so
    SVG text gets the face with GB18030's whole required set rather than the GB2312 subset."""
    return sorted({locate(f).parent for f in (CHAINS["regular"][1], CHAINS["bold"][1])})


def use_project_fonts() -> bool:
    """Make this process's fontconfig (what cairo draws SVG text with) know only assets/fonts,
    mapping every family to the project's font. Returns False when fontconfig can't be reached."""
    global _fc_done
    with _fc_lock:
        if _fc_done:
            return True
        name = ctypes.util.find_library("fontconfig")
        if not name:
            return False
        fc = ctypes.CDLL(name)
        fc.FcConfigCreate.restype = ctypes.c_void_p
        fc.FcConfigParseAndLoadFromMemory.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        fc.FcConfigBuildFonts.argtypes = [ctypes.c_void_p]
        fc.FcConfigSetCurrent.argtypes = [ctypes.c_void_p]
        cfg = fc.FcConfigCreate()
        cache = Path(tempfile.gettempdir()) / "mingpian-fontconfig"
        cache.mkdir(exist_ok=True)
        dirs = "\n  ".join(f"<dir>{d}</dir>" for d in svg_font_dirs())
        xml = FONTCONFIG_XML.format(dirs=dirs, family=FONT_FAMILY, cache=cache).encode()
        if not fc.FcConfigParseAndLoadFromMemory(cfg, xml, 1):
            return False
        fc.FcConfigBuildFonts(cfg)
        _fc_done = bool(fc.FcConfigSetCurrent(cfg))
        return _fc_done


# -- checks ------------------------------------------------------------------------------------
def _refuse(file: str, message: str, path: str = "") -> SvgRefused:
    return SvgRefused(f"{file}: {message}", [Problem(path or "$", message, file)])


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _check_ref(ref: str, file: str, roots: tuple[Path, ...]) -> None:
    ref = ref.strip()
    if not ref or ref.startswith("#"):
        return
    if _DATA_IMAGE.match(ref):
        return
    if resolve_relative(ref.split("#", 1)[0], roots) is None:
        raise _refuse(
            file,
            f"不允许引用 {ref[:80]!r}：只能用 #片段、data:image 图片，以及模板文件夹或 assets/ 里的文件",
        )


def _length(value: str | None) -> float | None:
    if value is None:
        return None
    m = _NUMBER.match(value)
    return float(m.group(1)) if m else None


def check_svg(svg: str, file: str, roots: tuple[Path, ...]) -> tuple[float, float]:
    """Raise SvgRefused unless `svg` is safe to hand to cairosvg; return its (width, height)."""
    if len(svg.encode()) > MAX_SVG_BYTES:
        raise _refuse(file, f"生成的 SVG 超过 {MAX_SVG_BYTES} 字节")
    if _FORBIDDEN.search(svg):
        raise _refuse(file, "卡片 SVG 里不能用 DOCTYPE、ENTITY、XInclude 和 xml-stylesheet")
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise TemplateInvalid(
            f"{file}: 生成的 SVG 不是合法的 XML",
            [
                Problem(
                    "$",
                    "生成的 SVG 不是合法的 XML（标签没有闭合，或 & < 没有转义？）",
                    file,
                    line,
                    detail=str(exc),
                )
            ],
        ) from None
    if _local(root.tag) != "svg":
        raise _refuse(file, "最外层的元素必须是 <svg>")
    ids: dict[str, ET.Element] = {}
    sheet_refs: list[str] = []  # url(#id) in <style> rules: may apply to any element
    count = 0
    stack: list[tuple[ET.Element, int]] = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise _refuse(file, f"元素超过 {MAX_ELEMENTS} 个")
        if depth > MAX_DEPTH:
            raise _refuse(file, f"元素嵌套超过 {MAX_DEPTH} 层")
        if "id" in el.attrib:
            if el.attrib["id"] in ids:
                raise _refuse(file, f"id {el.attrib['id'][:40]!r} 被多个元素使用")
            ids[el.attrib["id"]] = el
        for key in ("href", XLINK):
            if key in el.attrib:
                _check_ref(el.attrib[key], file, roots)
        if _local(el.tag) == "style":
            sheet_refs += _check_css("".join(el.itertext()), file, roots, sheet=True)
        if "style" in el.attrib:
            _check_css(el.attrib["style"], file, roots, sheet=False)
        for v in el.attrib.values():
            if "url(" in v:
                for m in _CSS_URL.finditer(v):
                    _check_ref(m.group(1) or m.group(2), file, roots)
        stack.extend((child, depth + 1) for child in el)
    _check_uses(ids, root, file, [(r, True) for r in sheet_refs if r in ids])
    return _dimensions(root, file)


def _check_css(text: str, file: str, roots: tuple[Path, ...], sheet: bool) -> list[str]:
    """A <style> sheet or a style attribute: no at-rules (`@import`), presentation properties
    only, every url() a permitted reference. Returns the #ids its url()s name."""
    declarations: list[Any] = []
    if sheet:
        for rule in tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True):
            if rule.type == "at-rule":
                raise _refuse(file, f"卡片 SVG 的 <style> 里不能用 @{rule.lower_at_keyword}")
            if rule.type == "qualified-rule":
                declarations += tinycss2.parse_declaration_list(
                    rule.content, skip_comments=True, skip_whitespace=True
                )
    else:
        declarations = tinycss2.parse_declaration_list(text, skip_comments=True, skip_whitespace=True)
    refs: list[str] = []
    for decl in declarations:
        if decl.type != "declaration" or decl.lower_name.startswith("-"):
            continue  # cairosvg ignores these too
        if decl.lower_name not in PRESENTATION:
            raise _refuse(
                file,
                f"不能用 CSS 属性 {decl.lower_name[:40]!r}："
                "卡片 SVG 的 CSS 只能设置外观属性（fill、stroke、font-…）",
            )
        for ref in _css_urls(decl.value):
            _check_ref(ref, file, roots)
            if ref.strip().startswith("#"):
                refs.append(ref.strip()[1:])
    for m in _CSS_URL.finditer(text):  # whatever the parser made of it, the raw text too
        _check_ref(m.group(1) or m.group(2), file, roots)
    return refs


def _css_urls(tokens: list[Any]) -> list[str]:
    out = []
    for token in tokens:
        if token.type == "url":
            out.append(str(token.value))
        elif token.type == "function":
            if token.lower_name == "url":
                out.extend(str(a.value) for a in token.arguments if a.type == "string")
            else:
                out.extend(_css_urls(token.arguments))
    return out


def _element_refs(el: ET.Element) -> list[str]:
    """The #ids an element draws again: its <use> target and its url(#id) paints, markers,
    clips, masks and filters (attributes and its style attribute)."""
    refs = []
    if _local(el.tag) == "use":
        ref = el.attrib.get("href") or el.attrib.get(XLINK)
        if ref and ref.startswith("#"):
            refs.append(ref[1:])
    values = [el.attrib[a] for a in URL_ATTRIBUTES if a in el.attrib]
    if "style" in el.attrib:
        values.append(el.attrib["style"])
    for v in values:
        for m in _CSS_URL.finditer(v):
            ref = (m.group(1) or "").strip()
            if ref.startswith("#"):
                refs.append(ref[1:])
    return refs


def _check_uses(
    ids: dict[str, ET.Element], root: ET.Element, file: str, sheet_refs: list[tuple[str, bool]]
) -> None:
    """Bound what references expand to: `<use>` and url(#id) (a pattern, marker, clip or mask
    is drawn again for every element naming it; an id named in <style> counts for every
    element). Chains no deeper than MAX_USE_DEPTH, no cycles, at most MAX_USE_EXPANSION
    elements drawn in total (memoised per referenced id)."""
    memo: dict[str, int] = {}

    def size(el: ET.Element, depth: int, seen: frozenset[str]) -> int:
        total = 0
        for node in el.iter():
            total += 1
            for target, from_sheet in (*((t, False) for t in _element_refs(node)), *sheet_refs):
                if target not in ids:
                    continue
                if target in seen:
                    if from_sheet:  # a rule that also matches inside its own target
                        continue
                    raise _refuse(file, f"<use> 引用的 #{target} 又引用回它自己")
                if depth + 1 > MAX_USE_DEPTH:
                    raise _refuse(file, f"<use> 嵌套超过 {MAX_USE_DEPTH} 层")
                if target not in memo:
                    memo[target] = size(ids[target], depth + 1, seen | {target})
                total += memo[target]
                if total > MAX_USE_EXPANSION:
                    raise _refuse(file, f"<use> 和 url(#…) 引用展开后超过 {MAX_USE_EXPANSION} 个元素")
        return total

    size(root, 0, frozenset())


def _dimensions(root: ET.Element, file: str) -> tuple[float, float]:
    vb = root.attrib.get("viewBox")
    w, h = _length(root.attrib.get("width")), _length(root.attrib.get("height"))
    if vb:
        try:
            _, _, vw, vh = (float(x) for x in vb.replace(",", " ").split())
        except ValueError:
            raise _refuse(file, f"viewBox {vb[:40]!r} 不是四个数字") from None
        w, h = w or vw, h or vh
    if not w or not h or w <= 0 or h <= 0:
        raise _refuse(file, "<svg> 需要 viewBox，或以 px 为单位的 width 和 height")
    if w > 100_000 or h > 100_000:
        raise _refuse(file, "<svg> 超过 100000 个单位")
    return w, h


# -- fetching ----------------------------------------------------------------------------------
def make_fetcher(roots: tuple[Path, ...], base: Path | None = None) -> Callable[[str, str], bytes]:
    """cairosvg's url_fetcher: files under `roots` and raster data: URIs, nothing else.
    cairosvg resolves relative references against the template folder (`base`); a name not
    found there is looked up in the other roots (assets/)."""

    def fetch(url: str, resource_type: str) -> bytes:
        if url.startswith("data:"):
            if not _DATA_IMAGE.match(url):
                raise FileRefused("only data:image/png|jpeg|webp URIs are allowed")
            try:
                data = base64.b64decode(url.split(",", 1)[1], validate=False)
            except (binascii.Error, ValueError):
                raise FileRefused("bad base64 in data: URI") from None
        else:
            path = _fallback(url, base, roots) or resolve_file_url(url, roots)
            if resource_type == "image/svg+xml" or path.suffix.lower() in (".svg", ".svgz"):
                raise FileRefused("external SVG files are not allowed; inline the drawing")
            data = read_limited(path)
        _check_raster(data)
        return data

    return fetch


def _fallback(url: str, base: Path | None, roots: tuple[Path, ...]) -> Path | None:
    parts = urlsplit(url)
    if base is None or parts.scheme != "file":
        return None
    path = Path(unquote(parts.path))
    if path.exists() or not path.is_relative_to(base):
        return None
    return resolve_relative(str(path.relative_to(base)), roots)


def _check_raster(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Exception:
        raise FileRefused("not a readable raster image") from None
    if w * h > MAX_SOURCE_PIXELS:
        raise FileRefused(f"image {w}x{h} has more than {MAX_SOURCE_PIXELS} pixels")


# -- rendering ---------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _compiled(path: str, mtime_ns: int, size: int) -> Any:
    # It runs in a media worker, not the event loop: a longer time limit; its output is an SVG.
    env = make_environment(Limits(max_output=MAX_SVG_BYTES, seconds=1.0))
    env.autoescape = True  # values land in XML: & < > " ' must be escaped
    source = Path(path).read_text("utf-8")
    return env.from_string(source)


def _wrap_for_svg(
    text: Any, size: float = 14, width: float = 300, lines: int = 3, weight: str = "regular"
) -> list[str]:
    """`wrap(text, size, width, lines)` for designers: SVG has no line wrapping of its own."""
    f = face(max(6, min(200, round(float(size)))), "bold" if weight == "bold" else "regular")
    return list(
        wrap(str(text or ""), f, max(10.0, min(4000.0, float(width))), max(1, min(50, int(lines)))).lines
    )


def svg_context(message: Message, width: int, data: dict[str, Any] | None) -> dict[str, Any]:
    def card(c: Any) -> dict[str, Any]:
        return {
            "title": c.title or "",
            "description": c.description or "",
            "media": {"url": c.media.url, "height": c.media.height} if c.media else None,
            "suggestions": [{"kind": s.kind, "text": s.text} for s in c.suggestions],
        }

    cards = [card(c) for c in message.cards]
    return {
        "width": width,
        "brand": {
            "name": message.brand.name,
            "signature": message.brand.signature,
            "color": message.brand.color,
            "logo": message.brand.logo,
        },
        "card": cards[0] if cards else {},
        "cards": cards,
        "chips": [{"kind": s.kind, "text": s.text} for s in message.chips],
        "data": data or {},
        "font_family": FONT_FAMILY,
        "wrap": _wrap_for_svg,
    }


def render_svg_source(template_path: Path, context: dict[str, Any], file: str) -> str:
    st = template_path.stat()
    if st.st_size > MAX_SVG_BYTES:
        raise _refuse(file, f"card.svg.j2 超过 {MAX_SVG_BYTES} 字节")
    try:
        tmpl = _compiled(str(template_path), st.st_mtime_ns, st.st_size)
        return str(tmpl.render(context))
    except TemplateSyntaxError as exc:
        said = jinja_syntax(str(exc.message))
        raise TemplateInvalid(
            f"{file}:{exc.lineno}: {said}", [Problem("$", said, file, exc.lineno, detail=exc.message)]
        ) from None
    except Exception as exc:  # whatever the template does wrong is the template's error
        line = _template_line(exc)
        message = describe_error(exc)[:240]
        where = f"{file}:{line}" if line else file
        raise TemplateInvalid(f"{where}: {message}", [Problem("$", message, file, line)]) from None


def _template_line(exc: BaseException) -> int | None:
    """The line of card.svg.j2 where `exc` was raised (Jinja rewrites the traceback to it)."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_svg_template(
    message: Message, ctx: MediaContext, width: int, data: dict[str, Any] | None = None
) -> Image.Image:
    """Render the template folder's card.svg.j2 to an RGB image `width` px wide."""
    assert ctx.template_dir is not None
    file = f"{ctx.template_dir.name}/{SVG_TEMPLATE}"
    svg = render_svg_source(ctx.template_dir / SVG_TEMPLATE, svg_context(message, width, data), file)
    return render_svg(svg, ctx, width, file)


def render_svg(svg: str, ctx: MediaContext, width: int, file: str = SVG_TEMPLATE) -> Image.Image:
    """Check and rasterise an SVG string; only files under the context's roots are readable."""
    roots = ctx.roots
    w, h = check_svg(svg, file, roots)
    out_h = round(width * h / w)
    if out_h > MAX_HEIGHT or out_h < 1:
        raise _refuse(file, f"宽 {width} 像素时图片会有 {out_h} 像素高（最多 {MAX_HEIGHT}）")
    use_project_fonts()
    from cairosvg.surface import PNGSurface  # late: loads cairo, the built-in layout never needs it

    base = (ctx.template_dir or ctx.assets_dir or Path.cwd()).resolve()
    try:
        png = PNGSurface.convert(
            bytestring=svg.encode(),
            url=f"{base}/",
            output_width=width,
            output_height=out_h,
            unsafe=False,
            url_fetcher=make_fetcher(roots, base),
            background_color="white",
        )
    except FileRefused as exc:
        raise _refuse(file, str(exc)) from None
    except Exception as exc:  # cairosvg on odd-but-safe input: the template's fault, not a 500
        raise TemplateInvalid(
            f"{file}: SVG 画不出来",
            [Problem("$", "SVG 画不出来", file, detail=f"SVG could not be drawn: {exc}"[:240])],
        ) from None
    im = Image.open(io.BytesIO(png))
    im.load()
    return im.convert("RGB")


def svg_problems(template: Any, message: Message, assets_dir: Path | None = None) -> list[TemplateInvalid]:
    """For `mingpian lint`: the template's card.svg.j2 (if any) rendered with its sample data."""
    folder = Path(template.folder)
    if not (folder / SVG_TEMPLATE).is_file():
        return []
    assets = assets_dir or font_dir().parent
    try:
        render_svg_template(message, MediaContext(folder, assets), 360, template.sample)
    except TemplateInvalid as exc:
        # named as the template's other files are (the folder as the user reached it)
        shown = template.files["card.yaml"].rsplit("/", 1)[0] + "/" + SVG_TEMPLATE
        problems = [replace(p, file=shown) if p.file else p for p in exc.problems]
        return [TemplateInvalid(exc.message, problems)]
    return []
