"""Render specs: what it takes to make a media file again, kept under the file's hash.

A spec is a small JSON object (plans.py builds it): the file's name, the template's name and
version, the card data, the carrier profile, the render parameters, which part of the render the
file is (`media`, or a video's `thumbnail`), and the SHA-256 and size of the bytes first made.
It is written whenever a file is made: always as a sidecar in the cache folder
(`media/specs/<hash>.json`), and with `media_store=redis` also in Redis, so that any process or
host can make a file it lacks (api.py) and a pruned file can be made again (prune.py).

Specs hold the card data: they are never served (only `<hash>.<ext>` names are).

Two implementations of one interface: `LocalSpecs` (the sidecar only) here, `RedisSpecs` in
fleet.py.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .cache import MediaCache

log = logging.getLogger("mingpian.media")
SPEC_FORMAT = 1  # the layout of a spec record; a record of another layout is not used


class SpecStore(Protocol):
    async def get(self, digest: str) -> dict[str, Any] | None:
        """The spec of the file with this hash, or None when no store has it."""

    async def put(self, made: dict[str, Any]) -> None:
        """A file was made: keep its spec. `made["sha256"]` is the digest of the bytes just made;
        when a spec was already kept, its digest stays the reference (the first bytes made)."""

    def used(self, digest: str) -> None:
        """The file was served: keep its spec as long again (its TTL); never waits."""


def digest_of(record: dict[str, Any]) -> str:
    return str(record["file"]).split(".", 1)[0]


def sidecar(made: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """The sidecar to write for a file just made, given the spec already kept (if any). Equal
    bytes: the reference as it is. Other bytes (another ffmpeg or Pillow build made them): the
    reference's digest stays, and `fileSha256` records this copy's, which gives the copy an ETag
    of its own (cache.py)."""
    if reference is None or reference.get("sha256") == made["sha256"]:
        return {**made, **(reference or {})}
    log.warning(
        "media %s made again with other bytes than first made (sha256 %s, first %s): "
        "the renderer, Pillow or ffmpeg differ from the host that made it first",
        made["file"],
        str(made["sha256"])[:16],
        str(reference.get("sha256"))[:16],
    )
    return {**reference, "fileSha256": made["sha256"]}


class LocalSpecs:
    """Specs in the cache folder only: this host can make again what it made itself."""

    def __init__(self, cache: MediaCache) -> None:
        self.cache = cache

    async def get(self, digest: str) -> dict[str, Any] | None:
        return self.cache.read_spec(digest)

    async def put(self, made: dict[str, Any]) -> None:
        self.write(made, self.cache.read_spec(digest_of(made)))

    def write(self, made: dict[str, Any], reference: dict[str, Any] | None) -> None:
        if reference is not None:
            reference = {k: v for k, v in reference.items() if k != "fileSha256"}
        self.cache.write_spec(digest_of(made), sidecar(made, reference))

    def used(self, digest: str) -> None:
        pass  # the cache touched the sidecar with its file
