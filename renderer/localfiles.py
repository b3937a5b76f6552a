"""The only files a template's media may read: its own folder and the shared assets folder.

Templates are untrusted. A logo, photo or SVG `<image>` reference is resolved against those two
roots only; absolute paths, `..` escapes, symlinks pointing outside and every URL scheme are
refused. Photos named by an http(s) URL are never fetched by the renderer (a render must not
reach the network on a template's say-so); callers may pass the bytes in instead. A library
file (`media:<id>`, mediarefs.py) is read through the caller's resolver, and only when the path
it answers lies under the library folder the caller names.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

from .mediarefs import MEDIA_PREFIX, media_id

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_SOURCE_PIXELS = 40_000_000  # 8000 x 5000; Pillow's own bomb check is at ~89 M
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"})


class FileRefused(ValueError):
    """A reference outside the allowed roots, of a refused kind, or too large."""


@dataclass(frozen=True, slots=True)
class MediaContext:
    """Where a render may read from: template folder, shared assets, bytes handed in by URL."""

    template_dir: Path | None = None
    assets_dir: Path | None = None
    photos: Mapping[str, bytes] = field(default_factory=dict)
    library: Callable[[str], Path | None] | None = None  # a library id → its file
    library_root: Path | None = None  # the only folder `library` may answer from

    @property
    def roots(self) -> tuple[Path, ...]:
        return tuple(p.resolve() for p in (self.template_dir, self.assets_dir) if p is not None)


def inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_relative(ref: str, roots: Sequence[Path]) -> Path | None:
    """`ref` (like `logo.png` or `fonts/x.otf`) as an existing file under one of `roots`."""
    if not ref or "\0" in ref or ref.startswith(("/", "\\")) or ":" in ref:
        return None
    for root in roots:
        candidate = (root / ref).resolve()
        if inside(candidate, roots) and candidate.is_file():
            return candidate
    return None


def resolve_file_url(url: str, roots: Sequence[Path]) -> Path:
    """A `file:` URL (what cairosvg hands its fetcher) checked against `roots`."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise FileRefused(f"refused to fetch {url[:120]!r}: only files of the template are readable")
    path = Path(unquote(parts.path)).resolve()
    if not inside(path, roots):
        raise FileRefused(f"refused to read {path}: outside the template folder and assets/")
    if not path.is_file():
        raise FileRefused(f"no such file {path.name!r}")
    return path


def read_limited(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FileRefused(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
    return path.read_bytes()


def decode_image(data: bytes, fit: tuple[int, int] | None = None) -> Image.Image:
    """Decode with a pixel bound; for JPEG let libjpeg downscale while decoding (draft mode),
    which is 2-4x faster than decoding full size and resizing."""
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if w * h > MAX_SOURCE_PIXELS or w <= 0 or h <= 0:
        raise FileRefused(f"image is {w}x{h}; at most {MAX_SOURCE_PIXELS} pixels are accepted")
    if fit is not None and im.format == "JPEG":
        im.draft("RGB", fit)
    im.load()
    return im


def _library_bytes(ref: str, ctx: MediaContext) -> bytes | None:
    id = media_id(ref)
    if id is None or ctx.library is None or ctx.library_root is None:
        return None
    path = ctx.library(id)
    if path is None:
        return None
    path = path.resolve()
    if not inside(path, (ctx.library_root.resolve(),)) or path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        return read_limited(path)
    except (OSError, FileRefused):
        return None


def load_image(ref: str | None, ctx: MediaContext, fit: tuple[int, int] | None = None) -> Image.Image | None:
    """The picture `ref` names, or None when it is remote, missing, refused or undecodable
    (the caller draws a placeholder: a preview must not fail because a photo is absent)."""
    if not ref:
        return None
    data = ctx.photos.get(ref)
    if data is None and ref.startswith(MEDIA_PREFIX):
        data = _library_bytes(ref, ctx)
        if data is None:
            return None
    if data is None:
        path = resolve_relative(ref, ctx.roots)
        if path is None or path.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        try:
            data = read_limited(path)
        except (OSError, FileRefused):
            return None
    try:
        return decode_image(data, fit)
    except (OSError, FileRefused, Image.DecompressionBombError, ValueError):
        return None
