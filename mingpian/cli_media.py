"""`mingpian render NAME --to png|jpeg|webp|mp4 --out FILE`: card pictures and videos.

Same renderer and same safety rules as the server (template folder + assets/ only, no network),
run in-process: a CLI render is one job, a pool would only add start-up time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from renderer import RenderError
from renderer.image import ImageOptions, render_card_bytes
from renderer.localfiles import MediaContext
from renderer.video import VideoFailed, VideoOptions, render_video_bytes

if TYPE_CHECKING:
    from .cli_targets import TargetInput


def media_target(fmt: str) -> Callable[[TargetInput], bytes]:
    def target(inp: TargetInput) -> bytes:
        ctx = MediaContext(inp.template.folder, inp.settings.assets_dir)
        if fmt == "mp4":
            p = inp.profile
            opts = VideoOptions(max_bytes=p.video_max_bytes, max_seconds=min(10.0, p.video_max_seconds))
            try:
                return render_video_bytes(inp.message, ctx, opts)
            except VideoFailed as exc:
                raise RenderError(str(exc)) from None  # one line, exit 1: the card, not the setup
        return render_card_bytes(inp.message, ctx, ImageOptions(fmt=fmt))  # type: ignore[arg-type]

    return target
