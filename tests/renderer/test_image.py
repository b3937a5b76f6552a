"""Card pictures: the shipped font draws real Chinese glyphs; layout, photos, logos, formats."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from renderer import TemplateStore
from renderer.fonts import FONT_DIR, face, font_path
from renderer.image import (
    ImageOptions,
    encode,
    hex_rgb,
    render_card,
    render_card_bytes,
    render_media_slot,
)
from renderer.localfiles import MediaContext
from tests.support.templates import TEMPLATES, write_template

ASSETS = TEMPLATES.parent / "assets"
PHOTO_CARD = """\
card:
  media:
    url: "{{ photo }}"
    contentType: image/jpeg
    height: MEDIUM_HEIGHT
  title: "{{ title }}"
  description: 测试描述
  suggestions:
    - reply: {text: 好的, postback: ok}
"""
PHOTO_SCHEMA = {"type": "object", "properties": {"photo": {"type": "string"}, "title": {"type": "string"}}}


def _glyph(ch: str, size: int = 48) -> Image.Image:
    im = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(im).text((size // 2, size // 4), ch, font=face(size).font, fill=255)
    return im


def test_shipped_font_and_licence_are_in_assets() -> None:
    assert font_path("regular").is_file() and font_path("bold").is_file()
    assert (FONT_DIR / "LICENSE-OFL.txt").read_text("utf-8").count("SIL OPEN FONT LICENSE") >= 1
    total = sum(p.stat().st_size for p in FONT_DIR.glob("*.otf"))
    assert total <= 5 * 1024 * 1024


def test_distinct_chinese_characters_render_as_distinct_glyphs() -> None:
    chars = "名片快递银行您好，。￥A1"
    glyphs = {ch: _glyph(ch) for ch in chars}
    tofu = _glyph("\U000f0000")  # a private-use code point: the font's .notdef box
    for ch, im in glyphs.items():
        assert im.getbbox() is not None, f"{ch!r} drew nothing"
        assert ImageChops.difference(im, tofu).getbbox() is not None, f"{ch!r} drew the tofu box"
    items = list(glyphs.items())
    for i, (a, ia) in enumerate(items):
        for b, ib in items[i + 1 :]:
            assert ImageChops.difference(ia, ib).getbbox() is not None, f"{a!r} and {b!r} look the same"


@pytest.fixture(scope="module")
def store() -> TemplateStore:
    return TemplateStore(TEMPLATES, reload_interval=0)


def _ctx(folder: Path) -> MediaContext:
    return MediaContext(folder, ASSETS)


@pytest.mark.parametrize("name", ["courier-hangup", "bank-identity", "ad-carousel"])
def test_project_templates_render_as_png_at_the_requested_width(store: TemplateStore, name: str) -> None:
    t = store.get(name)
    msg = t.render(t.sample)
    data = render_card_bytes(msg, _ctx(t.folder), ImageOptions(width=480))
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG" and im.width == 480 and 200 < im.height < 4 * 1440
    # The brand colour band under the header is drawn.
    assert hex_rgb(msg.brand.color) in {c for _, c in im.convert("RGB").getcolors(1 << 20)}
    # Deterministic: the same card gives the same bytes (what makes the cache sound).
    assert render_card_bytes(msg, _ctx(t.folder), ImageOptions(width=480)) == data


def test_jpeg_and_webp_encodings(store: TemplateStore) -> None:
    t = store.get("courier-hangup")
    msg = t.render(t.sample)
    for fmt, pil in (("jpeg", "JPEG"), ("webp", "WEBP")):
        data = render_card_bytes(msg, _ctx(t.folder), ImageOptions(width=360, fmt=fmt))  # type: ignore[arg-type]
        assert Image.open(io.BytesIO(data)).format == pil


def test_text_changes_change_the_picture(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "pic", PHOTO_CARD, PHOTO_SCHEMA)
    t = TemplateStore(tmp_path, 0).get("pic")
    a = render_card(t.render({"photo": "", "title": "您的快递派送中"}), _ctx(folder), ImageOptions(360))
    b = render_card(t.render({"photo": "", "title": "您的快递已签收"}), _ctx(folder), ImageOptions(360))
    assert a.size == b.size
    assert ImageChops.difference(a, b).getbbox() is not None


def _media_pixel(im: Image.Image, width: int) -> tuple[int, int, int]:
    s = width / 360
    return im.getpixel((width // 2, round(56 * s + 12 * s + 60 * s)))  # inside the media slot


def test_local_photo_fills_the_media_slot_and_remote_urls_are_never_fetched(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "pic", PHOTO_CARD, PHOTO_SCHEMA)
    Image.new("RGB", (720, 400), (220, 20, 30)).save(folder / "photo.jpg", quality=95)
    (folder / "escape.jpg").symlink_to("/etc/hostname")
    t = TemplateStore(tmp_path, 0).get("pic")
    ctx = _ctx(folder)

    def slot(photo: str) -> tuple[int, int, int]:
        im = render_card(t.render({"photo": photo, "title": "照片"}), ctx, ImageOptions(360))
        return _media_pixel(im, 360)

    r, g, b = slot("photo.jpg")
    assert r > 180 and g < 70 and b < 80
    for refused in (
        "https://img.example.cn/a.jpg",
        "http://127.0.0.1:9/x.jpg",
        "file:///etc/passwd",
        "/etc/passwd",
        "../../../../etc/passwd",
        "escape.jpg",
        "missing.jpg",
    ):
        r, g, b = slot(refused)
        assert abs(r - g) < 40, f"{refused!r} was drawn as a photo"  # the neutral placeholder


def test_photo_bytes_passed_in_by_url_are_used(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "pic", PHOTO_CARD, PHOTO_SCHEMA)
    t = TemplateStore(tmp_path, 0).get("pic")
    buf = io.BytesIO()
    Image.new("RGB", (400, 200), (20, 40, 230)).save(buf, "PNG")
    url = "https://img.example.cn/blue.png"
    ctx = MediaContext(folder, ASSETS, {url: buf.getvalue()})
    im = render_card(t.render({"photo": url, "title": "蓝"}), ctx, ImageOptions(360))
    r, _g, b = _media_pixel(im, 360)
    assert b > 180 and r < 60


def test_logo_from_the_template_folder(tmp_path: Path) -> None:
    manifest = (
        "name: logo\ntitle: 标志\ndescription: 测试\nphase: hang-up\n"
        "brand: {signature: 测试, name: 测试企业, color: '#00AA00', logo: logo.png}\n"
    )
    folder = write_template(tmp_path, "logo", PHOTO_CARD, PHOTO_SCHEMA, manifest=manifest)
    Image.new("RGB", (64, 64), (250, 200, 0)).save(folder / "logo.png")
    t = TemplateStore(tmp_path, 0).get("logo")
    im = render_card(t.render({"photo": "", "title": "x"}), _ctx(folder), ImageOptions(360))
    r, g, b = im.getpixel((12 + 18, 28))  # centre of the 36 dp logo circle
    assert r > 230 and 170 < g < 230 and b < 40


def test_carousel_cards_side_by_side_and_limited(store: TemplateStore) -> None:
    t = store.get("ad-carousel")
    msg = t.render(t.sample)
    three = render_card(msg, _ctx(t.folder), ImageOptions(720, max_cards=3, overview=True))
    one = render_card(msg, _ctx(t.folder), ImageOptions(720, max_cards=1, overview=True))
    assert three.width == one.width == 720
    # With one card per row the card is wider, so the picture is taller.
    assert one.height > three.height


def test_a_carousel_is_one_legible_picture_per_card_by_default(store: TemplateStore) -> None:
    t = store.get("ad-carousel")
    msg = t.render(t.sample)
    pics = [render_card(msg, _ctx(t.folder), ImageOptions(720, card=i)) for i in range(len(msg.cards))]
    overview = render_card(msg, _ctx(t.folder), ImageOptions(720, overview=True))
    assert all(p.width == 720 for p in pics)
    # Each card at the phone's width: taller than the side-by-side overview, and all different.
    assert all(p.height > overview.height for p in pics)
    for a, b in itertools.combinations(pics, 2):
        assert ImageChops.difference(a, b).getbbox() is not None
    # Without `card`, the first card.
    assert render_card(msg, _ctx(t.folder), ImageOptions(720)).tobytes() == pics[0].tobytes()


def test_media_slot_picture_aspect_and_poster(store: TemplateStore) -> None:
    t = store.get("courier-hangup")
    msg = t.render(t.sample)
    im = render_media_slot(msg, _ctx(t.folder), 720)
    assert im.size == (720, 360)  # MEDIUM_HEIGHT: 168 dp of a 336 dp card
    assert hex_rgb(msg.brand.color) in {c for _, c in im.getcolors(1 << 20)}


@pytest.mark.parametrize("kw", [{"width": 100}, {"width": 5000}, {"fmt": "gif"}, {"max_cards": 0}])
def test_options_are_bounded(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ImageOptions(**kw)  # type: ignore[arg-type]


def test_png_encoding_round_trips() -> None:
    im = Image.new("RGB", (300, 200), (1, 2, 3))
    assert Image.open(io.BytesIO(encode(im, "png"))).getpixel((5, 5)) == (1, 2, 3)


def test_distinct_chinese_titles_give_distinct_png_output_not_tofu(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "pic", PHOTO_CARD, PHOTO_SCHEMA)
    t = TemplateStore(tmp_path, 0).get("pic")

    def png(title: str) -> Image.Image:
        data = render_card_bytes(t.render({"photo": "", "title": title}), _ctx(folder), ImageOptions(360))
        assert data.startswith(b"\x89PNG")
        im = Image.open(io.BytesIO(data))
        im.load()
        return im.convert("RGB")

    tofu = png("\U000f0000\U000f0001\U000f0002\U000f0003")  # 4 .notdef boxes, like 4 missing hanzi
    pics = {title: png(title) for title in ("名片来电", "快递派送", "银行客服")}
    for title, im in pics.items():
        assert ImageChops.difference(im, tofu).getbbox() is not None, f"{title} drew as boxes"
    a, b, c = pics.values()
    assert ImageChops.difference(a, b).getbbox() and ImageChops.difference(b, c).getbbox()
