"""Static files of the studio (JS modules, CSS, icon) and the project fonts.

A small handler rather than `add_static`: only whitelisted names and types, explicit MIME types
(module scripts must be served as JavaScript under nosniff), and `fonts.css` generated from
whatever fonts `assets_dir/fonts/` ships, so Chinese renders with the project font when present
and falls back to the system CJK fonts otherwise.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from aiohttp import web

from ..errors import ApiError
from ..keys import settings_key

STATIC_DIR = Path(__file__).resolve().parent / "static"
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
}
FONT_TYPES = {".woff2": "woff2", ".woff": "woff", ".ttf": "truetype", ".otf": "opentype"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
FONT_FAMILY = "Mingpian Sans"


def _version() -> str:
    h = hashlib.sha256()
    for p in sorted(STATIC_DIR.iterdir()):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:10]


_VERSION = _version()


def asset_url(name: str) -> str:
    """URL of a static file with a content hash, so a new release is never served stale."""
    return f"/static/{name}?v={_VERSION}"


def font_files(assets_dir: Path) -> list[Path]:
    folder = assets_dir / "fonts"
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in FONT_TYPES and SAFE_NAME.match(p.name)
    )


def fonts_css(assets_dir: Path) -> str:
    rules = [f"/* project fonts from {assets_dir.name}/fonts/; none means system CJK fonts */"]
    for p in font_files(assets_dir):
        bold = "bold" in p.stem.lower()
        rules.append(
            "@font-face {\n"
            f'  font-family: "{FONT_FAMILY}";\n'
            f'  src: url("/static/fonts/{p.name}") format("{FONT_TYPES[p.suffix.lower()]}");\n'
            f"  font-weight: {700 if bold else 400};\n"
            "  font-display: swap;\n}"
        )
    return "\n".join(rules) + "\n"


async def static_file(request: web.Request) -> web.StreamResponse:
    rel = request.match_info["path"]
    settings = request.app[settings_key]
    if rel == "fonts.css":
        return web.Response(
            text=fonts_css(settings.assets_dir),
            content_type="text/css",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )
    folder, _, name = rel.rpartition("/")
    if folder == "fonts":
        base = settings.assets_dir / "fonts"
    elif folder == "":
        base = STATIC_DIR
    else:
        raise ApiError(404, "not_found", f"no static file {rel!r}", path="path")
    suffix = Path(name).suffix.lower()
    if not SAFE_NAME.match(name) or suffix not in TYPES:
        raise ApiError(404, "not_found", f"no static file {rel!r}", path="path")
    path = base / name
    if not path.is_file():
        raise ApiError(404, "not_found", f"no static file {rel!r}", path="path")
    resp = web.FileResponse(path, headers={"Cache-Control": "no-cache", "Content-Type": TYPES[suffix]})
    return resp


def setup(app: web.Application) -> None:
    app.router.add_get("/static/{path:.+}", static_file, name="studio_static")
