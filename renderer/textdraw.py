"""Drawing one line of text with the font chain: each run in its own font on one baseline,
emoji in colour.

Pillow draws a string with one font and knows no fallback, so a line is split into runs
(fonts.Face.runs) and drawn run by run. A line that only the main font draws (nearly all) is
one `ImageDraw.text` call, exactly as before. Colour emoji come from a bitmap font with a
single 109 px strike: a cluster is drawn once at that size with raqm (ZWJ sequences, skin tones
and flags are ligatures) and scaled to the text, and the tile is cached.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw

from .fonts import EMOJI_SLOT, Face, emoji_font

Anchor = str  # Pillow anchors this module supports: la, lm, mm, rt, ls


@lru_cache(maxsize=512)
def emoji_tile(cluster: str, scale: float) -> tuple[Image.Image, int, float]:
    """The cluster in colour, scaled: (RGBA tile, its ascent above the baseline, advance)."""
    font = emoji_font()
    ascent, descent = font.getmetrics()
    advance = font.getlength(cluster)
    big = Image.new("RGBA", (max(1, round(advance)), ascent + descent), (0, 0, 0, 0))
    ImageDraw.Draw(big).text((0, ascent), cluster, font=font, embedded_color=True, anchor="ls")
    w, h = max(1, round(big.width * scale)), max(1, round(big.height * scale))
    return big.resize((w, h), Image.Resampling.LANCZOS), round(ascent * scale), advance * scale


def _baseline(face: Face, y: float, anchor: Anchor) -> float:
    v = anchor[1]
    if v == "a":
        return y + face.ascent
    if v == "m":  # Pillow's "middle": halfway between ascender and descender
        return y + (face.ascent - face.descent) / 2
    if v == "t":
        return y + face.ascent
    return y  # "s": the baseline itself


def draw_text(
    im: Image.Image,
    xy: tuple[float, float],
    text: str,
    face: Face,
    fill: tuple[int, ...],
    anchor: Anchor = "la",
) -> None:
    """Draw `text` at `xy` like `ImageDraw.text(..., anchor=anchor)`, with fallback fonts."""
    runs = face.runs(text)
    d = ImageDraw.Draw(im)
    if not runs:
        return
    if len(runs) == 1 and runs[0][0] == 0:
        d.text(xy, runs[0][1], font=face.font, fill=fill, anchor=anchor)
        return
    x, y = xy
    h = anchor[0]
    if h != "l":
        w = face.width(text)
        x -= w / 2 if h == "m" else w
    base = _baseline(face, y, anchor)
    for slot, run in runs:
        if slot == EMOJI_SLOT:
            tile, _, advance = emoji_tile(run, face.emoji_scale)
            # Centred on the text's middle rather than its baseline: emoji sit a little low otherwise.
            top = base - (face.ascent - face.descent) / 2 - tile.height / 2
            im.paste(tile, (round(x), round(top)), tile)
            x += advance
        else:
            font = face.font_at(slot)
            d.text((x, base), run, font=font, fill=fill, anchor="ls")
            x += font.getlength(run)
