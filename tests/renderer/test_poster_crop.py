"""The personal-show poster (the picture for its media slot when the photo cannot be read) keeps
its avatar, name and title inside what a 5G phone shows: phones fill the media box (fixed height,
the card's width) and crop the rest, so each is measured in pixels after that crop, at the short,
medium and tall media heights and card widths from narrow to wide."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PIL import Image

from renderer import TemplateStore
from renderer.image import MEDIA_HEIGHT_DP, render_media_slot
from renderer.localfiles import MediaContext
from tests.support.templates import TEMPLATES

ASSETS = TEMPLATES.parent / "assets"
MARGIN_PX = 8  # at 360 px wide, 8 dp
WIDTH = 360


def phone_crop(im: Image.Image, card_dp: int, height_dp: int) -> Image.Image:
    """What a phone shows of `im` in a card_dp × height_dp media box (object-fit: cover)."""
    w, h = im.size
    box = card_dp / height_dp
    if w / h > box:  # wider than the box: the sides go
        keep = round(h * box)
        left = (w - keep) // 2
        return im.crop((left, 0, left + keep, h))
    keep = round(w / box)
    top = (h - keep) // 2
    return im.crop((0, top, w, top + keep))


def white_box(im: Image.Image) -> tuple[tuple[int, int, int, int] | None, int]:
    """Bounding box and count of the white ink (the avatar's ring, the name and the title)."""
    mask = im.convert("L").point(lambda v: 255 if v > 235 else 0)
    return mask.getbbox(), mask.histogram()[255]


@pytest.mark.parametrize("height", sorted(MEDIA_HEIGHT_DP))
@pytest.mark.parametrize("card_dp", [220, 236, 260, 296, 336, 360])
def test_avatar_and_title_sit_inside_the_phone_crop_with_margins(height: str, card_dp: int) -> None:
    template = TemplateStore(TEMPLATES, 0).get("personal-show")
    message = template.render(template.sample)
    card = message.cards[0]
    assert card.media is not None
    message = replace(message, cards=(replace(card, media=replace(card.media, height=height)),))
    im = render_media_slot(message, MediaContext(template.folder, ASSETS), WIDTH)
    whole_box, whole_ink = white_box(im)
    assert whole_box is not None
    shown = phone_crop(im, card_dp, MEDIA_HEIGHT_DP[height])
    box, ink = white_box(shown)
    assert box is not None
    assert ink == whole_ink, f"{height} at {card_dp} dp: {whole_ink - ink} white pixels cut off"
    left, top, right, bottom = box
    w, h = shown.size
    margins = (left, top, w - right, h - bottom)
    assert min(margins) >= MARGIN_PX, f"{height} at {card_dp} dp: margins {margins} (shown {w}×{h})"
    # the avatar: the white ring's top-left corner region holds the logo circle, inside too
    assert left >= MARGIN_PX and top >= MARGIN_PX
