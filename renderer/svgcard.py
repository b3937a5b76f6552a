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
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jinja2 import TemplateError, TemplateSyntaxError
from PIL import Image

from .errors import Problem, TemplateInvalid
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
            f"refused reference {ref[:80]!r}: only #fragments, data:image URIs and "
            "files in the template folder or assets/ may be used",
        )


def _length(value: str | None) -> float | None:
    if value is None:
        return None
    m = _NUMBER.match(value)
    return float(m.group(1)) if m else None


def check_svg(svg: str, file: str, roots: tuple[Path, ...]) -> tuple[float, float]:
    """Raise SvgRefused unless `svg` is safe to hand to cairosvg; return its (width, height)."""
    if len(svg.encode()) > MAX_SVG_BYTES:
        raise _refuse(file, f"rendered SVG is larger than {MAX_SVG_BYTES} bytes")
    if _FORBIDDEN.search(svg):
        raise _refuse(file, "DOCTYPE, ENTITY, XInclude and xml-stylesheet are not allowed in a card SVG")
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise TemplateInvalid(
            f"{file}: rendered SVG is not well-formed XML: {exc}",
            [Problem("$", f"not well-formed XML: {exc}", file, line)],
        ) from None
    if _local(root.tag) != "svg":
        raise _refuse(file, "the root element must be <svg>")
    ids: dict[str, ET.Element] = {}
    count = 0
    stack: list[tuple[ET.Element, int]] = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise _refuse(file, f"more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise _refuse(file, f"elements nested deeper than {MAX_DEPTH}")
        if "id" in el.attrib:
            ids[el.attrib["id"]] = el
        for key in ("href", XLINK):
            if key in el.attrib:
                _check_ref(el.attrib[key], file, roots)
        for text in (
            el.attrib.get("style"),
            el.text if _local(el.tag) == "style" else None,
            *(v for k, v in el.attrib.items() if "url(" in v),
        ):
            for m in _CSS_URL.finditer(text or ""):
                _check_ref(m.group(1) or m.group(2), file, roots)
        stack.extend((child, depth + 1) for child in el)
    _check_uses(ids, root, file)
    return _dimensions(root, file)


def _check_uses(ids: dict[str, ET.Element], root: ET.Element, file: str) -> None:
    """Bound what `<use>` expands to: chains no deeper than MAX_USE_DEPTH, no cycles, and at
    most MAX_USE_EXPANSION elements drawn in total (memoised per referenced id)."""
    memo: dict[str, int] = {}

    def href(el: ET.Element) -> str | None:
        ref = el.attrib.get("href") or el.attrib.get(XLINK)
        return ref[1:] if ref and ref.startswith("#") else None

    def size(el: ET.Element, depth: int, seen: frozenset[str]) -> int:
        total = 0
        for node in el.iter():
            total += 1
            if _local(node.tag) == "use":
                target = href(node)
                if target is None or target not in ids:
                    continue
                if target in seen:
                    raise _refuse(file, f"<use> of #{target} refers back to itself")
                if depth + 1 > MAX_USE_DEPTH:
                    raise _refuse(file, f"<use> chains deeper than {MAX_USE_DEPTH}")
                if target not in memo:
                    memo[target] = size(ids[target], depth + 1, seen | {target})
                total += memo[target]
            if total > MAX_USE_EXPANSION:
                raise _refuse(file, f"<use> elements expand to more than {MAX_USE_EXPANSION} elements")
        return total

    size(root, 0, frozenset())


def _dimensions(root: ET.Element, file: str) -> tuple[float, float]:
    vb = root.attrib.get("viewBox")
    w, h = _length(root.attrib.get("width")), _length(root.attrib.get("height"))
    if vb:
        try:
            _, _, vw, vh = (float(x) for x in vb.replace(",", " ").split())
        except ValueError:
            raise _refuse(file, f"viewBox {vb[:40]!r} is not four numbers") from None
        w, h = w or vw, h or vh
    if not w or not h or w <= 0 or h <= 0:
        raise _refuse(file, "the <svg> needs a viewBox or width and height in px")
    if w > 100_000 or h > 100_000:
        raise _refuse(file, "the <svg> is larger than 100000 units")
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
    env = make_environment()
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
        raise _refuse(file, f"larger than {MAX_SVG_BYTES} bytes")
    try:
        tmpl = _compiled(str(template_path), st.st_mtime_ns, st.st_size)
        return str(tmpl.render(context))
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(
            f"{file}:{exc.lineno}: {exc.message}", [Problem("$", str(exc.message), file, exc.lineno)]
        ) from None
    except (TemplateError, OverflowError, TypeError, ValueError) as exc:
        raise TemplateInvalid(f"{file}: {exc}", [Problem("$", str(exc)[:240], file)]) from None


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
        raise _refuse(file, f"at {width} px wide the picture would be {out_h} px tall (at most {MAX_HEIGHT})")
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
            f"{file}: SVG could not be drawn: {exc}",
            [Problem("$", f"SVG could not be drawn: {exc}"[:240], file)],
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
        return [exc]
    return []
