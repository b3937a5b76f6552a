"""Card pictures: the whole card as a phone shows it, and the media-slot image for the payload.

Drawn with Pillow and the project's own fonts (renderer/fonts.py), so Chinese renders the same
everywhere. Sizes are designed in density-independent pixels (dp) on a 360 dp wide phone and
scaled to the requested pixel width; media heights follow the RBM rich-card sizes (short 112 dp,
medium 168 dp, tall 264 dp; carousel cards 120 dp small / 232 dp medium wide).

A template folder may hold `card.svg.j2`, a designer's own SVG layout; it then replaces the
built-in layout for the whole-card picture (renderer/svgcard.py does the safe rendering).
Photos are read from the template folder / assets only, or from bytes passed in; a remote URL
is never fetched here and shows as a neutral placeholder.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageChops, ImageDraw, ImageOps

try:  # ISA-L deflate: the PNG encoder's speed; plain zlib gives the same pixels, slower
    from isal import isal_zlib
except ImportError:  # pragma: no cover
    isal_zlib = None

from .fonts import Face, face
from .localfiles import MediaContext, load_image
from .model import Brand, Card, Media, Message, Suggestion
from .textdraw import draw_text
from .textlayout import TextBlock, wrap

ImageFormat = Literal["png", "jpeg", "webp"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "webp")
CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
}
MIN_WIDTH, MAX_WIDTH = 240, 1440
MAX_HEIGHT = 4 * MAX_WIDTH
MEDIA_HEIGHT_DP = {"SHORT_HEIGHT": 112, "MEDIUM_HEIGHT": 168, "TALL_HEIGHT": 264}
CARD_WIDTH_DP = {"SMALL_WIDTH": 120, "MEDIUM_WIDTH": 232}
PHONE_DP = 360
PAD_DP = 12

BACKGROUND = (242, 243, 245)
CARD_BG = (255, 255, 255)
TEXT = (28, 30, 33)
TEXT_2 = (90, 96, 104)
RULE = (229, 231, 235)
PLACEHOLDER = (214, 219, 226)


@dataclass(frozen=True, slots=True)
class ImageOptions:
    width: int = 720
    fmt: ImageFormat = "png"
    max_cards: int = 3  # carousel overview: cards drawn side by side
    quality: int = 85  # JPEG / WebP
    # A carousel is drawn one card per picture, as a phone shows the card in view (legible at
    # phone width); `card` picks which. `overview` draws `max_cards` cards side by side instead.
    card: int = 0
    overview: bool = False

    def __post_init__(self) -> None:
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ValueError(f"width must be between {MIN_WIDTH} and {MAX_WIDTH}")
        if self.fmt not in IMAGE_FORMATS:
            raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}")
        if not 1 <= self.max_cards <= 10:
            raise ValueError("max_cards must be between 1 and 10")
        if not 0 <= self.card < 10:
            raise ValueError("card must be between 0 and 9")


def hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    try:
        return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))
    except (ValueError, IndexError):
        return (31, 111, 235)


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(tag))
    return b"".join((struct.pack(">I", len(data)), tag, data, struct.pack(">I", crc)))


def encode_png(im: Image.Image) -> bytes:
    """A PNG written here rather than by Pillow, ~5x faster for the same pixels: Pillow tries
    five row filters per row and deflates with stock zlib (~30 ms for a 720x1100 card with a
    photo). Here every row uses the "Up" filter (byte minus the byte above, computed for the
    whole image at once by ImageChops in C), which suits both flat UI and photos, and the
    deflate is ISA-L's (isal) level 1, ~6x faster than zlib level 1 at the same size here."""
    if im.mode != "RGB":
        im = im.convert("RGB")
    w, h = im.size
    above = im.crop((0, -1, w, h - 1))  # Pillow pads outside the image with zeros: row -1 = 0
    filtered = memoryview(ImageChops.subtract_modulo(im, above).tobytes())
    stride = w * 3
    # Each row is prefixed with its filter type byte, 2 (Up).
    raw = b"\x02" + b"\x02".join(filtered[i : i + stride] for i in range(0, h * stride, stride))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"".join(
        (b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr), _chunk(b"IDAT", _deflate(raw)), _chunk(b"IEND", b""))
    )


