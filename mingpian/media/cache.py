"""Content-addressed media on disk: `data_dir/media/<hash>.<ext>`, never rewritten, and beside
each file its render spec, `data_dir/media/specs/<hash>.json` (see specs.py).

The hash covers everything that changes the bytes: the renderer's output version, the template
name and version (a hash of its files), the canonical JSON of the data, the render options and
the carrier profile's relevant limits. Equal requests therefore share one file, the file can be
served as immutable, and the hash itself is the strong ETag. It is a hash of the request, not of
the bytes: a file made again from its spec (on another host, or after pruning) is the same file
because rendering is deterministic (docs/media.md, "Media on a fleet"); the spec records the
SHA-256 of the bytes first made, and a copy that differs gets an ETag of its own (`etag`).

A file's modification time is its last use: serving it touches it (at most once a minute), and
the pruner (prune.py) removes the least recently used first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RENDER_VERSION = "media-3"  # bump when drawing code changes output for the same input
EXT_BY_FORMAT = {"png": "png", "jpeg": "jpg", "webp": "webp", "mp4": "mp4"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}
MEDIA_NAME = re.compile(r"^([0-9a-f]{32})\.(png|jpg|webp|mp4)$")
SPEC_NAME = re.compile(r"^([0-9a-f]{32})\.json$")
TOUCH_EVERY = 60.0  # seconds: a file served more often than this is touched once per period
ETAG_MEMO = 4096  # files whose ETag is remembered (a sidecar read per file, not per request)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def media_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"v": RENDER_VERSION, **parts})).hexdigest()[:32]


def thumb_key(video_hash: str) -> str:
    return hashlib.sha256(f"{video_hash}:thumbnail".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Found:
    """A cached file as served: where it is, its size and its strong ETag (quoted)."""

    path: Path
    size: int
    etag: str
    touched: bool  # its last use was just moved to now (the spec's TTL in Redis follows)


class MediaCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs_root = root / "jobs"
        self.specs_root = root / "specs"
        self._etags: dict[str, tuple[tuple[int, int, int], str]] = {}  # name → (stamp, ETag)

    def ensure(self) -> None:
        for folder in (self.root, self.jobs_root, self.specs_root):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str, ext: str) -> Path:
        return self.root / f"{digest}.{ext}"

    def spec_path(self, digest: str) -> Path:
        return self.specs_root / f"{digest}.json"

    def existing(self, digest: str, ext: str) -> Path | None:
        p = self.path(digest, ext)
        return p if p.is_file() else None

    def use(self, path: Path) -> tuple[int, bool] | None:
        """A cached file's size and whether it was touched, marking it used (see `find`); None
        if it is not there."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_size, self._touch(path, st)

    def find(self, digest: str, ext: str) -> Found | None:
        """The cached file to serve, or None. Marks it used: its mtime is moved to now when it is
        older than TOUCH_EVERY (and its spec's with it), so the pruner sees the last use."""
        path = self.path(digest, ext)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        touched = self._touch(path, st)
        return Found(path, st.st_size, self.etag(digest, path.name, st), touched)

    def _touch(self, path: Path, st: os.stat_result) -> bool:
        if time.time() - st.st_mtime < TOUCH_EVERY:
            return False
        for p in (path, self.spec_path(path.name.split(".", 1)[0])):
            with contextlib.suppress(FileNotFoundError):  # pruned, or made before specs were kept
                os.utime(p)
        return True

    def etag(self, digest: str, name: str, st: os.stat_result) -> str:
        """`"<hash>"` for the bytes first made from the spec; `"<hash>-<sha256 prefix>"` for a
        local copy made again with different bytes (another ffmpeg or Pillow build), so that one
        strong ETag always means one sequence of bytes."""
        try:  # the memo holds while neither the file nor its spec changed (a stat, not a read)
            spec_mtime = self.spec_path(digest).stat().st_mtime_ns
        except FileNotFoundError:
            spec_mtime = 0
        stamp = (st.st_ino, st.st_size, spec_mtime)
        memo = self._etags.get(name)
        if memo is not None and memo[0] == stamp:
            return memo[1]
        etag = f'"{digest}"'
        spec = self.read_spec(digest) if spec_mtime else None
        if spec is not None and spec.get("file") == name and spec.get("fileSha256"):
            etag = f'"{digest}-{str(spec["fileSha256"])[:16]}"'
        if len(self._etags) >= ETAG_MEMO:
            self._etags.clear()
        self._etags[name] = (stamp, etag)
        return etag

    def read_spec(self, digest: str) -> dict[str, Any] | None:
        try:
            value = json.loads(self.spec_path(digest).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def write_spec(self, digest: str, record: dict[str, Any]) -> None:
        path = self.spec_path(digest)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(canonical_json(record))
        os.replace(tmp, path)

    def by_name(self, name: str) -> tuple[str, str] | None:
        """A served name (`<32 hex>.<ext>`) → (hash, ext); None if malformed. Only names this
        module could have produced are ever looked up, so `..`, slashes or encoded tricks cannot
        reach another file (and the specs, which hold the card data, are never served)."""
        m = MEDIA_NAME.match(name)
        if m is None:
            return None
        return m.group(1), m.group(2)
