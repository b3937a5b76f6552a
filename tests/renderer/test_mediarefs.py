"""`media:<id>` values: what names a library file, the payload's URLs swapped in, what is dropped,
and the renderer reading a library picture only through its resolver and only under its folder."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from renderer.localfiles import MediaContext, load_image
from renderer.mediarefs import Link, media_id, refs, with_urls, without_refs
from renderer.model import Brand, Card, Media, Message

ID = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def _message(url: str, logo: str | None = None) -> Message:
    card = Card(title="t", media=Media(url=url, content_type="image/jpeg", thumbnail_url=url))
    return Message("card", (card,), Brand("S", "N", logo=logo), "t", "hang-up")


def test_only_32_hex_digits_after_media_name_a_file() -> None:
    assert media_id("media:" + ID) == ID
    for bad in ("media:" + ID.upper(), "media:" + ID + "0", "media:../x", "https://x/media:" + ID, "", None):
        assert media_id(bad) is None


def test_urls_are_swapped_in_and_the_rest_dropped_without_touching_the_original() -> None:
    msg = _message("media:" + ID, logo="media:" + OTHER)
    assert refs(msg) == {"media:" + ID, "media:" + OTHER}
    link = Link("https://h/media/library/" + ID + ".png", "image/png", 123)
    out = without_refs(with_urls(msg, {"media:" + ID: link}))
    media = out.cards[0].media
    assert media is not None and media.url == link.url and media.content_type == "image/png"
    assert media.file_size == 123 and media.thumbnail_url == link.url
    assert out.brand.logo is None  # not given a URL: forgotten, never sent as `media:`
    assert msg.cards[0].media is not None and msg.cards[0].media.url == "media:" + ID  # shared: unchanged
    dropped = without_refs(_message("media:" + OTHER))
    assert dropped.cards[0].media is None


def _png(path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 255)).save(buf, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def test_the_renderer_reads_library_files_only_under_the_library_folder(tmp_path: Path) -> None:
    root = tmp_path / "library"
    inside = _png(root / ID[:2] / f"{ID}.png")
    outside = _png(tmp_path / "elsewhere.png")
    (root / "ln").mkdir(parents=True)
    (root / "ln" / f"{OTHER}.png").symlink_to(outside)
    paths = {ID: inside, OTHER: root / "ln" / f"{OTHER}.png", "0" * 32: outside}
    ctx = MediaContext(library=paths.get, library_root=root)
    im = load_image("media:" + ID, ctx)
    assert im is not None and im.size == (8, 8)
    assert load_image("media:" + OTHER, ctx) is None  # a symlink out of the folder
    assert load_image("media:" + "0" * 32, ctx) is None  # the resolver answers outside the folder
    assert load_image("media:" + ID, MediaContext()) is None  # no resolver: a placeholder
    (root / "aa").mkdir()
    text = root / "aa" / "notes.txt"
    text.write_text("x")
    assert load_image("media:" + "a" * 32, MediaContext(library=lambda _: text, library_root=root)) is None
