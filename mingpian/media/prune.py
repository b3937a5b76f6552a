"""Pruning the media cache: every `media_prune_interval` seconds, in a thread, one `os.scandir`
of the folder (no per-file work beyond the stat scandir gives):

1. every file unused (mtime: served files are touched, cache.py) for `media_cache_max_age`;
2. then the least recently used until the files add up to `media_cache_max_bytes` at most;
3. render specs (`specs/<hash>.json`) unused for `media_spec_max_age` (much longer: a spec is a
   few hundred bytes and is what makes a pruned file again);
4. temporary files and job folders an interrupted render left behind (older than an hour).

A file used in the last GRACE seconds is never removed, whatever the limits say: it is being
served or was just made (a render writes a temporary name and renames it, so a file being
written is never a candidate). A server that finds a file gone between finding and reading it
makes it again (api.py). Several processes sharing one folder may each prune it: removing is
idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass

from .cache import MEDIA_NAME, SPEC_NAME, MediaCache

log = logging.getLogger("mingpian.media")
GRACE = 60.0  # seconds since its last use during which a file is never pruned
LEFTOVER_AGE = 3600.0  # seconds after which a temporary file or job folder is a leftover


@dataclass(slots=True)
class Pruned:
    files: int = 0
    bytes: int = 0
    specs: int = 0
    leftovers: int = 0
    kept_files: int = 0
    kept_bytes: int = 0


def _remove(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:  # another process pruned it first
        return False
    return True


class Pruner:
    def __init__(
        self, cache: MediaCache, max_bytes: int, max_age: float, spec_max_age: float, grace: float = GRACE
    ) -> None:
        self.cache = cache
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.spec_max_age = spec_max_age
        self.grace = grace

    def prune(self, now: float | None = None) -> Pruned:
        now = time.time() if now is None else now
        out = Pruned()
        files: list[tuple[float, int, str]] = []  # (mtime, size, path)
        try:
            scan = os.scandir(self.cache.root)
        except FileNotFoundError:
            return out
        with scan:
            for entry in scan:
                try:
                    if MEDIA_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        files.append((st.st_mtime, st.st_size, entry.path))
                    elif (
                        entry.name.startswith(".")
                        and ".tmp" in entry.name
                        and now - entry.stat().st_mtime > LEFTOVER_AGE
                    ):
                        out.leftovers += _remove(entry.path)
                except FileNotFoundError:
                    continue
        files.sort()  # least recently used first
        total = sum(size for _, size, _ in files)
        kept: list[tuple[float, int, str]] = []
        for mtime, size, path in files:
            age = now - mtime
            if self.max_age > 0 and age > self.max_age and age > self.grace:
                if _remove(path):
                    out.files, out.bytes = out.files + 1, out.bytes + size
                total -= size
            else:
                kept.append((mtime, size, path))
        if self.max_bytes > 0:
            for i, (mtime, size, path) in enumerate(kept):
                if total <= self.max_bytes or now - mtime <= self.grace:
                    kept = kept[i:]
                    break
                if _remove(path):
                    out.files, out.bytes = out.files + 1, out.bytes + size
                total -= size
            else:
                kept = []
        out.kept_files, out.kept_bytes = len(kept), total
        out.specs, leftovers = self._prune_specs(now)
        out.leftovers += leftovers + self._prune_job_folders(now)
        if out.files or out.specs or out.leftovers:
            log.info(
                "media cache pruned: %d files (%d bytes), %d specs, %d leftovers; %d files (%d bytes) kept",
                out.files,
                out.bytes,
                out.specs,
                out.leftovers,
                out.kept_files,
                out.kept_bytes,
            )
        return out

    def _prune_specs(self, now: float) -> tuple[int, int]:
        specs = leftovers = 0
        try:
            scan = os.scandir(self.cache.specs_root)
        except FileNotFoundError:
            return 0, 0
        with scan:
            for entry in scan:
                try:
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue
                if SPEC_NAME.match(entry.name):
                    if self.spec_max_age > 0 and age > self.spec_max_age and age > self.grace:
                        specs += _remove(entry.path)
                elif entry.name.startswith(".") and age > LEFTOVER_AGE:
                    leftovers += _remove(entry.path)
        return specs, leftovers

    def _prune_job_folders(self, now: float) -> int:
        """Progress/cancel folders of video jobs a killed server never finished."""
        n = 0
        try:
            scan = os.scandir(self.cache.jobs_root)
        except FileNotFoundError:
            return 0
        with scan:
            for entry in scan:
                try:
                    old = now - entry.stat(follow_symlinks=False).st_mtime > LEFTOVER_AGE
                except FileNotFoundError:
                    continue
                if old and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    n += 1
        return n

    async def every(self, interval: float) -> None:
        """Prune now and then every `interval` seconds, off the event loop, until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.prune)
            except Exception:
                log.exception("media cache: pruning failed")
            await asyncio.sleep(interval)
