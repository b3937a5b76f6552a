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

Permanent or temporary — the rule. A file is *permanent* (CT/CU `uploadMode: perm`, reviewed by
the carrier, never named in a send before it passed) when it is part of a card's fixed design:
  - an enterprise's library file (`/media/library/…`: logos, pictures, videos), always;
  - any of our files a delivery card names (its logo, template pictures, a rendered picture of
    the card: rendered ahead from the card's saved data, the same for every call — call fields
    change texts, never a file).
Every other file is *temporary* (`temp`: not reviewed, expires): what a chatbot reply names, a
picture rendered for one person's conversation. China Mobile's file server has no mode: its
permanent files wait for its audit notification, its temporary ones are used at once. An
account with `upload_mode = temp` uploads everything as temporary (a platform that reviews
nothing of ours), and so does one whose review callbacks cannot reach us (no credential their
route accepts is configured: a permanent file would wait forever).

A permanent record carries its review (approval.py): waiting, approved, refused. A send naming
a file that is not approved raises `approval.NotApproved` (the record is read per send anyway:
no extra store read). The first send of a new permanent file waits up to `approval_wait` for
the decision (a platform that decides at once then lets that send through). An approved file
is re-submitted `AHEAD` of its expiry; until the new copy passes, sends use the approved copy
(`previous`). A refused file is never uploaded again: a changed file is a new upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from renderer import BOTMESSAGE

from . import approval
from .approval import NotApproved
from .fit import Limits, fit
from .maap import MaapClient
from .store import Store
from .uploads import LocalFile, upload

