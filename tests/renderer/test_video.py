"""Card videos with the real ffmpeg: H.264 yuv420p, faststart, duration, size cap, cancel."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from renderer import Message, TemplateStore
from renderer.image import hex_rgb
from renderer.localfiles import MediaContext
from renderer.video import (
    VideoCancelled,
    VideoFailed,
    VideoOptions,
    build_slides,
    encode_command,
    ffmpeg_exe,
    render_video,
    render_video_sync,
)
from tests.support.templates import TEMPLATES, write_template

ASSETS = TEMPLATES.parent / "assets"


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (ftyp, moov, mdat ...)."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        out.append(kind.decode("latin-1"))
        pos += size
    return out


def probe(path: Path) -> str:
    """What `ffmpeg -i` says about the file (imageio-ffmpeg ships no ffprobe)."""
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return r.stderr


def duration(info: str) -> float:
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info).groups()  # type: ignore[union-attr]
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def courier() -> tuple[Message, MediaContext]:
    t = TemplateStore(TEMPLATES, 0).get("courier-hangup")
    return t.render(t.sample), MediaContext(t.folder, ASSETS)


def test_card_video_is_h264_yuv420p_faststart_with_the_asked_duration(
    courier: tuple[Message, MediaContext], tmp_path: Path
) -> None:
    msg, ctx = courier
    out = tmp_path / "card.mp4"
    seen: list[float] = []
    res = render_video_sync(msg, ctx, VideoOptions(width=320, seconds=1.2, fps=15), out, progress=seen.append)
    info = probe(out)
    assert "Video: h264" in info and "yuv420p" in info and "320x568" in info, info
    assert duration(info) == pytest.approx(1.2, abs=0.1)
    boxes = top_level_boxes(out)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart
    assert res.bytes == out.stat().st_size and res.frames == 18 and res.encodes == 1
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    thumb = Image.open(io.BytesIO(res.thumbnail))
    assert thumb.format == "JPEG" and thumb.width == 320 and len(res.thumbnail) <= 200 * 1024


def test_carousel_video_has_one_slide_per_card_and_moves(tmp_path: Path) -> None:
    t = TemplateStore(TEMPLATES, 0).get("ad-carousel")
    msg = t.render(t.sample)
    out = tmp_path / "carousel.mp4"
    render_video_sync(msg, MediaContext(t.folder, ASSETS), VideoOptions(width=256, seconds=1.5, fps=10), out)
    frames = tmp_path / "f%02d.png"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(out), str(frames)], check=True)
    pics = [Image.open(p).convert("L") for p in sorted(tmp_path.glob("f*.png"))]
    assert len(pics) == 15
    # Every frame differs from the one before: gentle motion throughout, no frozen stretch.
    assert all(ImageChops.difference(x, y).getbbox() for x, y in itertools.pairwise(pics))


def test_size_cap_forces_a_lower_bitrate_re_encode(tmp_path: Path) -> None:
    folder = write_template(
        tmp_path, "noisy", "card:\n  media: {url: noise.png, contentType: image/png}\n  title: 噪点\n"
    )
    Image.effect_noise((640, 360), 120).convert("RGB").save(folder / "noise.png")
    t = TemplateStore(tmp_path, 0).get("noisy")
    msg = t.render({})
    out = tmp_path / "capped.mp4"
    cap = 30_000
    res = render_video_sync(
        msg,
        MediaContext(folder, ASSETS),
        VideoOptions(width=320, seconds=1.0, fps=15, crf=10, max_bytes=cap),
        out,
    )
    assert res.encodes >= 2
    assert out.stat().st_size <= cap
    assert "h264" in probe(out)


def test_same_input_gives_the_same_bytes_whatever_the_cpu_count(tmp_path: Path) -> None:
    """Another host regenerates a pruned video byte for byte: the encode must not depend on how
    many CPUs the encoder sees (x264's automatic thread count does). ffmpeg inherits this
    process's CPU affinity, so one CPU here stands for a smaller host. The capped case also goes
    through the re-encode from the first encode."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs to compare with 1")
    folder = write_template(
        tmp_path, "noisy", "card:\n  media: {url: noise.png, contentType: image/png}\n  title: 噪点\n"
    )
    Image.effect_noise((640, 360), 120).convert("RGB").save(folder / "noise.png")
    t = TemplateStore(tmp_path, 0).get("noisy")
    msg, ctx = t.render({}), MediaContext(folder, ASSETS)
    cases = {
        "plain": VideoOptions(width=320, seconds=1.0, fps=15),
        "capped": VideoOptions(width=320, seconds=1.0, fps=15, crf=10, max_bytes=30_000),
    }
    outputs: dict[str, list[bytes]] = {name: [] for name in cases}
    for run, allowed in enumerate((cpus, {min(cpus)}, cpus)):
        os.sched_setaffinity(0, allowed)
        try:
            for name, opts in cases.items():
                out = tmp_path / f"{name}{run}.mp4"
                res = render_video_sync(msg, ctx, opts, out)
                assert res.encodes == (1 if name == "plain" else 2), (name, res.encodes)
                outputs[name].append(out.read_bytes())
        finally:
            os.sched_setaffinity(0, cpus)
    for name, runs in outputs.items():
        assert runs[0] == runs[1] == runs[2], name
        assert re.search(rb"Lav[fc]\d", runs[0]) is None  # no libavformat/libavcodec version


