"""Uploads made safe (delivery/library/ingest.py), without a server: what the bytes say, pictures
turned upright and scaled to the pixel cap, bombs refused before decoding, WebP and GIF in."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from delivery.library.ingest import IngestError, Limits, ingest_image, sniff


def _encoded(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_pictures_of_every_kind_are_kept_as_jpeg_or_png(fmt: str) -> None:
    data = _encoded(Image.new("RGB", (40, 30), (10, 120, 200)), fmt)
    assert sniff(data) == "image"
    got = ingest_image(data, Limits())
    assert (got.width, got.height) == (40, 30) and got.ext == "jpg" and got.data[:3] == b"\xff\xd8\xff"
    assert len(got.id) == 32 and got.sha256.startswith(got.id)


def test_scaled_to_the_pixel_cap_and_turned_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° to show
    data = _encoded(Image.new("RGB", (400, 200), (0, 0, 0)), "JPEG", exif=exif.tobytes())
    got = ingest_image(data, Limits(max_pixels=20_000))
    assert got.width < got.height and got.width * got.height <= 20_000  # upright (portrait), capped
    assert not Image.open(io.BytesIO(got.data)).getexif()


def test_a_decompression_bomb_is_refused_unread() -> None:
    data = _encoded(Image.new("1", (12_000, 12_000)), "PNG")  # tiny file, 144 Mpx
    with pytest.raises(IngestError) as err:
        ingest_image(data, Limits(max_pixels=1_000_000))
    assert err.value.code == "media_too_large" and err.value.limit == "1000000 pixels"


@pytest.mark.parametrize("data", [b"<html><script>", b"%PDF-1.7", b"PK\x03\x04", b"\x00" * 64, b"GIF8"])
def test_what_is_not_a_picture_or_video_is_refused_by_its_bytes(data: bytes) -> None:
    with pytest.raises(IngestError) as err:
        sniff(data)
    assert err.value.code == "unsupported_media"
