"""What the console needs from the store beyond the API's documents: paged, searched lists (the
lists reach 100,000 staff and 10,000 lines), many documents written in one transaction (a staff
import), the API keys an enterprise holds, and sign-in sessions.

Both stores mix in one class from here (SQLite below, PostgreSQL in console_pg.py) so the two
store modules keep to the call path and this lives in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from infra import jsonio

VERIFIED = '%"verified":true%'  # documents are compact JSON (orjson): a quote inside a string is \"


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


def key_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """An API key as the console lists it: never the hash itself, a short id of it."""
    return {"id": row[0][:12], "label": row[1], "created": row[2]}


class SqliteConsoleRows:
    """Mixed into SqliteDeliveryStore (self.db, self._forget)."""

    db: Any

    def _forget(self) -> None: ...

    async def page(
        self,
        kind: str,
        enterprise: str | None,
        q: str = "",
        limit: int = 50,
        offset: int = 0,
        unverified: bool = False,
    ) -> Page:
        where, args = ["kind=?"], [kind]
        if enterprise is not None:
            where.append("enterprise=?")
            args.append(enterprise)
        if q:
            where.append("(id LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')")
            args += [like_pattern(q), body_pattern(q)]
        if unverified:
            where.append("body NOT LIKE ?")
            args.append(VERIFIED)
        cond = " AND ".join(where)
        page = f"FROM objects WHERE {cond} ORDER BY enterprise, id LIMIT ? OFFSET ?"
        if not (q or unverified):  # the total from the key's index, the page by it: no body is read twice
            total = self.db.execute(f"SELECT count(*) FROM objects WHERE {cond}", args).fetchone()[0]
            rows = self.db.execute(f"SELECT enterprise, body {page}", [*args, limit, offset]).fetchall()
            return Page(int(total), [(r[0], jsonio.loads(r[1])) for r in rows])
        # a search reads every body: once, the total riding on each row of the page
        rows = self.db.execute(
            f"SELECT enterprise, body, count(*) OVER () {page}", [*args, limit, offset]
        ).fetchall()
        if rows or offset == 0:
            total = rows[0][2] if rows else 0
        else:  # past the end: the count alone
            total = self.db.execute(f"SELECT count(*) FROM objects WHERE {cond}", args).fetchone()[0]
        return Page(int(total), [(r[0], jsonio.loads(r[1])) for r in rows])

    async def after(self, kind: str, enterprise: str, after: str, limit: int) -> list[dict[str, Any]]:
        """The enterprise's next `limit` documents in id order after id `after` ("" for the first):
        a whole list read a page at a time, each page as cheap as the first (no OFFSET)."""
        rows = self.db.execute(
            "SELECT body FROM objects WHERE kind=? AND enterprise=? AND id>? ORDER BY id LIMIT ?",
            (kind, enterprise, after, limit),
        )
        return [jsonio.loads(r[0]) for r in rows]

    async def put_many(self, kind: str, enterprise: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        self._forget()
        self.db.executemany(
            "INSERT OR REPLACE INTO objects VALUES (?,?,?,?)",
            [(kind, enterprise, i, jsonio.dumps_str(b)) for i, b in items],
        )

    async def keys_of(self, enterprise: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT hash, label, created FROM api_keys WHERE enterprise=? ORDER BY created", (enterprise,)
        )
        return [key_json(r) for r in rows]

    async def drop_key(self, enterprise: str, short: str) -> bool:
        """Revoke the enterprise's key whose hash starts with `short`, and its sessions."""
        rows = self.db.execute(
            "SELECT hash FROM api_keys WHERE enterprise=? AND substr(hash, 1, 12)=?", (enterprise, short)
        ).fetchall()
        if len(rows) != 1 or len(short) != 12:
            return False
        self._forget()
        self.db.execute("DELETE FROM api_keys WHERE hash=?", (rows[0][0],))
        self.db.execute("DELETE FROM console_sessions WHERE key_hash=?", (rows[0][0],))
        return True

    async def add_session(
        self, hash: str, key_hash: str, enterprise: str | None, csrf: str, expires: float
    ) -> None:
        now = time.time()
        self.db.execute("DELETE FROM console_sessions WHERE expires < ?", (now,))
        self.db.execute(
            "INSERT INTO console_sessions VALUES (?,?,?,?,?,?)",
            (hash, key_hash, enterprise, csrf, now, expires),
        )

    async def session(self, hash: str) -> SessionRow | None:
        row = self.db.execute(
            "SELECT key_hash, enterprise, csrf, expires FROM console_sessions WHERE hash=?", (hash,)
        ).fetchone()
        return SessionRow(*row) if row and row[3] > time.time() else None

    async def drop_session(self, hash: str) -> None:
        self.db.execute("DELETE FROM console_sessions WHERE hash=?", (hash,))
