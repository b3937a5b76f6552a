"""Media hosted on the MaaP: a card's local media (our own `/media/…` files, or any local file
given by path) is uploaded to the platform once per content hash, and the card points at the
platform's copy.

Why: phones fetch a card's media from the platform, not from us; CT/CU and China Mobile host
it (uploads.py). A file is made to fit the platform's limits first (fit.py), uploaded once per
(platform, content hash) — concurrent sends of one card wait for the same upload: in this
process through one shared future, across processes through the store's claim (Redis) — and
the returned URL and expiry are kept in the chatbot store. An entry within `MARGIN` of its
expiry is uploaded again. What cannot fit raises `fit.Unfit`; a platform that refuses raises
`uploads.UploadError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from renderer import BOTMESSAGE

from .fit import Limits, fit
from .maap import MaapClient
from .store import Store
from .uploads import LocalFile, upload

log = logging.getLogger("mingpian.chatbot.hosting")
MARGIN = 3600.0  # seconds before the platform's expiry at which a file is uploaded again
CLAIM_TTL = 120.0  # longest one process may hold the upload of a file before another may try
Resolver = Callable[[str], Awaitable[LocalFile | None]]  # a media URL → our local file, or None


_HASHES: dict[tuple[str, int, int], bytes] = {}  # (path, size, mtime_ns) → SHA-256 of the file
HASHES_KEPT = 4096


def _file_hash(path: Path) -> bytes:
    """A file's SHA-256, remembered while its size and mtime stay (a send of an already hosted
    card then reads no file at all; a rendered file never changes in place)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    digest = _HASHES.get(key)
    if digest is None:
        digest = hashlib.sha256(path.read_bytes()).digest()
        if len(_HASHES) >= HASHES_KEPT:
            _HASHES.clear()
        _HASHES[key] = digest
    return digest


def _digest(*files: LocalFile | None) -> str:
    h = hashlib.sha256()
    for f in files:
        if f is not None:
            h.update(_file_hash(f.path))
            h.update(f.content_type.encode() + b"\x00")
    return h.hexdigest()


