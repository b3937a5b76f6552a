"""Every character drawn: rare name characters, Traditional characters and colour emoji come out
as distinct glyphs (not the .notdef box), emoji in colour; uncovered characters are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops

from mingpian.settings import PROJECT_ROOT
from renderer import fonts
from renderer.fonts import EMOJI_SLOT, FontsMissing, clusters, face, uncovered
from renderer.glyphs import glyph_problems
from renderer.textdraw import draw_text

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "renderer"
RARE = "䶮𠀾𪚥𡈼喆堃龍體"  # extension A, extension B, common name characters, Traditional
EMOJI = ["🌻", "👍🏽", "👨‍👩‍👧", "🇨🇳"]
TOFU = "\U000f0000"  # a private-use code point: no font has it, the main font draws its box


def _drawn(text: str, size: int = 48, weight: fonts.Weight = "regular") -> Image.Image:
    f = face(size, weight)
    im = Image.new("RGB", (int(f.width(text)) + size, size * 2), (255, 255, 255))
    draw_text(im, (size // 2, size // 4), text, f, (0, 0, 0))
    return im


def _ink(im: Image.Image) -> Image.Image:
    return ImageChops.invert(im.convert("L")).point(lambda v: 255 if v > 60 else 0)


def _colourful(im: Image.Image) -> int:
    """Pixels whose channels differ by more than 60: colour, not grey ink."""
    hsv = im.convert("HSV")
    sat = hsv.getchannel("S").point(lambda v: 255 if v > 90 else 0)
    val = hsv.getchannel("V").point(lambda v: 255 if v > 60 else 0)
    return ImageChops.multiply(sat, val).histogram()[255]


@pytest.mark.parametrize("weight", ["regular", "bold"])
def test_rare_and_traditional_characters_are_distinct_glyphs_not_boxes(weight: fonts.Weight) -> None:
    tofu = _ink(_drawn(TOFU, weight=weight))
    glyphs = {ch: _ink(_drawn(ch, weight=weight)) for ch in RARE}
    for ch, im in glyphs.items():
        assert im.getbbox() is not None, f"{ch!r} drew nothing"
        assert ImageChops.difference(im, tofu).getbbox() is not None, f"{ch!r} drew the box"
    items = list(glyphs.items())
    for i, (a, ia) in enumerate(items):
        for b, ib in items[i + 1 :]:
            assert ImageChops.difference(ia, ib).getbbox() is not None, f"{a!r} and {b!r} look the same"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _drawn(RARE + " 王*国 " + "".join(EMOJI), 40, weight).save(ARTIFACTS / f"glyphs-{weight}.png")


def test_every_test_character_has_a_font() -> None:
    assert uncovered(RARE + "".join(EMOJI) + "名片，。【】09:00 ☎") == []
    assert uncovered("𰀀 abc") == ["𰀀"]  # extension G: beyond the chain
    assert uncovered(TOFU) == [TOFU]


def test_emoji_are_single_clusters_drawn_in_colour() -> None:
    assert clusters("👨‍👩‍👧🇨🇳👍🏽") == ["👨‍👩‍👧", "🇨🇳", "👍🏽"]
    f = face(48)
    for e in EMOJI:
        assert f.runs(e) == [(EMOJI_SLOT, e)], e
        # One glyph: a ZWJ family or a flag is as wide as one emoji, not two or three.
        assert f.width(e) == pytest.approx(f.width("🌻"), rel=0.05), e
    for e in ("🌻", "👍🏽", "🇨🇳"):  # (Noto draws the family in greys)
        assert _colourful(_drawn(e)) > 200, f"{e!r} is not in colour"
    family, man = _ink(_drawn("👨‍👩‍👧")), _ink(_drawn("👨"))
    assert family.getbbox() is not None and ImageChops.difference(family, man).getbbox() is not None
    plain, toned = _drawn("👍"), _drawn("👍🏽")
    assert ImageChops.difference(plain, toned).getbbox() is not None, "the skin tone made no difference"
    r, g, b = _drawn("🇨🇳").split()
    masks = (r.point(lambda v: 255 if v > 180 else 0), g.point(lambda v: 255 if v < 80 else 0))
    red = ImageChops.multiply(
        ImageChops.multiply(*masks), b.point(lambda v: 255 if v < 80 else 0)
    ).histogram()[255]
    assert red > 400, "the Chinese flag is not red"


def test_text_and_emoji_share_one_line_and_text_stays_black() -> None:
    im = _drawn("向日葵🌻花")
    left = im.crop((0, 0, im.width // 2, im.height))
    assert _colourful(_drawn("向日葵花")) == 0
    assert _ink(left).getbbox() is not None
    assert _colourful(im) > 200


def test_a_missing_font_fails_clearly_naming_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fonts, "SYSTEM_DIRS", (tmp_path / "none",))
    fonts.use_font_dir(PROJECT_ROOT / "assets" / "fonts")  # the shipped subset alone
    fonts.locate.cache_clear()
    fonts.face.cache_clear()
    try:
        with pytest.raises(FontsMissing, match="fonts-noto-cjk"):
            fonts.face(21)
    finally:
        monkeypatch.undo()
        fonts.locate.cache_clear()
        fonts.face.cache_clear()
    assert fonts.face(21).font is not None


def test_glyph_problems_name_the_data_path_and_the_card_field() -> None:
    from renderer.model import Brand, Card, Message

    msg = Message("card", (Card(title="你好𰀀", description="🌻 ok"),), Brand("测", "测试"), "t", "hang-up")
    problems = glyph_problems(msg, {"name": "你好𰀀", "list": ["ok"]}, "sample.json")
    assert [(p.path, p.file) for p in problems] == [("$.name", "sample.json")]
    assert "U+30000" in problems[0].message
    problems = glyph_problems(msg, {})
    assert [p.path for p in problems] == ["cards[0].title"]
