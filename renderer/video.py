"""Short MP4 videos a person would forward: each card as a phone shows it, upright by default.

A slide is the whole card (brand header, media, title, the full description when it fits,
buttons, quick replies) drawn by image.py at the frame's scale, over a blurred, darkened copy of
its picture; only the media slot moves, a gentle eased pan inside its own box, so nothing ever
drifts out of the frame. A carousel gets a brand opening, a slide per card and a brand closing.
Portrait 9:16 (720x1280) by default, as phones are held; 16:9 and 1:1 as options.

Frames are drawn here with Pillow (the project's fonts, the same photo rules as images) and piped
raw to ffmpeg, which only encodes: H.264, yuv420p (what every phone plays), `+faststart` (the
index first, so playback starts before the download ends), bit-exact: the same input gives the
same bytes on any host with the same ffmpeg build (fixed thread count, no version strings, no
metadata), which lets another host regenerate a pruned or missing file. The command is built with
ffmpeg-python and run as an asyncio subprocess; the binary is the one in the imageio-ffmpeg wheel
unless MINGPIAN_FFMPEG names another. A result over the profile's byte cap is re-encoded from
the first encode at a computed bitrate (cheaper than redrawing), at most twice.

Bounds: width 240-1440 with the longer side at most 1920, 0.5-10 s, at most 30 fps, at most 10
cards.

Why one module of this length: the slides, their motion and the ffmpeg pipe agree on one frame
format and timing; split, each part would restate them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import ffmpeg
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .fonts import face
from .image import MediaBox, _top_rounded_mask, cover, draw_card_picture, draw_logo, hex_rgb, poster
from .localfiles import MediaContext, load_image
from .model import Card, Message
from .textdraw import draw_text

MIN_WIDTH, MAX_WIDTH = 240, 1440
MAX_SIDE = 1920
MAX_SECONDS = 10.0
MAX_FPS = 30
MAX_SLIDES = 10
PAN = 0.08  # the media slot's pan: 8 % of its box over a slide, visible, never dizzying
BRAND_SECONDS = 1.2  # a carousel's opening and closing slides
Aspect = Literal["9:16", "16:9", "1:1"]
ASPECTS: dict[str, tuple[int, int]] = {"9:16": (9, 16), "16:9": (16, 9), "1:1": (1, 1)}
DEFAULT_WIDTH: dict[str, int] = {"9:16": 720, "16:9": 1280, "1:1": 720}


class VideoCancelled(Exception):
    """The caller asked to stop; ffmpeg has been killed and the partial file removed."""


class VideoFailed(RuntimeError):
    """ffmpeg failed; carries the tail of its stderr."""


@dataclass(frozen=True, slots=True)
class VideoOptions:
    width: int | None = None  # default: 720 (9:16, 1:1), 1280 (16:9)
    seconds: float | None = None  # default: 5 s for a card, 3 s per carousel card (+ brand slides)
    aspect: Aspect = "9:16"
    fps: int = 25
    transition: float = 0.5
    crf: int = 23
    preset: str = "veryfast"
    # x264 threads: fixed, not "auto". Auto picks a thread count from the host's CPUs, and x264's
    # output depends on it (measured: 1 vs 2 cores gave different bytes), so the same video
    # would differ between hosts. With a fixed count the bytes depend only on the input and the
    # ffmpeg build. One thread costs little at these sizes (a 5 s 1280x720 encode on 2 cores:
    # 0.89 s vs 0.92 s auto; 720x404: 0.41 s vs 0.38 s), and concurrent renders use the other
    # cores.
    threads: int = 1
    max_bytes: int = 5 * 1024 * 1024
    max_seconds: float = MAX_SECONDS

    def __post_init__(self) -> None:
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {', '.join(ASPECTS)}")
        if not MIN_WIDTH <= self.frame_width <= MAX_WIDTH:
            raise ValueError(f"width must be between {MIN_WIDTH} and {MAX_WIDTH}")
        if max(self.size) > MAX_SIDE:
            top = MAX_SIDE * ASPECTS[self.aspect][0] // ASPECTS[self.aspect][1]
            raise ValueError(f"width must be at most {min(MAX_WIDTH, top)} for aspect {self.aspect}")
        if self.seconds is not None and not 0.5 <= self.seconds <= min(MAX_SECONDS, self.max_seconds):
            raise ValueError(f"seconds must be between 0.5 and {min(MAX_SECONDS, self.max_seconds):g}")
        if not 1 <= self.fps <= MAX_FPS:
            raise ValueError(f"fps must be between 1 and {MAX_FPS}")

    @property
    def frame_width(self) -> int:
        return self.width if self.width is not None else DEFAULT_WIDTH[self.aspect]

    @property
    def size(self) -> tuple[int, int]:
        aw, ah = ASPECTS[self.aspect]
        w = self.frame_width - self.frame_width % 2
        h = round(w * ah / aw)
        return w, h - h % 2

    def duration(self, cards: int) -> float:
        """The video's length: 5 s for a card; 3 s per carousel card plus the brand slides."""
        d = (
            self.seconds
            if self.seconds is not None
            else (5.0 if cards == 1 else 3.0 * cards + 2 * BRAND_SECONDS)
        )
        return min(d, self.max_seconds, MAX_SECONDS)


