"""One enterprise's media library: add (checked, re-encoded, counted against the quota), list,
get, delete; and, for composing cards, which `media:<id>` values an enterprise may use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from renderer.mediarefs import MEDIA_PREFIX, Link, media_id, refs, with_urls, without_refs
from renderer.model import Message

from ..storage import LibraryStore
from .fetch import PhotoFetcher, allowed
from .files import LibraryFiles
from .ingest import Ingested, Limits, ingest

__all__ = ["MEDIA_PREFIX", "MediaLibrary", "QuotaExceeded", "media_id"]
MAX_NAME = 2000  # a fetched photo's URL is its name


class QuotaExceeded(Exception):
    def __init__(self, used: int, size: int, quota: int) -> None:
        super().__init__(f"the library holds {used} bytes; {size} more would pass the quota of {quota} bytes")
        self.used, self.size, self.quota = used, size, quota


@dataclass(slots=True)
class MediaLibrary:
    store: LibraryStore
    files: LibraryFiles
    limits: Limits
    quota: int  # bytes per enterprise
    ffmpeg: str
    base_url: str = ""  # where phones fetch a file: {base_url}/media/library/{id}.{ext}
    fetcher: PhotoFetcher | None = None  # photo URLs from an enterprise's photo_hosts

    async def add(self, enterprise: str, data: bytes, name: str = "") -> tuple[dict[str, Any], bool]:
        """The stored row and whether it is new (the same file again is not counted twice).
        Raises IngestError (the file) or QuotaExceeded."""
        got = await ingest(data, self.limits, self.ffmpeg)
        row = self._row(got, name)
        self.files.write(got.id, got.ext, got.data)  # before the row: a row always has its file
        outcome = await self.store.add_media(enterprise, row, self.quota)
        if outcome == "over_quota":
            if await self.store.media_users(got.id) == 0:
                self.files.remove(got.id, got.ext)
            raise QuotaExceeded(await self.store.media_used(enterprise), row["bytes"], self.quota)
        await self.store.durable()
        if outcome == "exists":
            old = await self.store.media(enterprise, got.id)
            return (old or row), False
        return row, True

    @staticmethod
    def _row(got: Ingested, name: str) -> dict[str, Any]:
        return {
            "id": got.id,
            "kind": got.kind,
            "ext": got.ext,
            "content_type": got.content_type,
            "bytes": len(got.data),
            "width": got.width,
            "height": got.height,
            "seconds": got.seconds,
            "name": "".join(c for c in name if c.isprintable())[:MAX_NAME],
            "created": time.time(),
        }

    async def fetch(self, enterprise: dict[str, Any], url: str) -> tuple[dict[str, Any], bool]:
        """The photo at `url` (a host of the enterprise's `photo_hosts`) as a library file named
        by that URL. Raises FetchRefused, IngestError or QuotaExceeded."""
        fetcher = self.fetcher or PhotoFetcher(max_bytes=self.limits.max_bytes)
        data, _ = await fetcher.fetch(url, list(enterprise.get("photo_hosts") or ()))
        return await self.add(enterprise["id"], data, url)

    async def cached(self, enterprise: dict[str, Any], data: Any) -> Any:
        """`data` with each URL of a listed photo host that was fetched before replaced by its
        file's `media:<id>` (the renderer and payloads then use the library's copy)."""
        hosts = list(enterprise.get("photo_hosts") or ())
        if not hosts:
            return data

        async def swap(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: await swap(v) for k, v in value.items()}
            if isinstance(value, list):
                return [await swap(v) for v in value]
            if isinstance(value, str) and value.startswith("https://") and allowed(value, hosts):
                row = await self.store.media_named(enterprise["id"], value)
                return MEDIA_PREFIX + row["id"] if row is not None else value
            return value

        return await swap(data)

    async def delete(self, enterprise: str, id: str) -> bool:
        row = await self.store.delete_media(enterprise, id)
        if row is None:
            return False
        await self.store.durable()
        if await self.store.media_users(id) == 0:
            self.files.remove(id, row["ext"])
        return True

    async def forget_enterprise(self, rows: list[dict[str, Any]]) -> None:
        """After an enterprise was deleted: its files no other enterprise uses go too."""
        for row in rows:
            if await self.store.media_users(row["id"]) == 0:
                self.files.remove(row["id"], row["ext"])

    def url(self, row: dict[str, Any]) -> str:
        return f"{self.base_url}/media/library/{row['id']}.{row['ext']}"

    def path(self, row: dict[str, Any]) -> Path:
        return self.files.path(row["id"], row["ext"])

    def shown(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row as the API shows it: with the value a card uses and the public URL."""
        return {**row, "ref": MEDIA_PREFIX + row["id"], "url": self.url(row)}

    async def links(self, enterprise: str, refs: set[str]) -> dict[str, Link]:
        """`media:<id>` → where phones fetch it, for those of `refs` the enterprise owns."""
        out: dict[str, Link] = {}
        for ref in refs:
            id = media_id(ref)
            row = await self.store.media(enterprise, id) if id else None
            if row is not None:
                out[ref] = Link(self.url(row), row["content_type"], row["bytes"])
        return out

    async def published(self, enterprise: str, msg: Message) -> Message:
        """`msg` as a send names its library files: the enterprise's own as public URLs, any
        other dropped."""
        found = refs(msg)
        if not found:
            return msg
        return without_refs(with_urls(msg, await self.links(enterprise, found)))

    def local_path(self, url: str) -> Path | None:
        """The file behind a library URL this library made (to upload it to a MaaP), or None."""
        prefix = f"{self.base_url}/media/library/"
        if not url.startswith(prefix):
            return None
        id, _, ext = url[len(prefix) :].partition(".")
        try:
            path = self.files.path(id, ext)
        except ValueError:
            return None
        return path if path.is_file() else None
