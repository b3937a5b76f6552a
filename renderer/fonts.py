"""The project's own fonts, loaded once per (weight, size) and shared by every image and video.

Cards are drawn with the fonts committed under assets/fonts/ (a GB2312 subset of Noto Sans CJK
SC, OFL), never with whatever the machine has: the same card must give the same pixels in CI, on
a developer's laptop and in production. Loading a 1.6 MB CFF font costs ~10 ms, so faces are
cached; a Face also memoises token widths, which is what makes text layout cheap.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import ImageFont

# The checkout's assets/fonts; a deployment whose assets live elsewhere (an installed package)
# names its folder with `use_font_dir` before the first picture is drawn.
FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
Weight = Literal["regular", "bold"]
FONT_FILES: dict[Weight, str] = {
    "regular": "NotoSansSC-Subset-Regular.otf",
    "bold": "NotoSansSC-Subset-Bold.otf",
}
FONT_FAMILY = "Noto Sans CJK SC"


class Face:
    """A sized font plus cached metrics: `width(text)` is a dict lookup after the first call."""

    __slots__ = ("_widths", "ascent", "descent", "font", "line_height", "size")

    def __init__(self, font: ImageFont.FreeTypeFont, size: int) -> None:
        self.font = font
        self.size = size
        self.ascent, self.descent = font.getmetrics()
        # CJK body text reads best at ~1.45 em; the font's own ascent+descent is ~1.45 em too.
        self.line_height = max(self.ascent + self.descent, round(size * 1.45))
        self._widths: dict[str, float] = {}

    def width(self, text: str) -> float:
        w = self._widths.get(text)
        if w is None:
            w = self.font.getlength(text)
            if len(self._widths) < 20_000:
                self._widths[text] = w
        return w


def use_font_dir(directory: Path) -> None:
    """Draw with the fonts in `directory` (the server's `assets_dir/fonts`), in this process."""
    global FONT_DIR
    if directory != FONT_DIR:
        FONT_DIR = directory
        face.cache_clear()


def font_dir() -> Path:
    return FONT_DIR


def font_path(weight: Weight = "regular") -> Path:
    return FONT_DIR / FONT_FILES[weight]


@lru_cache(maxsize=64)
def face(size: int, weight: Weight = "regular") -> Face:
    """The shared Face for a pixel size; BASIC layout: ~5x faster than raqm and CJK needs no
    shaping (no ligatures or contextual forms in running Chinese text)."""
    font = ImageFont.truetype(str(font_path(weight)), size, layout_engine=ImageFont.Layout.BASIC)
    return Face(font, size)
