"""The media library's rows (the files themselves: delivery/library/)."""

from __future__ import annotations

from typing import Any

from ..drivers import Driver
from ..records import MEDIA_COLUMNS, MEDIA_FIELDS

MEDIA_PARAMS = ", ".join(f"${i}" for i in range(1, len(MEDIA_FIELDS) + 2))  # enterprise + the row


def _media(r: Any) -> dict[str, Any] | None:
    return dict(zip(MEDIA_FIELDS, r, strict=True)) if r else None


class MediaRows:
    db: Driver

    async def add_media(self, enterprise: str, row: dict[str, Any], quota: int) -> str:
        async with self.db.transaction():
            # one enterprise's uploads one at a time, on every worker: the quota sum stays true
            await self.db.lock("media:" + enterprise)
            if await self.db.one("SELECT 1 FROM media WHERE enterprise=$1 AND id=$2", enterprise, row["id"]):
                return "exists"
            used = await self.db.one(
                "SELECT coalesce(sum(bytes), 0) FROM media WHERE enterprise=$1", enterprise
            )
            if used is None or int(used[0]) + row["bytes"] > quota:
                return "over_quota"
            await self.db.run(
                f"INSERT INTO media (enterprise, {MEDIA_COLUMNS}) VALUES ({MEDIA_PARAMS})",
                enterprise, *(row[c] for c in MEDIA_FIELDS),
            )  # fmt: skip
        return "added"

    async def media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        return _media(
            await self.db.one(
                f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=$1 AND id=$2", enterprise, id
            )
        )

    async def media_list(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self.db.all(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=$1 ORDER BY created, id", enterprise
        )
        return [dict(zip(MEDIA_FIELDS, r, strict=True)) for r in rows]

    async def media_named(self, enterprise: str, name: str) -> dict[str, Any] | None:
        return _media(
            await self.db.one(
                f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=$1 AND name=$2 ORDER BY created LIMIT 1",
                enterprise,
                name,
            )
        )

    async def media_used(self, enterprise: str) -> int:
        r = await self.db.one("SELECT coalesce(sum(bytes), 0) FROM media WHERE enterprise=$1", enterprise)
        return int(r[0]) if r else 0

    async def delete_media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        """The row removed, or None."""
        return _media(
            await self.db.one(
                f"DELETE FROM media WHERE enterprise=$1 AND id=$2 RETURNING {MEDIA_COLUMNS}", enterprise, id
            )
        )

    async def media_users(self, id: str) -> int:
        """Rows (of any enterprise) naming the file `id`: 0 means it can go."""
        r = await self.db.one("SELECT count(*) FROM media WHERE id=$1", id)
        return int(r[0]) if r else 0