@dataclass(frozen=True, slots=True)
class VideoResult:
    path: Path
    bytes: int
    seconds: float
    width: int
    height: int
    frames: int
    encodes: int  # 1, or more when the size cap forced a re-encode
    thumbnail: bytes  # JPEG of the first frame


def ffmpeg_exe() -> str:
    override = os.environ.get("MINGPIAN_FFMPEG")
    if override:
        return override
    import imageio_ffmpeg  # deferred: only when no ffmpeg is configured

    return imageio_ffmpeg.get_ffmpeg_exe()


# -- slides ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Slide:
    """One still with a moving box: the still's raw bytes, and a picture PAN larger than the box
    that is panned across it. A frame is the still with the box's rows replaced by a crop of
    the picture (memory copies, no resampling): ~1 ms at 720x1280, far below x264's cost."""

    still: bytes  # raw RGB of the whole frame
    picture: Image.Image  # RGB, larger than the box
    box: MediaBox  # x, y, w, h in the frame
    corner: Image.Image | None  # the still's top rows of the box (rounded corners), or None
    corner_mask: Image.Image | None
    seconds: float


def _backdrop(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The frame behind the card: its picture, covering, blurred and darkened."""
    small = cover(picture, (max(1, size[0] // 8), max(1, size[1] // 8)))
    small = small.filter(ImageFilter.GaussianBlur(3))
    return ImageEnhance.Brightness(small.resize(size, Image.Resampling.BILINEAR)).enhance(0.55)


def _fit_card(
    message: Message, ctx: MediaContext, size: tuple[int, int]
) -> tuple[Image.Image, MediaBox | None]:
    """The card picture as large as the frame holds it, with a margin; the description keeps
    all its lines when they fit (up to 12), fewer when the frame is short."""
    w, h = size
    margin = max(8, round(min(w, h) * 0.04))
    width = w - 2 * margin
    im, box = draw_card_picture(message, ctx, width, max_desc_lines=12)
    for lines in (12, 8, 6, 4):
        if im.height <= h - 2 * margin:
            break
        width = max(120, int(width * (h - 2 * margin) / im.height))
        im, box = draw_card_picture(message, ctx, width, max_desc_lines=lines)
    if im.height > h - 2 * margin:  # still too tall: scale the still down
        k = (h - 2 * margin) / im.height
        im = im.resize((max(1, round(im.width * k)), h - 2 * margin), Image.Resampling.LANCZOS)
        box = tuple(round(v * k) for v in box) if box else None  # type: ignore[assignment]
    return im, box


def _card_slide(
    message: Message, card: Card, ctx: MediaContext, size: tuple[int, int], seconds: float
) -> Slide:
    w, h = size
    one = replace(message, kind="card", cards=(card,))
    photo = load_image(card.media.url, ctx, size) if card.media is not None else None
    still_card, box = _fit_card(one, ctx, size)
    picture_src = (
        photo
        if photo is not None
        else poster(message, card, (w, max(1, w // 2)), ctx, with_title=False, with_brand=False)
    )
    frame = _backdrop(picture_src, size)
    x0, y0 = (w - still_card.width) // 2, (h - still_card.height) // 2
    frame.paste(still_card, (x0, y0), _rounded_mask(still_card.size, round(still_card.width * 0.03)))
    if box is None:  # no media slot: the whole card moves gently instead
        box = (0, 0, still_card.width, still_card.height)
        big = (round(box[2] * (1 + PAN / 4)), round(box[3] * (1 + PAN / 4)))
        picture = still_card.resize(big, Image.Resampling.BILINEAR)
        frame_box = (x0, y0, box[2], box[3])
        return Slide(frame.tobytes(), picture, frame_box, None, None, seconds)
    bx, by, bw, bh = box
    big = (bw + round(bw * PAN), bh + round(bh * PAN))
    picture = (
        cover(photo, big)
        if photo is not None
        else poster(message, card, big, ctx, with_title=False, with_brand=False)
    )
    frame_box = (x0 + bx, y0 + by, bw, bh)
    radius = round(12 * still_card.width / 360)  # the card's corner radius (image.py: 12 dp)
    corner = frame.crop((x0 + bx, y0 + by, x0 + bx + bw, y0 + by + radius)) if radius else None
    mask = _top_rounded_mask(bw, radius, radius) if radius else None
    return Slide(frame.tobytes(), picture, frame_box, corner, mask, seconds)


def _rounded_mask(size: tuple[int, int], r: int) -> Image.Image:
    m = Image.new("L", (size[0] * 2, size[1] * 2), 0)
    ImageDraw.Draw(m).rounded_rectangle((0, 0, size[0] * 2 - 1, size[1] * 2 - 1), radius=r * 2, fill=255)
    return m.resize(size, Image.Resampling.LANCZOS)


def _brand_slide(
    message: Message, ctx: MediaContext, size: tuple[int, int], closing: bool, seconds: float
) -> Slide:
    """A carousel's opening (logo and name) or closing (also the signature): brand colour,
    panned gently as a whole."""
    w, h = size
    big = (w + round(w * PAN / 2), h + round(h * PAN / 2))
    color = hex_rgb(message.brand.color)
    im = Image.new("RGB", big, color)
    d = ImageDraw.Draw(im)
    dark = tuple(int(c * 0.75) for c in color)
    d.polygon([(big[0] * 0.6, 0), (big[0], 0), (big[0], big[1]), (big[0] * 0.3, big[1])], fill=dark)
    unit = min(w, h)
    logo_d = round(unit * 0.28)
    cx, cy = big[0] // 2, big[1] // 2 - round(unit * 0.08)
    ring = max(2, logo_d // 20)
    d.ellipse(
        (cx - logo_d // 2 - ring, cy - logo_d // 2 - ring, cx + logo_d // 2 + ring, cy + logo_d // 2 + ring),
        fill=(255, 255, 255),
    )
    draw_logo(im, message.brand, (cx - logo_d // 2, cy - logo_d // 2), logo_d, ctx)
    nf = face(max(10, round(unit * 0.07)), "bold")
    y = cy + logo_d // 2 + round(unit * 0.08)
    draw_text(im, (cx, y), message.brand.name, nf, (255, 255, 255), "mm")
    if closing and message.brand.signature:
        sf = face(max(9, round(unit * 0.045)), "regular")
        draw_text(im, (cx, y + nf.line_height), f"【{message.brand.signature}】", sf, (235, 238, 242), "mm")
    return Slide(b"\0" * (w * h * 3), im, (0, 0, w, h), None, None, seconds)


def build_slides(
    message: Message, ctx: MediaContext, size: tuple[int, int], seconds: float | None = None
) -> list[Slide]:
    """The slides of a video `seconds` long: a card's, or a carousel's brand opening, one per
    card (at most MAX_SLIDES cards) and brand closing."""
    cards = message.cards[:MAX_SLIDES]
    total = (
        seconds if seconds is not None else (5.0 if len(cards) == 1 else 3.0 * len(cards) + 2 * BRAND_SECONDS)
    )
    if len(cards) == 1:
        return [_card_slide(message, cards[0], ctx, size, total)]
    brand = min(BRAND_SECONDS, total * 0.15)
    per = (total - 2 * brand) / len(cards)
    slides = [_brand_slide(message, ctx, size, False, brand)]
    slides += [_card_slide(message, c, ctx, size, per) for c in cards]
    slides.append(_brand_slide(message, ctx, size, True, brand))
    return slides


def _offset(slide: Slide, t: float, index: int) -> tuple[int, int]:
    """Pan position at `t` in [0, 1]: eased, whole pixels, always inside the picture;
    alternate slides pan the other way."""
    _, _, bw, bh = slide.box
    pw, ph = slide.picture.size
    e = t * t * (3 - 2 * t)
    if index % 2:
        e = 1 - e
    return round((pw - bw) * e), round((ph - bh) * (0.25 + 0.5 * e))


def _compose(slide: Slide, offset: tuple[int, int], w: int) -> bytes:
    x, y = offset
    bx, by, bw, bh = slide.box
    crop = slide.picture.crop((x, y, x + bw, y + bh))
    if slide.corner is not None and slide.corner_mask is not None:
        top = slide.corner.copy()
        top.paste(crop.crop((0, 0, bw, top.height)), (0, 0), slide.corner_mask)
        crop.paste(top, (0, 0))
    rows = crop.tobytes()
    if bx == 0 and bw == w:  # the box spans the frame's width: one slice
        return slide.still[: by * w * 3] + rows + slide.still[(by + bh) * w * 3 :]
    frame = bytearray(slide.still)
    stride, run = w * 3, bw * 3
    start = by * stride + bx * 3
    for i in range(bh):
        o = start + i * stride
        frame[o : o + run] = rows[i * run : (i + 1) * run]
    return bytes(frame)


def frame_bytes(slide: Slide, t: float, size: tuple[int, int], index: int) -> bytes:
    """One raw RGB frame of the slide at `t` in [0, 1]."""
    return _compose(slide, _offset(slide, t, index), size[0])


def frame_image(slide: Slide, t: float, size: tuple[int, int], index: int) -> Image.Image:
    return Image.frombytes("RGB", size, frame_bytes(slide, t, size, index))


def frames(
    slides: list[Slide], size: tuple[int, int], seconds: float, fps: int, transition: float
) -> Iterator[bytes]:
    """Every frame of the video as raw RGB: each slide for its share of `seconds`,
    cross-faded into the next over `transition` seconds."""
    total = max(1, round(seconds * fps))
    weights = [s.seconds for s in slides]
    scale = total / sum(weights)
    ends: list[float] = []
    acc = 0.0
    for wgt in weights:
        acc += wgt * scale
        ends.append(acc)
    n = len(slides)
    last_key: tuple[int, tuple[int, int]] | None = None
    last = b""
    k = 0
    for i in range(total):
        while k < n - 1 and i >= ends[k]:
            k += 1
        start = ends[k - 1] if k else 0.0
        span = max(1e-9, ends[k] - start)
        t = min(1.0, (i - start) / span)
        fade = min(transition * fps, span / 2, (ends[k + 1] - ends[k]) / 2 if k + 1 < n else 0)
        into_next = ends[k] - i
        if fade >= 1 and k + 1 < n and into_next <= fade:
            a = frame_image(slides[k], t, size, k)
            b = frame_image(slides[k + 1], 0.0, size, k + 1)
            yield Image.blend(a, b, 1 - into_next / fade).tobytes()
        else:
            # A slow pan moves by whole pixels, so neighbouring frames are often identical:
            # reuse the bytes rather than composing them again.
            key = (k, _offset(slides[k], t, k))
            if key != last_key:
                last_key, last = key, _compose(slides[k], key[1], size[0])
            yield last


# -- encoding ----------------------------------------------------------------------------------
def encode_command(
    out: Path,
    size: tuple[int, int],
    fps: int,
    opts: VideoOptions,
    bitrate: int | None = None,
    source: Path | None = None,
) -> list[str]:
    """The ffmpeg argv: raw RGB frames on stdin (or an earlier encode, for a re-encode)."""
    w, h = size
    if source is None:
        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", r=fps)
    else:
        stream = ffmpeg.input(str(source))
    kwargs: dict[str, object] = {
        "vcodec": "libx264",
        "pix_fmt": "yuv420p",
        "preset": opts.preset,
        "movflags": "+faststart",
        "profile:v": "high",
        "r": fps,
        "an": None,
        "threads": opts.threads,
        # Reproducible files: no encoder/muxer version strings, no metadata carried over from
        # the first encode into a re-encode.
        "fflags": "+bitexact",
        "flags": "+bitexact",
        "map_metadata": -1,
    }
    if bitrate is None:
        kwargs["crf"] = opts.crf
    else:
        kwargs.update({"b:v": bitrate, "maxrate": bitrate, "bufsize": bitrate * 2})
    stream = ffmpeg.output(stream, str(out), **kwargs).global_args("-nostdin", "-loglevel", "error")
    return list(ffmpeg.compile(stream, cmd=ffmpeg_exe(), overwrite_output=True))


def _widen_pipe(stdin: asyncio.StreamWriter) -> None:
    """A pipe that holds a whole 720p frame (2.7 MB) instead of 64 KiB: one write per frame and
    far fewer wake-ups of both processes. 4 MiB needs CAP_SYS_RESOURCE beyond the system's
    pipe-max-size (1 MiB by default), so fall back to 1 MiB; Linux only."""
    pipe = stdin.transport.get_extra_info("pipe")
    if pipe is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    for size in (4 << 20, 1 << 20):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, size)
            return


async def _run(
    argv: list[str],
    feed: Iterator[bytes] | None,
    on_frame: Callable[[int], None] | None,
    cancelled: Callable[[], bool] | None,
) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if feed is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise VideoFailed(f"cannot start ffmpeg {argv[0]!r}: {exc.strerror or exc}") from None
    assert proc.stderr is not None
    if proc.stdin is not None:
        _widen_pipe(proc.stdin)
    err_task = asyncio.ensure_future(proc.stderr.read())
    try:
        if feed is not None:
            assert proc.stdin is not None
            for i, chunk in enumerate(feed):
                if cancelled is not None and cancelled():
                    raise VideoCancelled()
                proc.stdin.write(chunk)
                await proc.stdin.drain()
                await asyncio.sleep(0)  # drawing is synchronous: let other tasks (and cancel) in
                if on_frame is not None:
                    on_frame(i + 1)
            proc.stdin.close()
        rc = await proc.wait()
    except (VideoCancelled, asyncio.CancelledError, BrokenPipeError, ConnectionResetError) as exc:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if isinstance(exc, BrokenPipeError | ConnectionResetError):
            raise VideoFailed(
                "ffmpeg stopped reading: " + (await err_task).decode(errors="replace")[-400:]
            ) from None
        err_task.cancel()
        raise
    err = (await err_task).decode(errors="replace")
    if rc != 0:
        raise VideoFailed(f"ffmpeg exited {rc}: {err[-400:]}")


async def render_video(
    message: Message,
    ctx: MediaContext,
    opts: VideoOptions,
    out: Path,
    *,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> VideoResult:
    """Draw and encode the video of `message` into `out`; `progress` gets 0..1 as frames go."""
    if not message.cards:
        raise ValueError("a message without cards has nothing to show")
    size = opts.size
    seconds = opts.duration(min(len(message.cards), MAX_SLIDES))
    total = max(1, round(seconds * opts.fps))
    slides: list[Slide] = []

    def feed() -> Iterator[bytes]:
        # Built on the first frame, i.e. after ffmpeg was started: its start-up (loading,
        # x264 set-up) overlaps with decoding photos and laying out captions here.
        slides.extend(build_slides(message, ctx, size, seconds))
        yield from frames(slides, size, seconds, opts.fps, opts.transition)

    def on_frame(i: int) -> None:
        if progress is not None and (i % 5 == 0 or i == total):
            progress(0.95 * i / total)

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        await _run(encode_command(out, size, opts.fps, opts), feed(), on_frame, cancelled)
        encodes = 1
        for _ in range(2):
            if out.stat().st_size <= opts.max_bytes:
                break
            encodes += 1
            bitrate = int(opts.max_bytes * 8 * 0.85 / seconds)
            tmp = out.with_suffix(".re.mp4")
            out.replace(tmp)
            try:
                await _run(encode_command(out, size, opts.fps, opts, bitrate, tmp), None, None, cancelled)
            finally:
                tmp.unlink(missing_ok=True)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0)
    return VideoResult(
        out,
        out.stat().st_size,
        seconds,
        size[0],
        size[1],
        total,
        encodes,
        thumbnail(frame_image(slides[1 if len(slides) > 1 else 0], 0.0, size, 0)),
    )


def thumbnail(frame: Image.Image, width: int = 480, max_bytes: int = 200 * 1024) -> bytes:
    """A JPEG of the first frame for `thumbnailUrl`, under the RBM 200 KB thumbnail cap."""
    w, h = frame.size
    im = (
        frame.resize((min(width, w), round(h * min(width, w) / w)), Image.Resampling.BILINEAR)
        if w > width
        else frame
    )
    for q in (82, 70, 55, 40):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        if buf.tell() <= max_bytes:
            break
    return buf.getvalue()


def render_video_sync(
    message: Message, ctx: MediaContext, opts: VideoOptions, out: Path, **kw: object
) -> VideoResult:
    """`render_video` for a worker process or the CLI (runs its own event loop)."""
    return asyncio.run(render_video(message, ctx, opts, out, **kw))  # type: ignore[arg-type]


def render_video_bytes(message: Message, ctx: MediaContext, opts: VideoOptions) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mingpian-video-") as tmp:
        out = Path(tmp) / "card.mp4"
        render_video_sync(message, ctx, opts, out)
        return out.read_bytes()
