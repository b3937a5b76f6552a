"""The console's store methods (console_rows.py) on PostgreSQL: the same queries, ILIKE for
case-insensitive search, and a NOTIFY where a change touches the other workers' caches."""

from __future__ import annotations

import time
from typing import Any

from infra import jsonio

from .console_rows import VERIFIED, Page, SessionRow, body_pattern, key_json, like_pattern


class PgConsoleRows:
    """Mixed into PgDeliveryStore (its _execute/_fetch/_fetchrow run inside the task's tx())."""

    async def _execute(self, sql: str, *args: Any) -> str: ...
    async def _fetch(self, sql: str, *args: Any) -> list[Any]: ...
    async def _fetchrow(self, sql: str, *args: Any) -> Any: ...
    async def _changed(self, payload: str = "docs") -> None: ...

    async def page(
        self,
        kind: str,
        enterprise: str | None,
        q: str = "",
        limit: int = 50,
        offset: int = 0,
        unverified: bool = False,
    ) -> Page:
        where, args = ["kind=$1"], [kind]
        if enterprise is not None:
            args.append(enterprise)
            where.append(f"enterprise=${len(args)}")
        if q:
            args += [like_pattern(q), body_pattern(q)]
            where.append(f"(id ILIKE ${len(args) - 1} OR body ILIKE ${len(args)})")
        if unverified:
            args.append(VERIFIED)
            where.append(f"body NOT LIKE ${len(args)}")
        cond = " AND ".join(where)
        n = len(args)
        page = f"FROM objects WHERE {cond} ORDER BY enterprise, id LIMIT ${n + 1} OFFSET ${n + 2}"
        count = f"SELECT count(*) FROM objects WHERE {cond}"
        if not (q or unverified):  # the total from the key's index, the page by it
            total = int((await self._fetchrow(count, *args))[0])
            rows = await self._fetch(f"SELECT enterprise, body {page}", *args, limit, offset)
            return Page(total, [(r[0], jsonio.loads(r[1])) for r in rows])
        # a search reads every body: once, the total riding on each row of the page
        rows = await self._fetch(f"SELECT enterprise, body, count(*) OVER () {page}", *args, limit, offset)
        if rows or offset == 0:
            total = int(rows[0][2]) if rows else 0
        else:  # past the end: the count alone
            total = int((await self._fetchrow(count, *args))[0])
        return Page(total, [(r[0], jsonio.loads(r[1])) for r in rows])

    async def after(self, kind: str, enterprise: str, after: str, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 AND id>$3 ORDER BY id LIMIT $4",
            kind, enterprise, after, limit,
        )  # fmt: skip
        return [jsonio.loads(r[0]) for r in rows]

    async def put_many(self, kind: str, enterprise: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        if items:
            await self._execute(
                "INSERT INTO objects SELECT $1, $2, i, b FROM unnest($3::text[], $4::text[]) AS t(i, b) "
                "ON CONFLICT (kind, enterprise, id) DO UPDATE SET body = excluded.body",
                kind, enterprise, [i for i, _ in items], [jsonio.dumps_str(b) for _, b in items],
            )  # fmt: skip
        await self._changed()

    async def keys_of(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT hash, label, created FROM api_keys WHERE enterprise=$1 ORDER BY created", enterprise
        )
        return [key_json(tuple(r)) for r in rows]

    async def drop_key(self, enterprise: str, short: str) -> bool:
        rows = await self._fetch(
            "SELECT hash FROM api_keys WHERE enterprise=$1 AND substr(hash, 1, 12)=$2", enterprise, short
        )
        if len(rows) != 1 or len(short) != 12:
            return False
        await self._execute("DELETE FROM api_keys WHERE hash=$1", rows[0][0])
        await self._execute("DELETE FROM console_sessions WHERE key_hash=$1", rows[0][0])
        await self._changed()  # every worker drops the key from its cache
        return True

    async def add_session(
        self, hash: str, key_hash: str, enterprise: str | None, csrf: str, expires: float
    ) -> None:
        now = time.time()
        await self._execute("DELETE FROM console_sessions WHERE expires < $1", now)
        await self._execute(
            "INSERT INTO console_sessions VALUES ($1,$2,$3,$4,$5,$6)",
            hash, key_hash, enterprise, csrf, now, expires,
        )  # fmt: skip

    async def session(self, hash: str) -> SessionRow | None:
        row = await self._fetchrow(
            "SELECT key_hash, enterprise, csrf, expires FROM console_sessions WHERE hash=$1", hash
        )
        return SessionRow(row[0], row[1], row[2], row[3]) if row and row[3] > time.time() else None

    async def drop_session(self, hash: str) -> None:
        await self._execute("DELETE FROM console_sessions WHERE hash=$1", hash)
