"""Where library files live: content-addressed under one folder, `<root>/<id[:2]>/<id>.<ext>`.

The id is the first 32 hex digits of the file's SHA-256 (of the re-encoded bytes), so the same
picture uploaded twice, or by two enterprises, is one file; a name never changes meaning, so any
cache keyed by a card that names it stays right. Every worker of a host reads the same folder;
on a fleet it must be a volume every host mounts (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from .ingest import write_atomic

EXTS: dict[str, str] = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}
ID = re.compile(r"^[0-9a-f]{32}$")


class LibraryFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, id: str, ext: str) -> Path:
        if not ID.match(id) or ext not in EXTS:
            raise ValueError(f"not a library file name: {id}.{ext}")
        return self.root / id[:2] / f"{id}.{ext}"

    def find(self, id: str) -> Path | None:
        """The file of `id`, whichever kind it is; None if there is none (or `id` is malformed)."""
        if not ID.match(id):
            return None
        for ext in EXTS:
            p = self.root / id[:2] / f"{id}.{ext}"
            if p.is_file():
                return p
        return None

    def write(self, id: str, ext: str, data: bytes) -> Path:
        p = self.path(id, ext)
        if not p.exists():  # content-addressed: an existing file has these very bytes
            write_atomic(p, data)
        return p

    def remove(self, id: str, ext: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(id, ext).unlink()
