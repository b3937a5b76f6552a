"""Short links (delivery/shortlinks.py) and their opens.

A link is written inside the transaction of the attempt whose text carries it, so it is durable
before that text is handed to a gateway: a statement run at once on SQLite, a typed record for
PostgreSQL's group commit (its `unnest` statement beside it). Opens are written by the links'
own flusher, many per statement: on SQLite a few statements in one transaction, on PostgreSQL
one statement that also marks each link's first open and says which opens were first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..drivers import Driver

LINK_COLUMNS = "code, enterprise, recipient, delivery, step, channel, kind, target, created, expires"
LINK_ROW = tuple(LINK_COLUMNS.split(", "))
LINK_SQL = f"SELECT {LINK_COLUMNS} FROM short_links WHERE code=$1"
LINK_ROW_SQL = (
    f"INSERT INTO short_links ({LINK_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING"
)
LINKS_SQL = (
    f"INSERT INTO short_links ({LINK_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::float8[], "
    "$10::float8[]) ON CONFLICT DO NOTHING"
)
# SQLite: the batch's links not opened before, then its first opens and every open, in one
# transaction (one process writes the file: nothing comes between the read and the writes).
UNOPENED_SQL = "SELECT code FROM short_links WHERE code = ANY($1::text[]) AND first_open IS NULL"
FIRST_OPEN_SQL = "UPDATE short_links SET first_open=$2 WHERE code=$1 AND first_open IS NULL"
OPEN_ROW_SQL = (
    "INSERT INTO link_opens (id, code, at, client, is_first) VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING"
)
# PostgreSQL: every open of a flush in one statement. The earliest open of a link not opened
# before is its first; an open already written (a flush run again) is skipped.
OPENS_SQL = (
    "WITH o AS (SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) "
    "WITH ORDINALITY AS u(id, code, at, client, n)), "
    "m AS (SELECT DISTINCT ON (code) code, at, n FROM o ORDER BY code, n), "
    "f AS (UPDATE short_links l SET first_open = m.at FROM m "
    "WHERE l.code = m.code AND l.first_open IS NULL RETURNING l.code) "
    "INSERT INTO link_opens (id, code, at, client, is_first) "
    "SELECT o.id, o.code, o.at, o.client, (f.code IS NOT NULL AND o.n = m.n) "
    "FROM o JOIN m ON m.code = o.code LEFT JOIN f ON f.code = o.code "
    "ON CONFLICT DO NOTHING RETURNING id, is_first"
)
OPENS_OF_SQL = "SELECT at, client, is_first FROM link_opens WHERE code=$1 ORDER BY at LIMIT $2"


@dataclass(frozen=True, slots=True)
class InsertLink:
    """A new short link (PostgreSQL's group commit): commits with its attempt row."""

    code: str
    enterprise: str
    recipient: str
    delivery: str
    step: int
    channel: str
    kind: str
    target: str
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class Open:
    """One open of a link, as the flusher writes it (`id` makes a repeated write a no-op)."""

    id: str
    code: str
    at: float
    client: str


class LinkRows:
    db: Driver

    async def add_link(self, link: InsertLink) -> None:
        """Write a link; inside a `tx()` it commits with the block's other writes."""
        w = self.db.writes
        if w is None:
            await self.db.run(LINK_ROW_SQL, *(getattr(link, c) for c in LINK_ROW))
        else:
            w.queue(link)

    async def link(self, code: str) -> Sequence[Any] | None:
        """The link's row (LINK_COLUMNS). Links are durable before any text carries them, so the
        read need not wait for the group commit."""
        rows = await self.db.committed(LINK_SQL, code)
        return rows[0] if rows else None

    async def add_opens(self, opens: Sequence[Open]) -> list[tuple[str, bool]]:
        """Write opens; (id, first open of its link) for each one written now. Durable on return."""
        if not opens:
            return []
        if self.db.name == "postgresql":
            rows = await self.db.all(
                OPENS_SQL, [o.id for o in opens], [o.code for o in opens], [o.at for o in opens],
                [o.client for o in opens],
            )  # fmt: skip
            return [(r[0], bool(r[1])) for r in rows]
        # SQLite: which links of the batch were never opened, then two statements over all rows
        firsts: dict[str, Open] = {}  # code → its earliest open of this batch, if it is the first
        async with self.db.transaction():
            rows = await self.db.all(UNOPENED_SQL, sorted({o.code for o in opens}))
            unopened = {r[0] for r in rows}
            for o in opens:
                if o.code in unopened and o.code not in firsts:
                    firsts[o.code] = o
            await self.db.run_many(FIRST_OPEN_SQL, [(code, o.at) for code, o in firsts.items()])
            rows_ = [(o.id, o.code, o.at, o.client, firsts.get(o.code) is o) for o in opens]
            await self.db.run_many(OPEN_ROW_SQL, rows_)
        await self.db.durable()
        return [(o.id, firsts.get(o.code) is o) for o in opens]

    async def link_opens(self, code: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self.db.all(OPENS_OF_SQL, code, limit)
        return [{"at": r[0], "client": r[1], "first": bool(r[2])} for r in rows]
