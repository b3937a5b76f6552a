"""The fonts every picture and video is drawn with: a fallback chain, located by file name.

A card may hold any Chinese name (Simplified, Traditional, extension-A and -B characters) and
emoji, so one font is not enough. Each text run is drawn with the first font of the chain that
covers its characters:

1. Noto Sans CJK SC (OFL): its GB2312 subset in assets/fonts, then the full face with GB18030's
   required set — all of the URO and extension A (6,582) —
   plus Traditional characters and ~2,100 extension-B characters;
2. HanaMin A and B (Hanazono, OFL): the rest of extension A and nearly all of extension B, for
   rare name characters such as 𪚥;
3. DejaVu Sans (free licence): symbols the CJK fonts lack;
and, for emoji clusters (ZWJ sequences, skin tones, flags, keycaps), Noto Color Emoji (OFL),
drawn in colour (textdraw.py).

The files come from Debian packages that scripts/system-deps.sh installs (the Dockerfile does
the same), pinned by the distribution, so a card gives the same pixels on every machine of the
same release. They are looked up by name in `assets_dir/fonts` first (a deployment may ship its
own copies there), then in the Debian folders; a missing file raises `FontsMissing` naming the
package, rather than drawing boxes. Loading a face costs a few ms and its coverage (the cmap,
read with fontTools) ~0.1 s, so both are cached per process; a Face also memoises token widths,
which is what makes text layout cheap.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import ImageFont

# The checkout's assets/fonts; a deployment whose assets live elsewhere (an installed package)
# names its folder with `use_font_dir` before the first picture is drawn.
FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
SYSTEM_DIRS = (
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/truetype/hanazono"),
    Path("/usr/share/fonts/truetype/dejavu"),
)
Weight = Literal["regular", "bold"]
FONT_FAMILY = "Noto Sans CJK SC"
EMOJI_FAMILY = "Noto Color Emoji"
# Noto Color Emoji is a bitmap font (CBDT) with one strike: FreeType opens it at this size only;
# textdraw.py scales the drawn cluster to the text size.
EMOJI_STRIKE = 109


@dataclass(frozen=True, slots=True)
class FontFile:
    """One font of the chain: its file name, the face within a collection, and where it comes from."""

    name: str
    index: int
    family: str
    package: str  # the Debian package scripts/system-deps.sh installs it with


# The GB2312 subset shipped in assets/fonts (made by scripts/make_cjk_font.py from the same
# design) comes first: everyday text rasterises ~3x faster from it than from the full
# collection, whose glyphs are the same; the full face draws everything beyond GB2312.
_SUBSET_REGULAR = FontFile(
    "NotoSansSC-Subset-Regular.otf", 0, FONT_FAMILY, "assets/fonts (in the repository)"
)
_SUBSET_BOLD = FontFile("NotoSansSC-Subset-Bold.otf", 0, FONT_FAMILY, "assets/fonts (in the repository)")
_CJK_REGULAR = FontFile("NotoSansCJK-Regular.ttc", 2, FONT_FAMILY, "fonts-noto-cjk")
_CJK_BOLD = FontFile("NotoSansCJK-Bold.ttc", 2, FONT_FAMILY, "fonts-noto-cjk")
_HANA_A = FontFile("HanaMinA.ttf", 0, "HanaMinA", "fonts-hanazono")
_HANA_B = FontFile("HanaMinB.ttf", 0, "HanaMinB", "fonts-hanazono")
_DEJAVU = "fonts-dejavu-core"
CHAINS: dict[Weight, tuple[FontFile, ...]] = {
    "regular": (
        _SUBSET_REGULAR,
        _CJK_REGULAR,
        _HANA_A,
        _HANA_B,
        FontFile("DejaVuSans.ttf", 0, "DejaVu Sans", _DEJAVU),
    ),
    "bold": (
        _SUBSET_BOLD,
        _CJK_BOLD,
        _HANA_A,
        _HANA_B,
        FontFile("DejaVuSans-Bold.ttf", 0, "DejaVu Sans", _DEJAVU),
    ),
}
EMOJI = FontFile("NotoColorEmoji.ttf", 0, EMOJI_FAMILY, "fonts-noto-color-emoji")
EMOJI_SLOT = -1  # a run's slot: an index into the chain, or this for the emoji font

# One user-perceived character: a flag (two regional indicators), or a character with its
# variation selectors, skin tone, keycap mark, tags and ZWJ-joined followers.
CLUSTER = re.compile(
    r"[\U0001F1E6-\U0001F1FF]{2}"
    r"|.(?:[\u0300-\u036F\uFE00-\uFE0F\u20E3\U0001F3FB-\U0001F3FF\U000E0020-\U000E007F\U000E0100-\U000E01EF]"
    r"|\u200D.)*",
    re.S,
)
_SELECTORS = re.compile(r"[\uFE00-\uFE0F\U000E0100-\U000E01EF\u200D]")
# Characters below U+1F000 that phones draw as emoji without a selector (Emoji_Presentation=Yes).
_BMP_EMOJI = frozenset(
    "⌚⌛⏩⏪⏫⏬⏰⏳◽◾☔☕♈♉♊♋♌♍♎♏♐♑♒♓♿⚓⚡⚪⚫⚽⚾⛄⛅⛎⛔⛪⛲⛳⛵⛺⛽✅✊✋✨❌❎❓❔❕❗➕➖➗➰➿⬛⬜⭐⭕"
)


class FontsMissing(RuntimeError):
    """A font of the chain is not installed: pictures would draw boxes, so nothing is drawn."""


def use_font_dir(directory: Path) -> None:
    """Look for fonts in `directory` (the server's `assets_dir/fonts`) first, in this process."""
    global FONT_DIR
    if directory != FONT_DIR:
        FONT_DIR = directory
        locate.cache_clear()
        _load.cache_clear()
        face.cache_clear()


def font_dir() -> Path:
    return FONT_DIR


@lru_cache(maxsize=16)
def locate(font: FontFile) -> Path:
    for folder in (FONT_DIR, *SYSTEM_DIRS):
        path = folder / font.name
        if path.is_file():
            return path
    raise FontsMissing(
        f"font {font.name} ({font.family}) not found in {FONT_DIR} or {', '.join(map(str, SYSTEM_DIRS))}: "
        f"install the Debian package {font.package} (scripts/system-deps.sh) or copy the file into {FONT_DIR}"
    )


def font_path(weight: Weight = "regular") -> Path:
    """The main (CJK) font file of `weight`."""
    return locate(CHAINS[weight][0])


def chain_files() -> list[Path]:
    """Every font file the renderer draws with, for checks and fontconfig."""
    fonts = dict.fromkeys([*CHAINS["regular"], *CHAINS["bold"], EMOJI])
    return [locate(f) for f in fonts]


@lru_cache(maxsize=16)
def coverage(font: FontFile) -> frozenset[int]:
    """The code points `font` maps to a glyph."""
    from fontTools.ttLib import TTFont  # deferred: fontTools is heavy and rarely needed

    with TTFont(str(locate(font)), fontNumber=font.index, lazy=True) as tt:
        return frozenset(tt.getBestCmap() or ())


@lru_cache(maxsize=128)
def _load(font: FontFile, size: int, raqm: bool = False) -> ImageFont.FreeTypeFont:
    # BASIC layout for text: ~5x faster than raqm and CJK needs no shaping. Emoji need raqm:
    # ZWJ sequences, skin tones and flags are ligatures (GSUB) of several code points.
    engine = ImageFont.Layout.RAQM if raqm else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(locate(font)), size, index=font.index, layout_engine=engine)