log = logging.getLogger("mingpian.chatbot.hosting")
PERM = "-perm"  # the key suffix of a permanent (reviewed) copy
MARGIN = 3600.0  # seconds before the platform's expiry at which a file is uploaded again
AHEAD = 2 * 86400.0  # seconds before its expiry at which an approved file is submitted again
POLL = 0.05  # seconds between looks at the store while a first send waits for the decision
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
        *,
        label: str = "",
        approval_wait: float = 0.0,
        reviews: bool = True,
    ) -> None:
        self.client = client
        self.store = store
        self.resolve = resolve
        self.limits = limits
        self.workdir = workdir
        where = client.file_server if client.dialect == "cm" else client.server
        self.platform = f"{client.dialect}|{where}|{client.app_id}"
        self.label = label or f"{client.dialect}:{client.app_id}"  # the carrier, as reasons name it
        self.approval_wait = approval_wait
        self.reviews = reviews  # the carrier's decisions can reach us (else: everything temporary)
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.uploads = 0  # uploads this process made (the benchmark and tests read it)

    # -- any local file (library files use this too) -------------------------------------------
    def reviewed(self, file: LocalFile) -> bool:
        """Whether `file` goes up permanent and waits for the carrier's review (the rule above)."""
        return file.lasting and self.reviews and self.client.upload_mode != "temp"

    def key(self, file: LocalFile, thumbnail: LocalFile | None = None) -> str:
        """The record's key: the content of the files as given, the limits they are fitted to,
        and whether the copy is reviewed (a permanent and a temporary copy are two records)."""
        suffix = PERM if self.reviewed(file) else ""
        return _digest(file, thumbnail) + f"-{self.limits.image_bytes}-{self.limits.video_bytes}{suffix}"

    async def host(self, chatbot: str, file: LocalFile, thumbnail: LocalFile | None = None) -> dict[str, Any]:
        """{url, until, contentType, size, thumbnailUrl?, review?, …} of `file` on the platform.
        Keyed by `key`, so a send that finds the record neither fits nor uploads anything. The
        record as kept: `usable` says what a send may name."""
        key = self.key(file, thumbnail)
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

    def usable(self, record: dict[str, Any], file: LocalFile) -> dict[str, Any]:
        """What a send may name of `record`, or NotApproved."""
        return approval.usable(record, self.label, file.path.name, time.time(), MARGIN)

    async def _fresh(self, key: str) -> dict[str, Any] | None:
        record = await self.store.hosted(self.platform, key)
        if record is None:
            record = await self._grandfathered(key)
        if record is None:
            return None
        return record if _current(record, time.time()) else None

    async def _grandfathered(self, key: str) -> dict[str, Any] | None:
        """A file hosted before the carrier's review was tracked (kept under the key without the
        permanent suffix) was in use already: it counts as approved until its `until`, and is
        kept under its permanent key from then on, so this is asked once. Its re-submission
        ahead of `until` goes through the review like any other."""
        if not key.endswith(PERM):
            return None
        old = await self.store.hosted(self.platform, key[: -len(PERM)])
        if old is None or "review" in old or not _current(old, time.time()):
            return None
        record = {**old, "review": {"state": "approved", "at": time.time(), "before_reviews": True}}
        await self.store.put_hosted(self.platform, key, record, float(old.get("until") or 0))
        return record

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
                        old = await self.store.hosted(self.platform, key)
                        record = await self._upload(chatbot, key, file, thumb, old)
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
        self, chatbot: str, key: str, src: LocalFile, src_thumb: LocalFile | None, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        kind = "video" if src.content_type.startswith("video/") else "image"
        file = await fit(src, kind, self.limits, self.workdir)
        thumb = await fit(src_thumb, "thumbnail", self.limits, self.workdir) if src_thumb else None
        reviewed = self.reviewed(src)
        tid = secrets.token_hex(16)
        entries = await upload(self.client, chatbot, file, thumb, "perm" if reviewed else "temp", tid)
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
        refs: tuple[str, ...] = ()
        if reviewed:
            now = time.time()
            refs = ("tid:" + tid,) if self.client.dialect == "cm" else tuple("url:" + e.url for e in entries)
            record = approval.waiting(record, now) | {"refs": list(refs), "file": src.path.name}
            kept = _approved_copy(old, now)
            if kept is not None:  # sends use it while the new copy waits
                record["previous"] = kept
        await self.store.put_hosted(self.platform, key, record, record["until"], refs)
        log.info("hosted %s on %s until %s", file.path.name, self.platform, record["until"] or "kept")
        if reviewed and self.approval_wait > 0:
            record = await self._decided(key, record)
        return record

    async def _decided(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record once the carrier decided, or as it is after `approval_wait`: a platform that
        reviews at once lets the first send through; a slow one leaves it waiting."""
        deadline = time.monotonic() + self.approval_wait
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL)
            now = await self.store.hosted(self.platform, key)
            if now is not None:
                record = now
                if record.get("review", {}).get("state") != "waiting":
                    break
        return record

    async def check(self, body: dict[str, Any]) -> NotApproved | None:
        """Whether a send of `body` would name something not approved here, without uploading
        anything (the dry run): the first such file, or None. A file never uploaded is
        `unsubmitted`: the first send submits it."""
        if self.resolve is None:
            return None
        now = time.time()
        for media in _body_media(body):
            file = await self._lasting(media.get("mediaUrl"), True)
            thumb = await self._lasting(media.get("thumbnailUrl"), True)
            for main, small in _records_of(file, thumb):
                if not self.reviewed(main):
                    continue
                key = self.key(main, small)
                record = await self.store.hosted(self.platform, key) or await self._grandfathered(key)
                if record is None:
                    return NotApproved(self.label, main.path.name, "unsubmitted")
                try:
                    approval.usable(record, self.label, main.path.name, now, MARGIN)
                except NotApproved as exc:
                    return exc
        return None

    # -- a send body's cards ---------------------------------------------------------------------
    async def localise(self, body: dict[str, Any], card: bool = False) -> dict[str, Any]:
        """`body` with every local mediaUrl/thumbnailUrl of its cards replaced by the platform's
        copy (and the media fields made to match what was uploaded). Changes `body` itself.
        `card`: a delivery card (its files are its fixed design: permanent). Raises NotApproved
        when a permanent file is not approved on this platform (nothing is sent then)."""
        if self.resolve is None:
            return body
        chatbot = body["senderAddress"]
        for media in _body_media(body):
            await self._one(chatbot, media, card)
        return body

    async def _lasting(self, url: object, card: bool) -> LocalFile | None:
        file = await self.resolve(url) if self.resolve is not None and isinstance(url, str) else None
        return replace(file, lasting=True) if file is not None and card else file

    async def _one(self, chatbot: str, media: dict[str, Any], card: bool) -> None:
        file = await self._lasting(media.get("mediaUrl"), card)
        thumb = await self._lasting(media.get("thumbnailUrl"), card)
        if file is None and thumb is None:
            return
        if file is None:  # only the thumbnail is ours: host it on its own
            assert thumb is not None
            rec = self.usable(await self.host(chatbot, thumb), thumb)
            media |= {
                "thumbnailUrl": rec["url"],
                "thumbnailContentType": rec["contentType"],
                "thumbnailFileSize": rec["size"],
            }
            return
        is_video = file.content_type.startswith("video/")
        rec = self.usable(await self.host(chatbot, file, thumb if is_video else None), file)
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
            t = self.usable(await self.host(chatbot, thumb), thumb)
            media |= {
                "thumbnailUrl": t["url"],
                "thumbnailContentType": t["contentType"],
                "thumbnailFileSize": t["size"],
            }


def _current(record: dict[str, Any], now: float) -> bool:
    """Whether a kept record still serves (False: upload the file again). A refused file is never
    uploaded again; an approved one is submitted again `AHEAD` of its expiry."""
    until = float(record.get("until") or 0)
    state = (record.get("review") or {}).get("state")
    if state == "refused" or not until:
        return True
    return until - now > (AHEAD if state == "approved" else MARGIN)


def _approved_copy(old: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The approved copy an old record still offers, to use while its re-submission waits."""
    if old is None:
        return None
    review = old.get("review") or {}
    if review.get("state") == "approved" and float(old.get("until") or 0) - now > MARGIN:
        return {k: v for k, v in old.items() if k not in ("review", "checks", "refs", "previous")}
    previous = old.get("previous")
    if isinstance(previous, dict) and float(previous.get("until") or 0) - now > MARGIN:
        return previous
    return None


def _records_of(file: LocalFile | None, thumb: LocalFile | None) -> list[tuple[LocalFile, LocalFile | None]]:
    """The hosted records one card's media needs, as `_one` makes them: a video with its
    thumbnail, else each file on its own."""
    if file is None:
        return [(thumb, None)] if thumb is not None else []
    if file.content_type.startswith("video/"):
        return [(file, thumb)]
    return [(file, None)] + ([(thumb, None)] if thumb is not None else [])


def _body_media(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in body.get("messageList", ()):
        if part.get("contentType") == BOTMESSAGE and isinstance(part.get("contentText"), dict):
            out.extend(_media_of(part["contentText"]))
    return out


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
