"""Content-addressed media on disk: `data_dir/media/<hash>.<ext>`, never rewritten.

The hash covers everything that changes the bytes: the renderer's output version, the template
name and version (a hash of its files), the canonical JSON of the data, the render options and
the carrier profile's relevant limits. Equal requests therefore share one file, the file can be
served as immutable, and the hash itself is the strong ETag.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

RENDER_VERSION = "media-1"  # bump when drawing code changes output for the same input
EXT_BY_FORMAT = {"png": "png", "jpeg": "jpg", "webp": "webp", "mp4": "mp4"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}
MEDIA_NAME = re.compile(r"^([0-9a-f]{32})\.(png|jpg|webp|mp4)$")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def media_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"v": RENDER_VERSION, **parts})).hexdigest()[:32]


def thumb_key(video_hash: str) -> str:
    return hashlib.sha256(f"{video_hash}:thumbnail".encode()).hexdigest()[:32]


class MediaCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs_root = root / "jobs"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs_root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str, ext: str) -> Path:
        return self.root / f"{digest}.{ext}"

    def existing(self, digest: str, ext: str) -> Path | None:
        p = self.path(digest, ext)
        return p if p.is_file() else None

    def by_name(self, name: str) -> tuple[Path, str, str] | None:
        """A served name (`<32 hex>.<ext>`) → (path, hash, content type); None if malformed
        or absent. Only names this module could have produced are ever looked up, so `..`,
        slashes or encoded tricks cannot reach another file."""
        m = MEDIA_NAME.match(name)
        if m is None:
            return None
        path = self.path(m.group(1), m.group(2))
        if not path.is_file():
            return None
        return path, m.group(1), CONTENT_TYPES[m.group(2)]
