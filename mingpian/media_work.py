"""What runs inside the media worker processes (mingpian/media/jobs.py): job spec → files.

Kept free of aiohttp and of the app so the spawned workers import little. Results are written
straight into the cache folder (temp name + atomic rename), so only small metadata crosses the
process boundary: sizes and the SHA-256 of each file, from which the server process records the
file's render spec (mingpian/media/specs.py). Renderer errors come back as data (their problems
intact), not as pickled exceptions.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.library.files import LibraryFiles
from renderer import Message, RenderError
from renderer.image import ImageOptions, encode, render_card_bytes, render_media_slot
from renderer.localfiles import MediaContext
from renderer.video import VideoCancelled, VideoFailed, VideoOptions, render_video_sync

from .errors import ApiError, api_error_for


@dataclass(frozen=True, slots=True)
class WorkSpec:
    kind: str  # "card" (whole card picture), "slot" (media-slot picture), "video"
    message: Message
    template_dir: str
    assets_dir: str
    out: str  # final cache path
    image: ImageOptions | None = None
    video: VideoOptions | None = None
    card_index: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    thumb_out: str | None = None
    control_dir: str | None = None  # progress / cancel files of a job
    library_dir: str | None = None  # the media library's folder: `media:<id>` pictures are read there
    record: dict[str, Any] | None = None  # the render spec kept with the file (media/plans.py)


def tune_malloc() -> bool:
    """Keep freed multi-megabyte buffers in the process instead of unmapping them.

    A 720 px card is ~2.4 MB of pixels and passes through several such buffers (crop, filter,
    row bytes); a 720p video frame is 2.7 MB. glibc serves each from a fresh mmap and unmaps it
    on free, so every buffer costs ~600 page faults: measured 7.4 ms vs 1.5 ms for one PNG
    encode. Raising the mmap and trim thresholds (glibc only; a no-op elsewhere) makes the
    worker reuse its heap. Workers are few and bounded by media_concurrency, so the extra
    resident memory (freed heap kept up to 256 MB) is bounded too."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 256 << 20))


def watch_parent() -> bool:
    """Exit this worker as soon as the server process that spawned it dies, however it dies
    (kill -9 included): a thread waits on the parent's sentinel, a pipe whose other end only the
    parent holds, which becomes readable when the parent is gone. Without it a killed server
    leaves its workers (~130 MB each) and, through them, multiprocessing's resource tracker
    running. False when not in a spawned worker."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return False
    sentinel = parent.sentinel

    def wait() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)  # mid-render too: nobody is left to take the result

    threading.Thread(target=wait, name="watch-parent", daemon=True).start()
    return True


def init_worker(ffmpeg: str | None, fonts: str | None = None) -> None:
    """Worker start: leave with the server (`watch_parent`), lower priority (the event loop must
    win the CPU: /healthz stays fast while videos render), heap reuse for big buffers, the
    configured ffmpeg, and fonts loaded before the first job."""
    watch_parent()
    with contextlib.suppress(OSError):
        os.nice(10)
    tune_malloc()
    if ffmpeg:
        os.environ["MINGPIAN_FFMPEG"] = ffmpeg
    from renderer.fonts import face, use_font_dir  # after MINGPIAN_FFMPEG is set, in the worker

    if fonts:
        use_font_dir(Path(fonts))
    for size in (16, 20, 24, 28, 32, 36):
        face(size, "regular")
        face(size, "bold")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def media_context(spec: WorkSpec) -> MediaContext:
    """What the render may read: the template's folder, assets/, and the media library."""
    if spec.library_dir is None:
        return MediaContext(Path(spec.template_dir), Path(spec.assets_dir))
    files = LibraryFiles(Path(spec.library_dir))
    return MediaContext(
        Path(spec.template_dir), Path(spec.assets_dir), library=files.find, library_root=files.root
    )


def run(spec: WorkSpec) -> dict[str, Any]:
    """Do one job; returns {"ok": True, "bytes": n, ...} or {"ok": False, "error": {...}}."""
    ctx = media_context(spec)
    out = Path(spec.out)
    try:
        if spec.kind == "card":
            assert spec.image is not None
            data = render_card_bytes(spec.message, ctx, spec.image)
            _atomic_write(out, data)
            return {"ok": True, "bytes": len(data), "sha256": _sha256(data)}
        if spec.kind == "slot":
            assert spec.image is not None
            im = render_media_slot(spec.message, ctx, spec.image.width, spec.card_index)
            data = encode(im, spec.image.fmt, spec.image.quality)
            _atomic_write(out, data)
            return {"ok": True, "bytes": len(data), "sha256": _sha256(data)}
        if spec.kind == "video":
            assert spec.video is not None and spec.thumb_out is not None
            return _video(spec, ctx, out)
    except RenderError as exc:
        err = api_error_for(exc)
        assert err is not None  # every renderer error is in the domain table
        return _failed(err)
    except VideoCancelled:
        return {**_failed(ApiError(409, "cancelled", "the render was cancelled")), "cancelled": True}
    except VideoFailed as exc:
        return _failed(ApiError(500, "encoder_failed", str(exc)))
    raise ValueError(f"unknown work kind {spec.kind!r}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _failed(err: ApiError) -> dict[str, Any]:
    return {"ok": False, "status": err.status, "error": err.body()}


def _video(spec: WorkSpec, ctx: MediaContext, out: Path) -> dict[str, Any]:
    assert spec.video is not None and spec.thumb_out is not None
    control = Path(spec.control_dir) if spec.control_dir else None
    cancel_file = control / "cancel" if control else None

    def progress(p: float) -> None:
        if control is not None:
            _atomic_write(control / "progress", f"{p:.3f}".encode())

    def cancelled() -> bool:
        return cancel_file is not None and cancel_file.exists()

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.mp4")
    result = render_video_sync(spec.message, ctx, spec.video, tmp, progress=progress, cancelled=cancelled)
    _atomic_write(Path(spec.thumb_out), result.thumbnail)
    digest = _sha256(tmp.read_bytes())  # at most the profile's cap (5 MB by default)
    os.replace(tmp, out)
    return {
        "ok": True,
        "bytes": result.bytes,
        "sha256": digest,
        "thumbnailBytes": len(result.thumbnail),
        "thumbnailSha256": _sha256(result.thumbnail),
        "seconds": result.seconds,
        "width": result.width,
        "height": result.height,
        "encodes": result.encodes,
    }