def _deflate(raw: bytes) -> bytes:
    if isal_zlib is not None:
        return bytes(isal_zlib.compress(raw, 1))
    return zlib.compress(raw, 1)


def encode(im: Image.Image, fmt: str, quality: int = 85) -> bytes:
    """PNG via `encode_png` (fast); JPEG/WebP by Pillow at `quality`."""
    buf = io.BytesIO()
    if fmt == "png":
        return encode_png(im)
    if fmt == "jpeg":
        im.convert("RGB").save(buf, "JPEG", quality=quality, optimize=False, progressive=False)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=quality, method=2)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


# -- pieces --------------------------------------------------------------------------------
def cover(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop `im` to fill `size` (CSS object-fit: cover)."""
    return ImageOps.fit(im.convert("RGB"), size, Image.Resampling.BILINEAR)


def placeholder(size: tuple[int, int], color: tuple[int, int, int]) -> Image.Image:
    """A neutral stand-in for a photo the renderer may not fetch: soft tint + picture icon."""
    w, h = size
    tint = tuple(int(PLACEHOLDER[i] * 0.85 + color[i] * 0.15) for i in range(3))
    im = Image.new("RGB", size, tint)
    d = ImageDraw.Draw(im)
    s = max(8, min(w, h) // 4)
    x0, y0 = (w - s) // 2, (h - s) // 2
    ink = tuple(max(0, c - 40) for c in tint)
    d.rounded_rectangle(
        (x0, y0, x0 + s, y0 + int(s * 0.8)), radius=max(2, s // 8), outline=ink, width=max(1, s // 16)
    )
    d.polygon(
        [
            (x0 + s * 0.15, y0 + s * 0.65),
            (x0 + s * 0.4, y0 + s * 0.35),
            (x0 + s * 0.6, y0 + s * 0.55),
            (x0 + s * 0.85, y0 + s * 0.65),
        ],
        fill=ink,
    )
    r = s // 10
    d.ellipse((x0 + s * 0.65 - r, y0 + s * 0.25 - r, x0 + s * 0.65 + r, y0 + s * 0.25 + r), fill=ink)
    return im


def media_picture(
    media: Media | None, size: tuple[int, int], ctx: MediaContext, color: tuple[int, int, int]
) -> Image.Image:
    photo = load_image(media.url, ctx, size) if media is not None else None
    if photo is None:
        return placeholder(size, color)
    return cover(photo, size)


@lru_cache(maxsize=64)
def _circle_mask(d: int) -> Image.Image:
    big = Image.new("L", (d * 4, d * 4), 0)
    ImageDraw.Draw(big).ellipse((0, 0, d * 4 - 1, d * 4 - 1), fill=255)
    return big.resize((d, d), Image.Resampling.LANCZOS)


def draw_logo(canvas: Image.Image, brand: Brand, box: tuple[int, int], d: int, ctx: MediaContext) -> None:
    """The brand logo in a circle; the brand's first character on its colour when there is none."""
    color = hex_rgb(brand.color)
    logo = load_image(brand.logo, ctx, (d, d)) if brand.logo else None
    if logo is not None:
        tile = ImageOps.fit(logo.convert("RGB"), (d, d), Image.Resampling.LANCZOS)
    else:
        tile = Image.new("RGB", (d, d), color)
        f = face(max(8, int(d * 0.5)), "bold")
        ch = (brand.signature or brand.name or "?")[0]
        draw_text(tile, (d / 2, d / 2), ch, f, (255, 255, 255), "mm")
    canvas.paste(tile, box, _circle_mask(d))


# -- layout --------------------------------------------------------------------------------
@dataclass(slots=True)
class _CardLayout:
    card: Card
    width: int  # px
    media_h: int
    title: TextBlock | None
    desc: TextBlock | None
    title_face: Face
    desc_face: Face
    btn_h: int
    pad: int
    gap: int

    @property
    def height(self) -> int:
        h = self.media_h
        text_h = 0
        if self.title:
            text_h += self.title.height
        if self.desc:
            text_h += (self.gap if self.title else 0) + self.desc.height
        if text_h:
            h += self.pad + text_h + self.pad
        h += self.btn_h * len(self.card.suggestions)
        return max(h, self.pad * 4)


def _layout_card(card: Card, width: int, s: float, max_desc_lines: int) -> _CardLayout:
    pad = round(PAD_DP * s)
    tf = face(max(9, round(16 * s)), "bold")
    df = face(max(8, round(14 * s)), "regular")
    inner = width - 2 * pad
    media_h = (
        round(MEDIA_HEIGHT_DP.get(card.media.height, 168) * s * min(1.0, width / (336 * s)))
        if card.media is not None
        else 0
    )
    title = wrap(card.title, tf, inner, 2) if card.title else None
    desc = wrap(card.description, df, inner, max_desc_lines) if card.description else None
    return _CardLayout(
        card, width, media_h, title, desc, tf, df, round(44 * s) if card.suggestions else 0, pad, round(6 * s)
    )


def _draw_card(
    canvas: Image.Image,
    lay: _CardLayout,
    x: int,
    y: int,
    brand: Brand,
    ctx: MediaContext,
    s: float,
    height: int | None = None,
) -> None:
    """One card at (x, y); `height` stretches it (carousel cards share one height, with their
    buttons at the bottom, as phones show them)."""
    color = hex_rgb(brand.color)
    w, h = lay.width, max(lay.height, height or 0)
    radius = round(12 * s)
    d = ImageDraw.Draw(canvas)
    d.rounded_rectangle((x, y, x + w - 1, y + h - 1), radius=radius, fill=CARD_BG, outline=RULE)
    cy = y
    if lay.media_h:
        pic = media_picture(lay.card.media, (w, lay.media_h), ctx, color)
        mask = _top_rounded_mask(w, lay.media_h, radius)
        canvas.paste(pic, (x, y), mask)
        cy += lay.media_h
    tx = x + lay.pad
    if lay.title or lay.desc:
        cy += lay.pad
        if lay.title:
            for line in lay.title.lines:
                draw_text(canvas, (tx, cy), line, lay.title_face, TEXT)
                cy += lay.title.line_height
            cy += lay.gap
        if lay.desc:
            for line in lay.desc.lines:
                draw_text(canvas, (tx, cy), line, lay.desc_face, TEXT_2)
                cy += lay.desc.line_height
    cy = y + h - lay.btn_h * len(lay.card.suggestions)
    bf = face(max(8, round(14 * s)), "bold")
    for sug in lay.card.suggestions:
        d.line((x + 1, cy, x + w - 2, cy), fill=RULE, width=max(1, round(s)))
        draw_text(canvas, (x + w / 2, cy + lay.btn_h / 2), _button_label(sug), bf, color, "mm")
        cy += lay.btn_h


def _text_h(lay: _CardLayout) -> int:
    h = lay.title.height if lay.title else 0
    if lay.desc:
        h += (lay.gap if lay.title else 0) + lay.desc.height
    return h


@lru_cache(maxsize=32)
def _top_rounded_mask(w: int, h: int, r: int) -> Image.Image:
    m = Image.new("L", (w, h), 255)
    if r > 0:
        corner = _circle_mask(2 * r)
        q = corner.crop((0, 0, r, r))
        m.paste(q, (0, 0))
        m.paste(q.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (w - r, 0))
    return m


_ICONS = {
    "dial": "☎ ",
    "openUrl": "",
    "showLocation": "",
    "createCalendarEvent": "",
    "composeTextMessage": "",
    "reply": "",
}


def _button_label(sug: Suggestion) -> str:
    return _ICONS.get(sug.kind, "") + sug.text


def _chip_rows(
    chips: tuple[Suggestion, ...], f: Face, max_w: int, pad_x: int, gap: int
) -> list[list[tuple[str, int]]]:
    rows: list[list[tuple[str, int]]] = [[]]
    used = 0
    for chip in chips:
        label = _button_label(chip)
        cw = min(max_w, int(f.width(label)) + 2 * pad_x)
        if rows[-1] and used + gap + cw > max_w:
            rows.append([])
            used = 0
        used += (gap if rows[-1] else 0) + cw
        rows[-1].append((label, cw))
    return [r for r in rows if r]


MediaBox = tuple[int, int, int, int]  # x, y, width, height of the first card's media slot


def render_card(message: Message, ctx: MediaContext, opts: ImageOptions) -> Image.Image:
    """The card as a phone shows it, as an RGB image `opts.width` wide: a carousel's card
    `opts.card` with page dots, or with `opts.overview` its first cards side by side."""
    return draw_card_picture(message, ctx, opts.width, opts.card, opts.overview, opts.max_cards)[0]


def draw_card_picture(
    message: Message,
    ctx: MediaContext,
    W: int,
    card_index: int = 0,
    overview: bool = False,
    max_cards: int = 3,
    max_desc_lines: int = 8,
) -> tuple[Image.Image, MediaBox | None]:
    """`render_card` at any width, also returning where the (first) card's media slot is: the
    video animates that box over a still of the rest."""
    color = hex_rgb(message.brand.color)
    carousel = message.kind == "carousel" and len(message.cards) > 1
    pages = 0
    if carousel and overview:
        cards = message.cards[:max_cards]
        k = len(cards)
        card_dp = CARD_WIDTH_DP.get(message.card_width, 232)
        s = W / (k * card_dp + (k + 1) * PAD_DP)
        card_w = round(card_dp * s)
        lays = [_layout_card(c, card_w, s, 4) for c in cards]
    else:
        if carousel:
            pages = len(message.cards)
            cards = (message.cards[min(card_index, pages - 1)],)
        else:
            cards = message.cards[:1]
        s = W / PHONE_DP
        card_w = W - 2 * round(PAD_DP * s)
        lays = [_layout_card(c, card_w, s, max_desc_lines) for c in cards]
    pad = round(PAD_DP * s)
    header_h = round(56 * s)
    cards_h = max((lay.height for lay in lays), default=0)
    chip_f = face(max(8, round(13 * s)), "regular")
    chip_h, chip_gap, chip_pad = round(32 * s), round(8 * s), round(12 * s)
    rows = _chip_rows(message.chips, chip_f, W - 2 * pad, chip_pad, chip_gap)
    chips_h = len(rows) * (chip_h + chip_gap) + (pad if rows else 0)
    dots_h = round(14 * s) if pages else 0
    H = min(MAX_HEIGHT, header_h + cards_h + pad + dots_h + chips_h + pad)

    canvas = Image.new("RGB", (W, H), BACKGROUND)
    d = ImageDraw.Draw(canvas)
    # Header: the brand as the phone's 5G-message conversation shows it.
    d.rectangle((0, 0, W, header_h), fill=CARD_BG)
    d.line((0, header_h - 1, W, header_h - 1), fill=RULE)
    logo_d = round(36 * s)
    draw_logo(canvas, message.brand, (pad, (header_h - logo_d) // 2), logo_d, ctx)
    nf = face(max(9, round(16 * s)), "bold")
    draw_text(canvas, (pad * 2 + logo_d, header_h / 2), message.brand.name, nf, TEXT, "lm")
    tick = round(4 * s)
    d.rectangle((0, header_h - tick, W, header_h), fill=color)

    y = header_h + pad
    x = pad
    for lay in lays:
        _draw_card(canvas, lay, x, y, message.brand, ctx, s, cards_h)
        x += lay.width + pad
    box = (pad, y, lays[0].width, lays[0].media_h) if lays and lays[0].media_h else None
    if carousel and overview and len(message.cards) > len(cards):
        more = f"+{len(message.cards) - len(cards)}"
        draw_text(canvas, (W - pad, y + cards_h + pad // 2), more, chip_f, TEXT_2, "rt")
    cy = y + cards_h + pad
    if pages:
        _page_dots(canvas, W / 2, cy + dots_h / 2 - pad / 2, pages, min(card_index, pages - 1), s, color)
        cy += dots_h
    for row in rows:
        cx = pad
        for label, cw in row:
            d.rounded_rectangle(
                (cx, cy, cx + cw, cy + chip_h),
                radius=chip_h // 2,
                fill=CARD_BG,
                outline=color,
                width=max(1, round(s)),
            )
            draw_text(canvas, (cx + cw / 2, cy + chip_h / 2), label, chip_f, color, "mm")
            cx += cw + chip_gap
        cy += chip_h + chip_gap
    return canvas, box


def _page_dots(
    canvas: Image.Image, cx: float, cy: float, n: int, current: int, s: float, color: tuple[int, int, int]
) -> None:
    """Where this card sits in the carousel, as phones mark it under a swipeable row."""
    d = ImageDraw.Draw(canvas)
    r, gap = max(2, round(3 * s)), round(10 * s)
    x0 = cx - (n - 1) * gap / 2
    for i in range(n):
        x = x0 + i * gap
        d.ellipse((x - r, cy - r, x + r, cy + r), fill=color if i == current else PLACEHOLDER)


def render_media_slot(message: Message, ctx: MediaContext, width: int, card_index: int = 0) -> Image.Image:
    """The picture for a card's media slot (its `mediaUrl`): the card's own photo when it is
    readable, else a poster of the title on the brand colour. Aspect ratio follows the card's
    media height (short 3:1, medium 2:1, tall 4:3 of a 336 dp card)."""
    card = message.cards[min(card_index, len(message.cards) - 1)]
    height_dp = MEDIA_HEIGHT_DP.get(card.media.height if card.media else "MEDIUM_HEIGHT", 168)
    size = (width, max(1, round(width * height_dp / 336)))
    photo = load_image(card.media.url, ctx, size) if card.media is not None else None
    if photo is not None:
        return cover(photo, size)
    return poster(message, card, size, ctx)


def poster(
    message: Message,
    card: Card,
    size: tuple[int, int],
    ctx: MediaContext,
    with_title: bool = True,
    with_brand: bool = True,
) -> Image.Image:
    """Brand colour, logo and the card title: a media image made from the card's own words.
    Without the brand it is the colour field alone (a video pans it under a still header)."""
    w, h = size
    color = hex_rgb(message.brand.color)
    im = Image.new("RGB", size, color)
    d = ImageDraw.Draw(im)
    dark = tuple(int(c * 0.75) for c in color)
    d.polygon([(w * 0.55, 0), (w, 0), (w, h), (w * 0.35, h)], fill=dark)
    if not with_brand:
        return im
    s = w / PHONE_DP
    left, top, right, bottom = poster_safe_box(size)
    logo_d = max(12, round(40 * s))
    pad = round(16 * s)
    x0, y0 = left + pad, top + pad
    ring = max(1, logo_d // 16)
    d.ellipse((x0 - ring, y0 - ring, x0 + logo_d + ring - 1, y0 + logo_d + ring - 1), fill=(255, 255, 255))
    draw_logo(im, message.brand, (x0, y0), logo_d, ctx)
    nf = face(max(8, round(14 * s)), "bold")
    name_x = x0 + logo_d + pad
    name = wrap(message.brand.name, nf, max(1, right - pad - name_x), 1).lines
    draw_text(im, (name_x, y0 + logo_d / 2), name[0] if name else "", nf, (255, 255, 255), "lm")
    if not with_title:
        return im
    title = card.title or message.brand.name
    tf = face(max(10, round(22 * s)), "bold")
    room = bottom - pad - (y0 + logo_d + ring + pad)  # below the logo, above the bottom margin
    block = wrap(title, tf, right - left - 2 * pad, max(1, room // tf.line_height))
    ty = bottom - pad - block.height
    for line in block.lines:
        draw_text(im, (x0, ty), line, tf, (255, 255, 255))
        ty += block.line_height
    return im


# Phones fill a card's media box (a fixed height, the card's width) with the picture and crop
# what does not fit (CSS object-fit: cover, Android's centerCrop): a card narrower than the 336 dp
# the picture is made for shows only its middle, a wider one loses a strip at top and bottom.
# A poster keeps its logo and title inside what cards from NARROWEST to WIDEST all show (the
# studio's phone, with its scroll bar, draws a card about 236 px wide).
NARROWEST_CARD_DP = 220
WIDEST_CARD_DP = 360


def poster_safe_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the part of a media-slot picture of `size` that every
    phone shows, whatever its card width, at any of the media heights (short, medium, tall)."""
    w, h = size
    inset_x = round(w * (1 - NARROWEST_CARD_DP / 336) / 2)
    inset_y = round(h * (1 - 336 / WIDEST_CARD_DP) / 2)
    return inset_x, inset_y, w - inset_x, h - inset_y


def render_card_bytes(message: Message, ctx: MediaContext, opts: ImageOptions) -> bytes:
    """Encoded whole-card picture; a template's own `card.svg.j2` wins over the built-in layout."""
    if ctx.template_dir is not None and (ctx.template_dir / "card.svg.j2").is_file():
        from .svgcard import render_svg_template  # deferred: cairosvg, for SVG templates only

        im = render_svg_template(message, ctx, opts.width)
    else:
        im = render_card(message, ctx, opts)
    return encode(im, opts.fmt, opts.quality)
