"""Uploads made safe (delivery/library/ingest.py), without a server: what the bytes say, pictures
turned upright and scaled to the pixel cap, bombs refused before decoding, WebP and GIF in, and
no metadata kept: comments, EXIF, XMP, ICC profiles, PNG text chunks, a video's tags and chapters."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from delivery.library.ingest import IngestError, Limits, ingest_image, ingest_video, sniff
from renderer.video import ffmpeg_exe


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


SECRET = "SECRET-门店-GPS"  # in every kind of metadata a picture can carry


def _jpeg_markers(data: bytes) -> set[int]:
    """The JPEG's segment markers up to its scan."""
    markers, i = set(), 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        markers.add(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return markers


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, i = [], 8
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        chunks.append(data[i + 4 : i + 8])
        i += 12 + size
    return chunks


def _with_metadata(fmt: str, alpha: bool = False) -> bytes:
    """A picture carrying SECRET in each metadata slot its format has."""
    secret = SECRET.encode()
    exif = Image.Exif()
    exif[0x010F] = SECRET  # Make
    exif[0x010E] = SECRET  # ImageDescription
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>' + secret + b"</rdf:Description></x:xmpmeta>"
    )
    icc = b"\0\0\0\x80appl" + secret + b"\0" * 100  # a profile's bytes are kept as they are
    im = Image.new("RGBA" if alpha else "RGB", (40, 30), (10, 120, 200, 128) if alpha else (10, 120, 200))
    if fmt == "JPEG":
        return _encoded(im, fmt, comment=secret, exif=exif.tobytes(), xmp=xmp, icc_profile=icc)
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", SECRET)  # tEXt
        info.add_text("Description", SECRET, zip=True)  # zTXt
        info.add_itxt("Author", SECRET, lang="zh", tkey="作者")  # iTXt
        info.add_itxt("XML:com.adobe.xmp", xmp.decode())  # XMP lives in an iTXt chunk
        return _encoded(im, fmt, pnginfo=info, exif=exif.tobytes(), icc_profile=icc)
    if fmt == "WEBP":
        return _encoded(im, fmt, exif=exif.tobytes(), xmp=xmp, icc_profile=icc)
    assert fmt == "GIF"
    return _encoded(im.convert("P"), fmt, comment=secret)


@pytest.mark.parametrize(
    ("fmt", "alpha"),
    [("JPEG", False), ("PNG", False), ("PNG", True), ("WEBP", False), ("WEBP", True), ("GIF", False)],
)
def test_no_comment_exif_xmp_icc_or_text_chunk_is_kept(fmt: str, alpha: bool) -> None:
    data = _with_metadata(fmt, alpha)
    assert SECRET.encode() in data or fmt == "PNG"  # (PNG's zTXt holds it compressed)
    got = ingest_image(data, Limits())
    assert SECRET.encode() not in got.data
    if got.ext == "jpg":  # start, JFIF, tables, frame, Huffman tables, scan: nothing else
        assert _jpeg_markers(got.data) <= {0xD8, 0xE0, 0xDB, 0xC0, 0xC4, 0xDA}, _jpeg_markers(got.data)
    else:
        assert alpha and set(_png_chunks(got.data)) == {b"IHDR", b"IDAT", b"IEND"}, _png_chunks(got.data)
    reopened = Image.open(io.BytesIO(got.data))
    assert not reopened.getexif() and not {"comment", "icc_profile", "xmp", "exif"} & set(reopened.info)


async def test_a_video_keeps_no_title_comment_location_or_chapter(tmp_path: Path) -> None:
    src = tmp_path / "tagged.mov"  # QuickTime: where phones put the place a video was shot
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(
        f";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle={SECRET}\n", "utf-8"
    )
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10",
         "-f", "lavfi", "-i", "sine=duration=1", "-i", str(chapters), "-map_metadata", "2", "-map", "0:v",
         "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-metadata", f"title={SECRET}", "-metadata", f"comment={SECRET}", "-metadata", f"artist={SECRET}",
         "-metadata", "location=+39.9042+116.4074/", "-metadata:s:v:0", f"title={SECRET}",
         "-metadata:s:v:0", f"handler_name={SECRET}", "-metadata:s:a:0", f"handler_name={SECRET}",
         str(src)],
        check=True,
    )  # fmt: skip
    data = src.read_bytes()
    assert SECRET.encode() in data and b"+39.9042" in data
    got = await ingest_video(data, Limits(), ffmpeg_exe())
    assert got.ext == "mp4" and SECRET.encode() not in got.data and b"+39.9042" not in got.data
    out = tmp_path / "kept.mp4"
    out.write_bytes(got.data)
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True)
    tags = set(re.findall(r"^ +(\w+) +: ", probe.stderr, re.M))  # ffmpeg lists each stream's tags
    assert "Chapter #" not in probe.stderr and not {"title", "comment", "artist", "location"} & tags, tags
