"""Short MP4 videos of a card or carousel: one slide per card, cross-fades, a gentle Ken Burns pan.

Frames are drawn here with Pillow (the project's fonts, the same photo rules as images) and piped
raw to ffmpeg, which only encodes: H.264, yuv420p (what every phone plays), `+faststart` (the
index first, so playback starts before the download ends), bit-exact: the same input gives the
same bytes on any host with the same ffmpeg build (fixed thread count, no version strings, no
metadata), which lets another host regenerate a pruned or missing file. The command is built with
ffmpeg-python and run as an asyncio subprocess; the binary is the one in the imageio-ffmpeg wheel
unless MINGPIAN_FFMPEG names another. A result over the profile's byte cap is re-encoded from
the first encode at a computed bitrate (cheaper than redrawing), at most twice.

Bounds: width 240-1440 (height 9/16 of it, even), 1-10 s, at most 30 fps, at most 10 cards.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
from PIL import Image

from .fonts import face
from .image import cover, draw_logo, poster
from .localfiles import MediaContext, load_image
from .model import Card, Message
from .textdraw import draw_text
from .textlayout import wrap

MIN_WIDTH, MAX_WIDTH = 240, 1440
MAX_SECONDS = 10.0
MAX_FPS = 30
MAX_SLIDES = 10
PAN = 0.06  # Ken Burns-style pan: 6 % of the frame over a slide, visible, never dizzying
BAND = (12, 14, 18)


class VideoCancelled(Exception):
    """The caller asked to stop; ffmpeg has been killed and the partial file removed."""


class VideoFailed(RuntimeError):
    """ffmpeg failed; carries the tail of its stderr."""


@dataclass(frozen=True, slots=True)
class VideoOptions:
    width: int = 1280
    seconds: float | None = None  # default: 5 s for a card, 3 s per carousel card
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
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ValueError(f"width must be between {MIN_WIDTH} and {MAX_WIDTH}")
        if self.seconds is not None and not 0.5 <= self.seconds <= min(MAX_SECONDS, self.max_seconds):
            raise ValueError(f"seconds must be between 0.5 and {min(MAX_SECONDS, self.max_seconds):g}")
        if not 1 <= self.fps <= MAX_FPS:
            raise ValueError(f"fps must be between 1 and {MAX_FPS}")

    @property
    def size(self) -> tuple[int, int]:
        w = self.width - self.width % 2
        h = round(w * 9 / 16)
        return w, h - h % 2

    def duration(self, slides: int) -> float:
        d = self.seconds if self.seconds is not None else (5.0 if slides == 1 else 3.0 * slides)
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
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# -- slides ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Slide:
    """One card: a background to pan over, and a static caption band below it.

    A frame is three byte runs: the moving background above the band (a crop: a memory copy,
    no resampling), a thin strip where the background fades into the band (the only per-frame
    compositing), and the band's pre-rendered rows. ~1 ms a frame at 720p, so drawing costs far
    less than x264 encoding it."""

    background: Image.Image  # RGB, PAN larger than the frame
    band: Image.Image  # RGB caption band, opaque; its top `fade` rows blend into the picture
    fade_mask: Image.Image  # L, (w, fade): 0 at the top → 255 where the band is solid
    band_rest: bytes  # the band's rows below the fade strip, as raw RGB
    band_y: int
    fade: int


def _band(message: Message, card: Card, size: tuple[int, int]) -> tuple[Image.Image, int]:
    w, h = size
    s = w / 640
    pad = round(24 * s)
    fade = max(2, round(40 * s))
    tf = face(max(10, round(30 * s)), "bold")
    df = face(max(9, round(20 * s)), "regular")
    title = wrap(card.title or message.brand.name, tf, w - 2 * pad, 2)
    desc = wrap((card.description or "").strip(), df, w - 2 * pad, 2) if card.description else None
    text_h = title.height + (desc.height + round(6 * s) if desc else 0)
    band_h = min(h // 2, text_h + 2 * pad + fade)
    band = Image.new("RGB", (w, band_h), BAND)
    y = max(fade, band_h - pad - text_h)
    for line in title.lines:
        draw_text(band, (pad, y), line, tf, (255, 255, 255))
        y += title.line_height
    if desc:
        y += round(6 * s)
        for line in desc.lines:
            draw_text(band, (pad, y), line, df, (220, 224, 230))
            y += desc.line_height
    return band, fade


def build_slides(message: Message, ctx: MediaContext, size: tuple[int, int]) -> list[Slide]:
    w, h = size
    big = (w + round(w * PAN), h + round(h * PAN))
    slides = []
    for card in message.cards[:MAX_SLIDES]:
        photo = load_image(card.media.url, ctx, big) if card.media is not None else None
        bg = cover(photo, big) if photo is not None else poster(message, card, big, ctx, with_title=False)
        if photo is not None:  # the brand mark on photos; the poster already carries it
            s = w / 640
            pad = round(20 * s)
            corner = (pad + (big[0] - w) // 2, pad + (big[1] - h) // 2)
            draw_logo(bg, message.brand, corner, round(44 * s), ctx)
        band, fade = _band(message, card, size)
        mask = Image.linear_gradient("L").resize((w, fade), Image.Resampling.BILINEAR)
        slides.append(
            Slide(bg, band, mask, band.crop((0, fade, w, band.height)).tobytes(), h - band.height, fade)
        )
    return slides


def _offset(slide: Slide, t: float, size: tuple[int, int], index: int) -> tuple[int, int]:
    """Pan position at `t` in [0, 1]: eased, whole pixels; alternate slides pan the other way."""
    w, h = size
    bw, bh = slide.background.size
    e = t * t * (3 - 2 * t)
    if index % 2:
        e = 1 - e
    return round((bw - w) * e), round((bh - h) * (0.25 + 0.5 * e))


def frame_bytes(slide: Slide, t: float, size: tuple[int, int], index: int) -> bytes:
    """One raw RGB frame of the slide at `t` (see Slide for how it is assembled)."""
    return _compose(slide, _offset(slide, t, size, index), size[0])


def _compose(slide: Slide, offset: tuple[int, int], w: int) -> bytes:
    x, y = offset
    bg = slide.background
    top = bg.crop((x, y, x + w, y + slide.band_y))
    strip = bg.crop((x, y + slide.band_y, x + w, y + slide.band_y + slide.fade))
    strip.paste(slide.band.crop((0, 0, w, slide.fade)), (0, 0), slide.fade_mask)
    return b"".join((top.tobytes(), strip.tobytes(), slide.band_rest))


def frame_image(slide: Slide, t: float, size: tuple[int, int], index: int) -> Image.Image:
    return Image.frombytes("RGB", size, frame_bytes(slide, t, size, index))


def frames(
    slides: list[Slide], size: tuple[int, int], seconds: float, fps: int, transition: float
) -> Iterator[bytes]:
    """Every frame of the video as raw RGB: each slide for an equal share, cross-faded into
    the next over `transition` seconds."""
    total = max(1, round(seconds * fps))
    n = len(slides)
    per = total / n
    fade = min(round(transition * fps), int(per // 2)) if n > 1 else 0
    last_key: tuple[int, tuple[int, int]] | None = None
    last = b""
    for i in range(total):
        k = min(n - 1, int(i / per))
        t = min(1.0, (i - k * per) / per)
        into_next = (k + 1) * per - i
        if fade and k + 1 < n and into_next <= fade:
            a = frame_image(slides[k], t, size, k)
            b = frame_image(slides[k + 1], 0.0, size, k + 1)
            yield Image.blend(a, b, 1 - into_next / fade).tobytes()
        else:
            # A slow pan moves by whole pixels, so neighbouring frames are often identical:
            # reuse the bytes rather than composing them again.
            key = (k, _offset(slides[k], t, size, k))
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
        slides.extend(build_slides(message, ctx, size))
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
        thumbnail(frame_image(slides[0], 0.0, size, 0)),
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