class MediaHost:
    def __init__(
        self,
        client: MaapClient,
        store: Store,
        resolve: Resolver | None,
        limits: Limits,
        workdir: Path,
    ) -> None:
        self.client = client
        self.store = store
        self.resolve = resolve
        self.limits = limits
        self.workdir = workdir
        where = client.file_server if client.dialect == "cm" else client.server
        self.platform = f"{client.dialect}|{where}|{client.app_id}"
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.uploads = 0  # uploads this process made (the benchmark and tests read it)

    # -- any local file (library files use this too) -------------------------------------------
    async def host(self, chatbot: str, file: LocalFile, thumbnail: LocalFile | None = None) -> dict[str, Any]:
        """{url, until, contentType, size, thumbnailUrl?, …} of `file` on the platform. Keyed by
        the content of the files as given (and the limits they are fitted to), so a send that
        finds the record neither fits nor uploads anything."""
        key = _digest(file, thumbnail) + f"-{self.limits.image_bytes}-{self.limits.video_bytes}"
        record = await self._fresh(key)
        if record is not None:
            return record
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                fut.set_result(await self._claimed(chatbot, key, file, thumbnail))
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # retrieved: the waiters re-raise it
            finally:
                del self._inflight[key]
        return await asyncio.shield(fut)

    async def _fresh(self, key: str) -> dict[str, Any] | None:
        record = await self.store.hosted(self.platform, key)
        if record is None:
            return None
        until = float(record.get("until") or 0)
        return record if not until or until - time.time() > MARGIN else None

    async def _claimed(
        self, chatbot: str, key: str, file: LocalFile, thumb: LocalFile | None
    ) -> dict[str, Any]:
        """Upload under the store's claim, or wait for the process that holds it."""
        deadline = time.monotonic() + CLAIM_TTL
        while True:
            owner = await self.store.host_claim(self.platform, key, CLAIM_TTL)
            if owner is not None:
                try:
                    record = await self._fresh(key)  # uploaded meanwhile by the previous holder
                    if record is None:
                        record = await self._upload(chatbot, key, file, thumb)
                    return record
                finally:
                    await self.store.host_release(self.platform, key, owner)
            await asyncio.sleep(0.05)
            record = await self._fresh(key)
            if record is not None:
                return record
            if time.monotonic() > deadline:
                raise TimeoutError("another process has been uploading this file for too long")

    async def _upload(
        self, chatbot: str, key: str, src: LocalFile, src_thumb: LocalFile | None
    ) -> dict[str, Any]:
        kind = "video" if src.content_type.startswith("video/") else "image"
        file = await fit(src, kind, self.limits, self.workdir)
        thumb = await fit(src_thumb, "thumbnail", self.limits, self.workdir) if src_thumb else None
        entries = await upload(self.client, chatbot, file, thumb)
        self.uploads += 1
        main = next(e for e in entries if e.kind == "file")
        record: dict[str, Any] = {
            "url": main.url,
            "until": main.until,
            "contentType": file.content_type,
            "size": file.path.stat().st_size,
        }
        small = next((e for e in entries if e.kind == "thumbnail"), None)
        if small is not None and thumb is not None:
            record |= {
                "thumbnailUrl": small.url,
                "thumbnailContentType": thumb.content_type,
                "thumbnailSize": thumb.path.stat().st_size,
            }
        untils = [e.until for e in entries if e.until]
        record["until"] = min(untils) if untils else 0.0
        await self.store.put_hosted(self.platform, key, record, record["until"])
        log.info("hosted %s on %s until %s", file.path.name, self.platform, record["until"] or "kept")
        return record

    # -- a send body's cards ---------------------------------------------------------------------
    async def localise(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with every local mediaUrl/thumbnailUrl of its cards replaced by the platform's
        copy (and the media fields made to match what was uploaded). Changes `body` itself."""
        if self.resolve is None:
            return body
        chatbot = body["senderAddress"]
        for part in body.get("messageList", ()):
            if part.get("contentType") != BOTMESSAGE or not isinstance(part.get("contentText"), dict):
                continue
            for media in _media_of(part["contentText"]):
                await self._one(chatbot, media)
        return body

    async def _one(self, chatbot: str, media: dict[str, Any]) -> None:
        assert self.resolve is not None
        url = media.get("mediaUrl")
        file = await self.resolve(url) if isinstance(url, str) else None
        thumb_url = media.get("thumbnailUrl")
        thumb = await self.resolve(thumb_url) if isinstance(thumb_url, str) else None
        if file is None and thumb is None:
            return
        if file is None:  # only the thumbnail is ours: host it on its own
            assert thumb is not None
            rec = await self.host(chatbot, thumb)
            media |= {
                "thumbnailUrl": rec["url"],
                "thumbnailContentType": rec["contentType"],
                "thumbnailFileSize": rec["size"],
            }
            return
        is_video = file.content_type.startswith("video/")
        rec = await self.host(chatbot, file, thumb if is_video else None)
        media |= {
            "mediaUrl": rec["url"],
            "mediaContentType": rec["contentType"],
            "mediaFileSize": rec["size"],
        }
        if "thumbnailUrl" in rec:
            media |= {
                "thumbnailUrl": rec["thumbnailUrl"],
                "thumbnailContentType": rec["thumbnailContentType"],
                "thumbnailFileSize": rec["thumbnailSize"],
            }
        elif thumb is not None:
            t = await self.host(chatbot, thumb)
            media |= {
                "thumbnailUrl": t["url"],
                "thumbnailContentType": t["contentType"],
                "thumbnailFileSize": t["size"],
            }


def _media_of(content: dict[str, Any]) -> list[dict[str, Any]]:
    msg = content.get("message") if isinstance(content.get("message"), dict) else {}
    assert isinstance(msg, dict)
    cards: list[Any] = []
    single = msg.get("generalPurposeCard")
    if isinstance(single, dict):
        cards.append(single.get("content"))
    carousel = msg.get("generalPurposeCardCarousel")
    if isinstance(carousel, dict) and isinstance(carousel.get("content"), list):
        cards.extend(carousel["content"])
    return [c["media"] for c in cards if isinstance(c, dict) and isinstance(c.get("media"), dict)]