def emoji_font() -> ImageFont.FreeTypeFont:
    return _load(EMOJI, EMOJI_STRIKE, True)


def clusters(text: str) -> list[str]:
    return CLUSTER.findall(text)


def is_emoji(cluster: str) -> bool:
    """Drawn with the colour emoji font: emoji-presentation characters, anything with U+FE0F,
    a skin tone, a keycap or a ZWJ, and flags; U+FE0E asks for the text form."""
    if "\ufe0e" in cluster:
        return False
    cp = ord(cluster[0])
    if cp not in coverage(EMOJI):
        return False
    if cp >= 0x1F000 or cluster[0] in _BMP_EMOJI:
        return True
    return any(c in "\ufe0f\u20e3\u200d" or 0x1F3FB <= ord(c) <= 0x1F3FF for c in cluster[1:])


def slot_of(cluster: str, chain: tuple[FontFile, ...]) -> int | None:
    """Which font draws `cluster`: an index into `chain`, EMOJI_SLOT, or None (no font has it)."""
    if is_emoji(cluster):
        return EMOJI_SLOT
    base = ord(cluster[0])
    for i, font in enumerate(chain):
        if base in coverage(font):
            return i
    if unicodedata.category(cluster[0]) in ("Cc", "Cf", "Zl", "Zp"):
        return 0  # controls and format characters draw nothing in any font
    return None


