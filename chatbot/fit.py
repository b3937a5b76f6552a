"""Make a file fit a platform's upload limits before it is uploaded, or say why it cannot.

Images (and thumbnails) over their byte limit are re-encoded as JPEG at falling quality, then
scaled down step by step (never below 240 px wide); videos over their byte or length limit are
cut to the length limit and re-encoded with H.264 at the bit rate that fits (ffmpeg from the
imageio-ffmpeg wheel, as the renderer uses). What still does not fit raises `Unfit`, naming
the limit. Results are written beside the cached uploads, named by the source's hash and the
limit, so a second send of the same card re-uses them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from renderer.profiles import CarrierProfile
from renderer.video import ffmpeg_exe

from .uploads import LocalFile

MIN_WIDTH = 240
QUALITIES = (85, 70, 55, 40)
VIDEO_SECONDS = 60.0  # the MaaP's upload limit for a video (CT/CU V1.0.4), not the renderer's


@dataclass(frozen=True, slots=True)
class Limits:
    image_bytes: int = 2 * 1024 * 1024
    video_bytes: int = 10 * 1024 * 1024
    video_seconds: float = VIDEO_SECONDS
    thumbnail_bytes: int = 200 * 1024

    @classmethod
    def of(cls, profile: CarrierProfile) -> Limits:
        return cls(
            profile.image_max_bytes, profile.video_max_bytes, VIDEO_SECONDS, profile.thumbnail_max_bytes
        )


class Unfit(ValueError):
    """A file that cannot be made to fit; the message names the limit."""


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def fit(file: LocalFile, kind: str, limits: Limits, workdir: Path) -> LocalFile:
    """`kind`: image, thumbnail or video."""
    if kind == "video" or file.content_type.startswith("video/"):
        return await _video(file, limits, workdir)
    limit = limits.thumbnail_bytes if kind == "thumbnail" else limits.image_bytes
    if file.path.stat().st_size <= limit:
        return file
    return await asyncio.to_thread(_image, file, limit, kind, workdir)


def _image(file: LocalFile, limit: int, kind: str, workdir: Path) -> LocalFile:
    out = workdir / f"{_hash(file.path)}-{limit}.jpg"
    if out.exists():
        return LocalFile(out, "image/jpeg")
    try:
        with Image.open(file.path) as im:
            im.load()
            img = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise Unfit(f"{file.path.name}: not an image Pillow can read ({exc})") from None
    while True:
        for q in QUALITIES:
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=q, optimize=True)
            if buf.tell() <= limit:
                workdir.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(f".{os.getpid()}-{secrets.token_hex(4)}.tmp")
                tmp.write_bytes(buf.getvalue())
                tmp.replace(out)
                return LocalFile(out, "image/jpeg")
        if img.width * 3 // 4 < MIN_WIDTH:
            what = "thumbnail" if kind == "thumbnail" else "image"
            raise Unfit(
                f"{what} {file.path.name} cannot be made to fit the platform's {what} limit of "
                f"{limit} bytes (still {buf.tell()} bytes at {img.width} px wide)"
            )
        img = img.resize((img.width * 3 // 4, max(1, img.height * 3 // 4)), Image.Resampling.LANCZOS)


_DURATION = re.compile(rb"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


async def _run(*args: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err


async def duration(path: Path) -> float:
    _, err = await _run("-hide_banner", "-i", str(path))
    m = _DURATION.search(err)
    if m is None:
        raise Unfit(f"{path.name}: not a video ffmpeg can read")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


async def _video(file: LocalFile, limits: Limits, workdir: Path) -> LocalFile:
    seconds = await duration(file.path)
    size = file.path.stat().st_size
    if size <= limits.video_bytes and seconds <= limits.video_seconds + 0.05:
        return file
    out = workdir / f"{_hash(file.path)}-{limits.video_bytes}-{limits.video_seconds:g}.mp4"
    if out.exists():
        return LocalFile(out, "video/mp4")
    workdir.mkdir(parents=True, exist_ok=True)
    length = min(seconds, limits.video_seconds)
    budget = limits.video_bytes * 8 * 0.9 / max(length, 0.1)  # bits per second, 10% for the container
    for share in (1.0, 0.7, 0.5):
        rate = int(budget * share)
        if rate < 64_000:
            break
        tmp = out.with_suffix(f".{os.getpid()}-{secrets.token_hex(4)}.tmp.mp4")
        code, err = await _run(
            "-hide_banner", "-y", "-i", str(file.path), "-t", f"{length:.3f}",
            "-vf", "scale='min(1280,iw)':-2", "-c:v", "libx264", "-preset", "veryfast",
            "-b:v", str(rate), "-maxrate", str(rate), "-bufsize", str(rate),
            "-pix_fmt", "yuv420p", "-an", "-movflags", "+faststart", str(tmp),
        )  # fmt: skip
        if code != 0:
            raise Unfit(
                f"{file.path.name}: ffmpeg could not re-encode it: {err[-300:].decode('utf-8', 'replace')}"
            )
        if tmp.stat().st_size <= limits.video_bytes:
            tmp.replace(out)
            return LocalFile(out, "video/mp4")
        tmp.unlink(missing_ok=True)
    raise Unfit(
        f"video {file.path.name} cannot be made to fit the platform's video limit of "
        f"{limits.video_bytes} bytes / {limits.video_seconds:g} s"
    )
