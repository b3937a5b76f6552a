"""An uploaded file made safe to keep and to show: its kind found from its bytes, then re-encoded.

Nothing of the upload is trusted: not its name, not its Content-Type. The first bytes say what
it claims to be (PNG, JPEG, WebP, GIF, BMP; MP4/MOV, WebM); then it must decode as that. It is
never kept as sent: a picture is decoded by Pillow, scaled down to the pixel cap, and written
again from its pixels alone (JPEG, or PNG when it has transparency), which drops EXIF (GPS
position, camera serial), XMP, ICC, comments and PNG text chunks; a video goes through ffmpeg
(H.264 + AAC in MP4, `-map_metadata -1`, no chapters, scaled to the pixel cap, `+faststart`),
refused past the duration cap. What is kept is what the renderer,
phones and the MaaP read: the same bytes every time for the same upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

IMAGE_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
)
VIDEO_BRANDS = (b"ftyp",)  # ISO base media (MP4, MOV, 3GP) at offset 4
WEBM_MAGIC = b"\x1a\x45\xdf\xa3"
JPEG_QUALITY = 88
VIDEO_CRF = "26"


class IngestError(ValueError):
    """The upload is refused; `code` is the API's error code and `limit` what was exceeded."""

    def __init__(self, code: str, message: str, limit: str = "") -> None:
        super().__init__(message)
        self.code, self.limit = code, limit


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024  # an upload, as sent
    max_pixels: int = 4096 * 4096  # a picture or a video frame is scaled down to this
    max_seconds: float = 60.0  # a video's duration


@dataclass(frozen=True, slots=True)
class Ingested:
    id: str  # the first 32 hex digits of the SHA-256 of `data`
    kind: str  # image | video
    ext: str  # jpg | png | mp4
    content_type: str
    data: bytes
    width: int
    height: int
    seconds: float = 0.0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def sniff(data: bytes) -> str:
    """`image` or `video` from the first bytes; IngestError for anything else."""
    for magic, offset, _ in IMAGE_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return "image"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image"
    if data[4:8] in VIDEO_BRANDS or data[:4] == WEBM_MAGIC:
        return "video"
    raise IngestError(
        "unsupported_media",
        "the file is neither a picture (PNG, JPEG, WebP, GIF, BMP) nor a video (MP4, MOV, WebM)",
    )


def _fit(w: int, h: int, max_pixels: int) -> tuple[int, int]:
    if w * h <= max_pixels:
        return w, h
    scale = (max_pixels / (w * h)) ** 0.5
    return max(1, int(w * scale)), max(1, int(h * scale))


def ingest_image(data: bytes, limits: Limits) -> Ingested:
    """Decode (bounded), orient, scale to the pixel cap and encode again without metadata."""
    try:
        with warnings.catch_warnings():  # Pillow's own bomb check warns first: a refusal here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        w, h = im.size
        if w * h > 16 * limits.max_pixels or w <= 0 or h <= 0:  # a decompression bomb: never decode it
            raise IngestError(
                "media_too_large", f"the picture is {w}×{h} pixels", f"{limits.max_pixels} pixels"
            )
        im.load()
        im = ImageOps.exif_transpose(im)  # the pixels as the camera meant them; the tag goes
    except IngestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise IngestError(
            "media_too_large", f"the picture is too large to decode: {exc}", f"{limits.max_pixels} pixels"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise IngestError("undecodable_media", f"the picture cannot be decoded: {exc}") from None
    alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    im = im.convert("RGBA" if alpha else "RGB")
    size = _fit(im.width, im.height, limits.max_pixels)
    if size != im.size:
        im = im.resize(size, Image.Resampling.LANCZOS)
    # Pillow carries what it read (comment, ICC profile, XMP, text chunks) into `info` and writes
    # some of it again on save (a JPEG's comment, a PNG's ICC profile): only the pixels go on
    im.info.clear()
    out = io.BytesIO()
    if alpha:
        im.save(out, "PNG", optimize=False, compress_level=6)
        ext, ctype = "png", "image/png"
    else:
        im.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=False)
        ext, ctype = "jpg", "image/jpeg"
    blob = out.getvalue()
    return Ingested(_id(blob), "image", ext, ctype, blob, im.width, im.height)


_DURATION = re.compile(rb"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_VIDEO = re.compile(rb"Stream #[^\n]*Video:[^\n]*?, (\d{2,5})x(\d{2,5})")


async def _run(argv: list[str], timeout: float) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, err


async def ingest_video(data: bytes, limits: Limits, ffmpeg: str, timeout: float = 120.0) -> Ingested:
    """Probe with ffmpeg (duration, frame size), then re-encode into an H.264 MP4 without metadata."""
    with tempfile.TemporaryDirectory(prefix="mp-lib-") as tmp:
        src, dst = Path(tmp) / "upload", Path(tmp) / "out.mp4"
        src.write_bytes(data)
        _, err = await _run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(src)], timeout)
        d, v = _DURATION.search(err), _VIDEO.search(err)
        if d is None or v is None:
            raise IngestError("undecodable_media", "the video cannot be decoded (no duration or no picture)")
        seconds = int(d[1]) * 3600 + int(d[2]) * 60 + float(d[3])
        if seconds > limits.max_seconds:
            raise IngestError(
                "media_too_long", f"the video lasts {seconds:.1f} s", f"{limits.max_seconds:g} seconds"
            )
        w, h = _fit(int(v[1]), int(v[2]), limits.max_pixels)
        w, h = max(2, w - w % 2), max(2, h - h % 2)  # yuv420p wants even sides
        argv = [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
            "-map", "0:v:0", "-map", "0:a:0?", "-map_metadata", "-1", "-map_chapters", "-1",
            "-vf", f"scale={w}:{h}", "-c:v", "libx264", "-preset", "veryfast", "-crf", VIDEO_CRF,
            "-pix_fmt", "yuv420p", "-threads", "1", "-c:a", "aac", "-b:a", "96k",
            "-movflags", "+faststart", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            "-flags:a", "+bitexact", str(dst),
        ]  # fmt: skip
        rc, err = await _run(argv, timeout)
        if rc != 0 or not dst.exists():
            tail = err.decode(errors="replace")[-300:]
            raise IngestError("undecodable_media", f"the video cannot be re-encoded: {tail}")
        blob = dst.read_bytes()
    return Ingested(_id(blob), "video", "mp4", "video/mp4", blob, w, h, round(seconds, 3))


async def ingest(data: bytes, limits: Limits, ffmpeg: str) -> Ingested:
    """The upload, checked and re-encoded; IngestError says why not."""
    if len(data) > limits.max_bytes:
        raise IngestError("media_too_large", f"the file has {len(data)} bytes", f"{limits.max_bytes} bytes")
    if not data:
        raise IngestError("unsupported_media", "the file is empty")
    if sniff(data) == "image":
        return await asyncio.to_thread(ingest_image, data, limits)
    return await ingest_video(data, limits, ffmpeg)


def _id(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:32]


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