def test_cancel_stops_ffmpeg_and_removes_the_partial_file(
    courier: tuple[Message, MediaContext], tmp_path: Path
) -> None:
    msg, ctx = courier
    out = tmp_path / "cancelled.mp4"
    frames: list[float] = []

    def cancelled() -> bool:
        return len(frames) >= 1

    with pytest.raises(VideoCancelled):
        render_video_sync(
            msg,
            ctx,
            VideoOptions(width=320, seconds=5, fps=25),
            out,
            progress=frames.append,
            cancelled=cancelled,
        )
    assert not out.exists()
    assert frames and frames[-1] < 0.5


async def test_task_cancellation_kills_ffmpeg(courier: tuple[Message, MediaContext], tmp_path: Path) -> None:
    msg, ctx = courier
    out = tmp_path / "x.mp4"
    task = asyncio.ensure_future(render_video(msg, ctx, VideoOptions(seconds=10), out))
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not out.exists()


def test_missing_ffmpeg_is_a_clear_error(
    courier: tuple[Message, MediaContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINGPIAN_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    msg, ctx = courier
    with pytest.raises(VideoFailed, match="cannot start ffmpeg"):
        render_video_sync(msg, ctx, VideoOptions(width=320, seconds=1), tmp_path / "x.mp4")


def test_command_is_built_with_ffmpeg_python(tmp_path: Path) -> None:
    argv = encode_command(tmp_path / "o.mp4", (320, 180), 25, VideoOptions(width=320))
    joined = " ".join(argv)
    for part in (
        "-f rawvideo",
        "-pix_fmt rgb24",
        "-s 320x180",
        "-i pipe:",
        "-vcodec libx264",
        "-pix_fmt yuv420p",
        "-movflags +faststart",
        "-crf 23",
        "-threads 1",
        "-fflags +bitexact",
        "-flags +bitexact",
        "-map_metadata -1",
    ):
        assert part in joined, part
    capped = " ".join(
        encode_command(
            tmp_path / "o.mp4", (320, 180), 25, VideoOptions(width=320), 400_000, tmp_path / "first.mp4"
        )
    )
    assert "-b:v 400000" in capped and "-maxrate 400000" in capped and "-crf" not in capped


@pytest.mark.parametrize(
    "kw",
    [
        {"width": 100},
        {"width": 4000},
        {"width": 1440},  # 9:16: 2560 px tall, past the 1920 px bound
        {"aspect": "4:3"},
        {"seconds": 11},
        {"seconds": 0},
        {"fps": 60},
        {"seconds": 8, "max_seconds": 5},
    ],
)
def test_bounds(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VideoOptions(**kw)  # type: ignore[arg-type]


def test_duration_defaults_and_caps() -> None:
    assert VideoOptions().duration(1) == 5.0
    assert VideoOptions().duration(2) == pytest.approx(8.4)  # 3 s a card + the brand slides
    assert VideoOptions().duration(10) == 10.0  # never past the 10 s ceiling
    assert VideoOptions(max_seconds=6).duration(3) == 6.0
    assert VideoOptions().size == (720, 1280)  # upright by default
    assert VideoOptions(aspect="16:9").size == (1280, 720)
    assert VideoOptions(aspect="1:1").size == (720, 720)
    assert VideoOptions(width=1279, aspect="16:9").size == (1278, 718)


def test_cli_renders_png_and_mp4_files(tmp_path: Path) -> None:
    import sys

    for to, magic in (("png", b"\x89PNG"), ("mp4", b"ftyp")):
        out = tmp_path / f"card.{to}"
        r = subprocess.run(
            [sys.executable, "-m", "mingpian", "render", "courier-hangup", "--to", to, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert magic in out.read_bytes()[:8]
    assert "Video: h264" in probe(tmp_path / "card.mp4")


# -- what a person sees: the whole card, upright, moving gently inside its frame -----------------
ARTIFACTS = TEMPLATES.parent / "test-artifacts" / "video"


def _frames(out: Path, tmp: Path, every: float) -> list[Image.Image]:
    pattern = tmp / f"{out.stem}-%03d.png"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(out), "-vf", f"fps={1 / every}", str(pattern)],
        check=True,
    )
    return [Image.open(p).convert("RGB") for p in sorted(tmp.glob(f"{out.stem}-*.png"))]


def test_a_card_slide_shows_the_whole_card_upright_with_its_buttons(tmp_path: Path) -> None:
    from renderer.image import draw_card_picture

    t = TemplateStore(TEMPLATES, 0).get("courier-hangup")
    msg = t.render(t.sample)
    ctx = MediaContext(t.folder, ASSETS)
    out = tmp_path / "courier.mp4"
    res = render_video_sync(msg, ctx, VideoOptions(fps=10), out)
    assert (res.width, res.height) == (720, 1280) and res.seconds == 5.0
    shots = _frames(out, tmp_path, 1.0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(shots):
        im.save(ARTIFACTS / f"courier-hangup-{i}s.png")
    # The still parts of the frame (header, text, the four buttons) are the card picture itself,
    # whole: the last button's label is drawn, the description is not cut to two lines.
    card, box = draw_card_picture(msg, ctx, 720 - 2 * 29, max_desc_lines=12)
    assert box is not None
    assert card.height < 1280 and "…" not in "".join(msg.cards[0].description or "")
    x0, y0 = (720 - card.width) // 2, (1280 - card.height) // 2
    below = (0, box[1] + box[3] + 4, card.width, card.height - 8)
    for im in shots:
        still = im.crop((x0 + below[0], y0 + below[1], x0 + below[2], y0 + below[3]))
        ref = card.crop(below)
        diff = ImageChops.difference(still, ref).convert("L")
        assert max(diff.histogram()[40:]) < 0.02 * ref.width * ref.height, "the card's text is not all there"


def test_motion_stays_inside_the_frame_and_the_logo_never_drifts(tmp_path: Path) -> None:
    """The header with the logo is still; only the media box moves."""
    t = TemplateStore(TEMPLATES, 0).get("personal-show")
    msg = t.render(t.sample)
    out = tmp_path / "show.mp4"
    render_video_sync(msg, MediaContext(t.folder, ASSETS), VideoOptions(fps=10), out)
    shots = _frames(out, tmp_path, 0.5)
    header = [im.crop((0, 0, 720, 200)).convert("L") for im in shots]  # above the media box
    first = header[0]
    for h in header[1:]:
        diff = ImageChops.difference(first, h).point(lambda v: 255 if v > 24 else 0)
        assert diff.histogram()[255] < 200, "the header moved"
    assert any(ImageChops.difference(shots[0], im).getbbox() for im in shots[1:]), "nothing moves"


@pytest.mark.parametrize("aspect", ["9:16", "16:9", "1:1"])
def test_carousel_video_opens_and_closes_with_the_brand_and_has_a_slide_per_card(
    tmp_path: Path, aspect: str
) -> None:
    t = TemplateStore(TEMPLATES, 0).get("ad-carousel")
    msg = t.render(t.sample)
    ctx = MediaContext(t.folder, ASSETS)
    opts = VideoOptions(aspect=aspect, width=360, fps=5)  # type: ignore[arg-type]
    slides = build_slides(msg, ctx, opts.size, opts.duration(len(msg.cards)))
    assert len(slides) == len(msg.cards) + 2
    out = tmp_path / "carousel.mp4"
    res = render_video_sync(msg, ctx, opts, out)
    assert (res.width, res.height) == opts.size
    shots = _frames(out, tmp_path, 0.5)
    brand = hex_rgb(msg.brand.color)
    opening = shots[0].resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert sum(abs(a - b) for a, b in zip(opening, brand, strict=True)) < 120, "no brand opening"
    if aspect == "9:16":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(shots):
            im.save(ARTIFACTS / f"ad-carousel-{i:02d}.png")
