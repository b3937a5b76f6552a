"""What the console needs beyond the API's documents: paged, searched lists (they reach 100,000
staff and 10,000 lines), many documents written at once (a staff import), the API keys an
enterprise holds, and sign-in sessions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from infra import jsonio

from ..drivers import Driver

VERIFIED = '%"verified":true%'  # documents are compact JSON (orjson): a quote inside a string is \"
# Many documents in one statement: SQLite runs the row form once per document (a local call
# each); PostgreSQL takes them all as two arrays, one round trip whatever their number.
PUT_MANY = {
    "sqlite": "INSERT INTO objects VALUES ($1,$2,$3,$4) ON CONFLICT (kind, enterprise, id) "
    "DO UPDATE SET body = excluded.body",
    "postgresql": "INSERT INTO objects SELECT $1, $2, i, b FROM unnest($3::text[], $4::text[]) AS t(i, b) "
    "ON CONFLICT (kind, enterprise, id) DO UPDATE SET body = excluded.body",
}


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    items: list[tuple[str, dict[str, Any]]]  # (enterprise, document)


@dataclass(frozen=True, slots=True)
class SessionRow:
    key_hash: str
    enterprise: str | None
    csrf: str
    expires: float


def like_pattern(q: str) -> str:
    """A LIKE pattern matching `q` anywhere, its own % and _ taken literally (escape: backslash)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def body_pattern(q: str) -> str:
    """The same for the JSON text of a document: `q` spelled as it is inside a JSON string
    (a quote is \\", non-ASCII stays as is), so a search for `"` or `\\` finds it."""
    return like_pattern(jsonio.dumps_str(q)[1:-1])


def key_json(row: Any) -> dict[str, Any]:
    """An API key as the console lists it: never the hash itself, a short id of it."""
    return {"id": row[0][:12], "label": row[1], "created": row[2]}


class ConsoleRows:
    db: Driver

    async def _changed(self) -> None: ...

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
        if q:  # case-insensitive (SQLite's LIKE is, for ASCII letters)
            args += [like_pattern(q), body_pattern(q)]
            where.append(f"(id ILIKE ${len(args) - 1} ESCAPE '\\' OR body ILIKE ${len(args)} ESCAPE '\\')")
        if unverified:
            args.append(VERIFIED)
            where.append(f"body NOT LIKE ${len(args)}")
        cond = " AND ".join(where)
        n = len(args)
        page = f"FROM objects WHERE {cond} ORDER BY enterprise, id LIMIT ${n + 1} OFFSET ${n + 2}"
        count = f"SELECT count(*) FROM objects WHERE {cond}"
        if not (q or unverified):  # the total from the key's index, the page by it: no body is read twice
            total = await self.db.one(count, *args)
            rows = await self.db.all(f"SELECT enterprise, body {page}", *args, limit, offset)
            return Page(int(total[0]) if total else 0, [(r[0], jsonio.loads(r[1])) for r in rows])
        # a search reads every body: once, the total riding on each row of the page
        rows = await self.db.all(f"SELECT enterprise, body, count(*) OVER () {page}", *args, limit, offset)
        if rows or offset == 0:
            found = int(rows[0][2]) if rows else 0
        else:  # past the end: the count alone
            total = await self.db.one(count, *args)
            found = int(total[0]) if total else 0
        return Page(found, [(r[0], jsonio.loads(r[1])) for r in rows])

    async def after(self, kind: str, enterprise: str, after: str, limit: int) -> list[dict[str, Any]]:
        """The enterprise's next `limit` documents in id order after id `after` ("" for the first):
        a whole list read a page at a time, each page as cheap as the first (no OFFSET)."""
        rows = await self.db.all(
            "SELECT body FROM objects WHERE kind=$1 AND enterprise=$2 AND id>$3 ORDER BY id LIMIT $4",
            kind, enterprise, after, limit,
        )  # fmt: skip
        return [jsonio.loads(r[0]) for r in rows]

    async def put_many(self, kind: str, enterprise: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        if items:
            sql = PUT_MANY[self.db.name]
            if self.db.name == "postgresql":
                ids, bodies = [i for i, _ in items], [jsonio.dumps_str(b) for _, b in items]
                await self.db.run(sql, kind, enterprise, ids, bodies)
            else:
                await self.db.run_many(sql, [(kind, enterprise, i, jsonio.dumps_str(b)) for i, b in items])
        await self._changed()

    async def keys_of(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self.db.all(
            "SELECT hash, label, created FROM api_keys WHERE enterprise=$1 ORDER BY created", enterprise
        )
        return [key_json(r) for r in rows]

    async def drop_key(self, enterprise: str, short: str) -> bool:
        """Revoke the enterprise's key whose hash starts with `short`, and its sessions."""
        rows = await self.db.all(
            "SELECT hash FROM api_keys WHERE enterprise=$1 AND substr(hash, 1, 12)=$2", enterprise, short
        )
        if len(rows) != 1 or len(short) != 12:
            return False
        await self.db.run("DELETE FROM api_keys WHERE hash=$1", rows[0][0])
        await self.db.run("DELETE FROM console_sessions WHERE key_hash=$1", rows[0][0])
        await self._changed()  # every worker drops the key from its cache
        return True

    async def add_session(
        self, hash: str, key_hash: str, enterprise: str | None, csrf: str, expires: float
    ) -> None:
        now = time.time()
        await self.db.run("DELETE FROM console_sessions WHERE expires < $1", now)
        await self.db.run(
            "INSERT INTO console_sessions VALUES ($1,$2,$3,$4,$5,$6)",
            hash, key_hash, enterprise, csrf, now, expires,
        )  # fmt: skip

    async def session(self, hash: str) -> SessionRow | None:
        row = await self.db.one(
            "SELECT key_hash, enterprise, csrf, expires FROM console_sessions WHERE hash=$1", hash
        )
        return SessionRow(row[0], row[1], row[2], row[3]) if row and row[3] > time.time() else None

    async def drop_session(self, hash: str) -> None:
        await self.db.run("DELETE FROM console_sessions WHERE hash=$1", hash)