def uncovered(text: str) -> list[str]:
    """The characters of `text` that no font of the chain draws (they would show as boxes)."""
    out: list[str] = []
    for cl in clusters(text):
        if cl.isspace():
            continue
        if slot_of(cl, CHAINS["regular"]) is None and cl not in out:
            out.append(cl)
    return out


class Face:
    """The chain at one pixel size and weight, with cached metrics: `width(text)` is a dict
    lookup after the first call; `runs(text)` splits text by the font that draws it."""

    __slots__ = ("_runs", "_widths", "ascent", "chain", "descent", "font", "line_height", "size", "weight")

    def __init__(self, size: int, weight: Weight) -> None:
        self.size = size
        self.weight = weight
        self.chain = CHAINS[weight]
        for font in (*self.chain, EMOJI):  # all there, or FontsMissing now rather than boxes later
            locate(font)
        self.font = _load(self.chain[0], size)
        self.ascent, self.descent = self.font.getmetrics()
        # CJK body text reads best at ~1.45 em; the font's own ascent+descent is ~1.45 em too.
        self.line_height = max(self.ascent + self.descent, round(size * 1.45))
        self._widths: dict[str, float] = {}
        self._runs: dict[str, list[tuple[int, str]]] = {}

    def font_at(self, slot: int) -> ImageFont.FreeTypeFont:
        return _load(self.chain[slot], self.size)

    @property
    def emoji_scale(self) -> float:
        """Emoji drawn ~1.1 em tall, as phones draw them beside text."""
        return self.size * 0.95 / EMOJI_STRIKE

    def runs(self, text: str) -> list[tuple[int, str]]:
        """`text` as (slot, run) pairs; a run holds one emoji cluster or text of one font.
        A character no font covers goes with the main font (and shows as its box)."""
        cached = self._runs.get(text)
        if cached is not None:
            return cached
        out: list[tuple[int, str]] = []
        if text.isascii():
            out = [(0, text)] if text else []
        else:
            for cl in clusters(text):
                slot = slot_of(cl, self.chain)
                if slot is None:
                    slot = 0
                if slot != EMOJI_SLOT:
                    cl = _SELECTORS.sub("", cl) or cl
                    if out and out[-1][0] == slot:
                        out[-1] = (slot, out[-1][1] + cl)
                        continue
                out.append((slot, cl))
        if len(self._runs) < 20_000:
            self._runs[text] = out
        return out

    def width(self, text: str) -> float:
        w = self._widths.get(text)
        if w is None:
            w = 0.0
            for slot, run in self.runs(text):
                if slot == EMOJI_SLOT:
                    w += emoji_font().getlength(run) * self.emoji_scale
                else:
                    w += self.font_at(slot).getlength(run)
            if len(self._widths) < 20_000:
                self._widths[text] = w
        return w


@lru_cache(maxsize=64)
def face(size: int, weight: Weight = "regular") -> Face:
    """The shared Face for a pixel size and weight."""
    return Face(size, weight)
