"""`mingpian render NAME --to png|jpeg|webp|mp4 --out FILE`: card pictures and videos.

Same renderer and same safety rules as the server (template folder + assets/ only, no network),
run in-process: a CLI render is one job, a pool would only add start-up time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from renderer import Message, RenderError
from renderer.fonts import uncovered
from renderer.glyphs import data_strings, message_fields
from renderer.image import ImageOptions, render_card_bytes
from renderer.jsonpath import json_path
from renderer.localfiles import MediaContext
from renderer.schema_text import field_title
from renderer.video import VideoFailed, VideoOptions, render_video_bytes

if TYPE_CHECKING:
    from .cli_targets import TargetInput

# How the card's own drawn fields are called, for a character the template itself brings.
FIELD_WORDS = {"title": "标题", "description": "描述", "text": "按钮文字", "name": "品牌名"}


def _chars(chars: list[str]) -> str:
    return "、".join(f"「{c}」(U+{ord(c[0]):04X})" for c in chars)


def missing_glyphs(schema: Any, data: Any, message: Message) -> list[str]:
    """A sentence for each field holding a character no font draws (it would be a box in the
    picture or video): the data's JSON path and the field's title, then the characters with
    their code points; a character the template itself brings is named by the card's field."""
    out: list[str] = []
    seen: set[str] = set()
    for parts, text in data_strings(data):
        chars = uncovered(text)
        if chars:
            seen.update(chars)
            title = field_title(schema, parts) if isinstance(schema, dict) else str(parts[-1])
            out.append(f"{json_path(parts)}（{title}）：没有字体能画出 {_chars(chars)}")
    for field, text in message_fields(message):
        chars = [c for c in uncovered(text) if c not in seen]
        if chars:
            word = FIELD_WORDS.get(field.rsplit(".", 1)[-1], "文字")
            out.append(f"卡片的 {field}（{word}）：没有字体能画出 {_chars(chars)}")
    return out


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
