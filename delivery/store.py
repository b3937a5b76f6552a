"""Durable state of the delivery domain in SQLite (WAL): resources, audit log, API keys, call
events, deliveries and their attempts, receipts, opt-outs, and the metering ledger.

One server process owns one database file. What must be atomic ACROSS processes (call-event
dedupe, quota consumption, frequency caps) goes through `Counters` (metering/), which has a
SQLite and a Redis implementation. Calls are synchronous: each is one short statement or
transaction on a local file, cheaper than a thread hop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra import jsonio
from infra.migrations import Migrations

from .console_rows import SqliteConsoleRows
from .groupcommit import GroupCommitDb
from .metering import ledger
from .metering.ledger import LedgerEntry
from .metering.packages import Charge
from .records import MEDIA_COLUMNS, MEDIA_FIELDS, OUTCOME, Attempt, Delivery, attempt_stats, delivery_from_row

# The schema: numbered migrations in delivery/migrations/sqlite/, applied by open() (infra/migrations.py).
SCHEMA = Migrations.load("delivery", "sqlite", database="delivery", adopt_if_table="objects")
# Active deliveries, and those whose current attempt waits for a receipt: its cost grows with the
# active deliveries (a partial index), not with the history.
QUEUE = (
    "SELECT count(*), count(a.id) FROM deliveries d LEFT JOIN attempts a ON a.delivery = d.id "
    "AND a.step = d.step AND a.state IN ('submitted', 'unknown') WHERE d.state = 'active'"
)


class SqliteDeliveryStore(SqliteConsoleRows, GroupCommitDb):
    shared = False  # one process owns the file

    def __init__(self, path: Path, synchronous: str = "NORMAL", migrate: str = "auto") -> None:
        super().__init__(path, SCHEMA, synchronous)
        self.migrate = migrate  # schema migrations at start: auto | check | off
        # Read-through caches of what call events read on every call (this process owns the file):
        # configuration documents and API keys, cleared on any write to them; opt-outs, added to.
        self._docs: dict[tuple[Any, ...], Any] = {}
        self._keys: dict[str, tuple[str, str | None] | None] = {}
        self._optouts: set[tuple[str, str]] = set()
        self.generation = 0  # bumped on every configuration write: derived caches compare it

    async def start(self) -> None:
        self.open(self.migrate)
        self.start_batching()

    async def stop(self) -> None:
        self.close()

    async def ping(self) -> None:
        self.db.execute("SELECT 1")

    async def snapshot(self) -> list[str]:
        return sorted(self.db.iterdump())

    def open(self, migrate: str = "auto") -> None:
        super().open(migrate)
        self._optouts = {(r[0], r[1]) for r in self.db.execute("SELECT enterprise, number FROM optouts")}

    def _forget(self) -> None:
        self._docs.clear()
        self.generation += 1
        self._keys.clear()

    # -- resources -----------------------------------------------------------------------------
    async def put(self, kind: str, enterprise: str, id: str, body: dict[str, Any]) -> None:
        self._docs.clear()
        self.generation += 1
        self.db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?,?,?,?)",
            (kind, enterprise, id, jsonio.dumps_str(body)),
        )

    async def get(self, kind: str, enterprise: str, id: str) -> dict[str, Any] | None:
        """A document (shared from the cache: callers copy before changing it)."""
        key = ("get", kind, enterprise, id)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        row = self.db.execute(
            "SELECT body FROM objects WHERE kind=? AND enterprise=? AND id=?", (kind, enterprise, id)
        ).fetchone()
        doc = self._docs[key] = jsonio.loads(row[0]) if row else None
        return doc  # type: ignore[no-any-return]

    async def find(self, kind: str, id: str) -> tuple[str, dict[str, Any]] | None:
        """An object by id in any enterprise (lines: a number belongs to one enterprise)."""
        key = ("find", kind, id)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        row = self.db.execute(
            "SELECT enterprise, body FROM objects WHERE kind=? AND id=?", (kind, id)
        ).fetchone()
        hit = self._docs[key] = (row[0], jsonio.loads(row[1])) if row else None
        return hit  # type: ignore[no-any-return]

    async def list(self, kind: str, enterprise: str | None = None) -> list[dict[str, Any]]:
        key = ("list", kind, enterprise)
        if key in self._docs:
            return self._docs[key]  # type: ignore[no-any-return]
        self._docs[key] = out = self._list(kind, enterprise)
        return out

    def _list(self, kind: str, enterprise: str | None) -> list[dict[str, Any]]:
        if enterprise is None:
            rows = self.db.execute("SELECT body FROM objects WHERE kind=? ORDER BY id", (kind,))
        else:
            rows = self.db.execute(
                "SELECT body FROM objects WHERE kind=? AND enterprise=? ORDER BY id", (kind, enterprise)
            )
        return [jsonio.loads(r[0]) for r in rows]

    async def delete(self, kind: str, enterprise: str, id: str) -> bool:
        self._docs.clear()
        self.generation += 1
        cur = self.db.execute(
            "DELETE FROM objects WHERE kind=? AND enterprise=? AND id=?", (kind, enterprise, id)
        )
        return cur.rowcount > 0

    async def delete_enterprise(self, enterprise: str) -> None:
        self._docs.clear()
        self.generation += 1
        self._keys.clear()
        async with self.tx() as db:
            db.execute("DELETE FROM objects WHERE enterprise=?", (enterprise,))
            db.execute("DELETE FROM objects WHERE kind='enterprise' AND id=?", (enterprise,))
            db.execute("DELETE FROM api_keys WHERE enterprise=?", (enterprise,))
            db.execute("DELETE FROM chatbot_owners WHERE enterprise=?", (enterprise,))
            db.execute("DELETE FROM media WHERE enterprise=?", (enterprise,))

    async def claim_chatbot(self, enterprise: str, bot: str) -> bool:
        """Make `bot` (a `bot_id`; "" for none) the enterprise's one chatbot; False, changing
        nothing, if another enterprise owns it."""
        if bot:
            self.db.execute("INSERT OR IGNORE INTO chatbot_owners VALUES (?,?)", (bot, enterprise))
            row = self.db.execute("SELECT enterprise FROM chatbot_owners WHERE bot=?", (bot,)).fetchone()
            if row[0] != enterprise:
                return False
        self.db.execute("DELETE FROM chatbot_owners WHERE enterprise=? AND bot<>?", (enterprise, bot))
        return True

    async def audit(
        self, actor: str, enterprise: str, target: str, action: str, detail: dict[str, Any]
    ) -> None:
        self.db.execute(
            "INSERT INTO audit (at, actor, enterprise, target, action, detail) VALUES (?,?,?,?,?,?)",
            (time.time(), actor, enterprise, target, action, jsonio.dumps_str(detail)),
        )

    async def audit_log(self, enterprise: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT at, actor, target, action, detail FROM audit WHERE enterprise=? "
            "ORDER BY seq DESC LIMIT ?",
            (enterprise, limit),
        )
        return [
            {"at": r[0], "actor": r[1], "target": r[2], "action": r[3], "detail": jsonio.loads(r[4])}
            for r in rows
        ]

    # -- the media library ----------------------------------------------------------------------
    async def add_media(self, enterprise: str, row: dict[str, Any], quota: int) -> str:
        async with self.tx() as db:
            if db.execute(
                "SELECT 1 FROM media WHERE enterprise=? AND id=?", (enterprise, row["id"])
            ).fetchone():
                return "exists"
            used = db.execute("SELECT coalesce(sum(bytes), 0) FROM media WHERE enterprise=?", (enterprise,))
            if used.fetchone()[0] + row["bytes"] > quota:
                return "over_quota"
            db.execute(
                f"INSERT INTO media (enterprise, {MEDIA_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (enterprise, *(row[c] for c in MEDIA_FIELDS)),
            )
        return "added"

    async def media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        r = self.db.execute(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=? AND id=?", (enterprise, id)
        ).fetchone()
        return dict(zip(MEDIA_FIELDS, r, strict=True)) if r else None

    async def media_list(self, enterprise: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=? ORDER BY created, id", (enterprise,)
        )
        return [dict(zip(MEDIA_FIELDS, r, strict=True)) for r in rows]

    async def media_named(self, enterprise: str, name: str) -> dict[str, Any] | None:
        r = self.db.execute(
            f"SELECT {MEDIA_COLUMNS} FROM media WHERE enterprise=? AND name=? ORDER BY created LIMIT 1",
            (enterprise, name),
        ).fetchone()
        return dict(zip(MEDIA_FIELDS, r, strict=True)) if r else None

    async def media_used(self, enterprise: str) -> int:
        r = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM media WHERE enterprise=?", (enterprise,))
        return int(r.fetchone()[0])

    async def delete_media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        row = await self.media(enterprise, id)
        if row is not None:
            self.db.execute("DELETE FROM media WHERE enterprise=? AND id=?", (enterprise, id))
        return row

    async def media_users(self, id: str) -> int:
        return int(self.db.execute("SELECT count(*) FROM media WHERE id=?", (id,)).fetchone()[0])

    # -- API keys ----------------------------------------------------------------------------
    async def add_key(self, key_hash: str, enterprise: str | None, label: str) -> None:
        self._keys.clear()
        self.db.execute(
            "INSERT OR REPLACE INTO api_keys VALUES (?,?,?,?)", (key_hash, enterprise, label, time.time())
        )

    async def key(self, key_hash: str) -> tuple[str, str | None] | None:
        if key_hash in self._keys:
            return self._keys[key_hash]
        row = self.db.execute("SELECT hash, enterprise FROM api_keys WHERE hash=?", (key_hash,)).fetchone()
        hit = (row[0], row[1]) if row else None
        if hit is not None:  # unknown keys are not cached: a flood of guesses must not grow memory
            self._keys[key_hash] = hit
        return hit

    # -- calls and deliveries ------------------------------------------------------------------
    async def call_phases(self, call_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT phase FROM calls WHERE call_id=?", (call_id,))}

    async def accept_call(self, d: Delivery, owner: str = "", lease_until: float = 0.0) -> bool:
        """Record a call event with its delivery; False (and neither written) if this call id and
        phase were seen before. (One process owns the file: the lease is implied, not stored.)"""
        cur = self.db.execute("INSERT OR IGNORE INTO calls VALUES (?,?,?)", (d.call_id, d.phase, d.event_at))
        if cur.rowcount == 0:
            await self._durable_outside_tx()
            return False
        self.db.execute(
            "INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                d.id,
                d.call_id,
                d.phase,
                d.enterprise,
                d.line,
                d.recipient,
                d.card,
                d.template,
                d.kind,
                jsonio.dumps_str(d.data),
                jsonio.dumps_str(d.chain),
                d.step,
                d.state,
                d.reason,
                d.channel,
                d.event_at,
                d.created,
                d.updated,
            ),
        )
        await self._durable_outside_tx()
        return True

    async def _durable_outside_tx(self) -> None:
        """Durable now, unless inside a `tx()` block (whose end decides)."""
        if not self._savepoints:
            await self.durable()

    async def delivery(self, id: str) -> Delivery | None:
        row = self.db.execute("SELECT * FROM deliveries WHERE id=?", (id,)).fetchone()
        return delivery_from_row(row) if row else None

    async def deliveries_of_call(self, call_id: str) -> list[Delivery]:
        return [
            delivery_from_row(r)
            for r in self.db.execute("SELECT * FROM deliveries WHERE call_id=? ORDER BY created", (call_id,))
        ]

    async def active_deliveries(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM deliveries WHERE state='active'")]

    async def queue(self) -> tuple[int, int]:
        row = self.db.execute(QUEUE).fetchone()
        return int(row[0]), int(row[1])

    async def update_delivery(self, id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        cols = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE deliveries SET {cols} WHERE id=?", (*fields.values(), id))

    # -- leases: one process owns the file, so every active chain is its own --------------------
    async def claim_chains(self, owner: str, now: float, until: float, limit: int) -> list[str]:
        return await self.active_deliveries()

    async def renew(self, owner: str, deliveries: list[str], until: float) -> set[str]:
        return set(deliveries)

    async def release(self, owner: str, deliveries: list[str]) -> None:
        pass

    async def attempt(self, delivery: str, step: int) -> Attempt | None:
        row = self.db.execute(
            "SELECT * FROM attempts WHERE delivery=? AND step=?", (delivery, step)
        ).fetchone()
        return Attempt(*row) if row else None

    async def attempt_receipts(self, id: int) -> tuple[Attempt | None, int, list[str]]:
        """An attempt, how many message ids it has and the receipt stats they got."""
        row = self.db.execute("SELECT * FROM attempts WHERE id=?", (id,)).fetchone()
        if row is None:
            return None, 0, []
        rows = self.db.execute(
            "SELECT r.stat FROM message_ids m LEFT JOIN receipts r "
            "ON r.message_id = m.message_id WHERE m.attempt=?",
            (id,),
        ).fetchall()
        return Attempt(*row), len(rows), [r[0] for r in rows if r[0] is not None]

    async def attempts(self, delivery: str) -> list[Attempt]:
        return [
            Attempt(*r)
            for r in self.db.execute("SELECT * FROM attempts WHERE delivery=? ORDER BY step", (delivery,))
        ]

    async def add_attempt(
        self, delivery: str, step: int, channel: str, segments: int, units: int, deadline: float
    ) -> Attempt:
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO attempts (delivery, step, channel, state, segments, units, started, "
            "deadline, done, detail) VALUES (?,?,?,?,?,?,?,?,NULL,'')",
            (delivery, step, channel, "sending", segments, units, now, deadline),
        )
        return Attempt(
            int(cur.lastrowid or 0),
            delivery,
            step,
            channel,
            "sending",
            segments,
            units,
            now,
            deadline,
            None,
            "",
        )

    async def update_attempt(self, id: int, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE attempts SET {cols} WHERE id=?", (*fields.values(), id))

    async def add_message_ids(self, attempt: int, ids: list[str]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO message_ids VALUES (?,?,NULL)", [(m, attempt) for m in ids]
        )

    async def receipt(self, message_id: str, stat: str, source: str = "") -> None:
        """Store a receipt (a redelivery of one already stored changes nothing)."""
        self.db.execute(
            "INSERT OR IGNORE INTO receipts (message_id, stat, at, source) VALUES (?,?,?,?)",
            (message_id, stat, time.time(), source),
        )

    async def adopt_receipts(self, attempt: int, recipient: str, since: float, limit: int) -> int:
        cur = self.db.execute(
            "INSERT OR IGNORE INTO message_ids SELECT r.message_id, ?, NULL FROM receipts r "
            "WHERE r.source = ? AND r.at >= ? AND NOT EXISTS "
            "(SELECT 1 FROM message_ids m WHERE m.message_id = r.message_id) ORDER BY r.at LIMIT ?",
            (attempt, recipient, since, limit),
        )
        return cur.rowcount

    async def attempt_of_message(self, message_id: str) -> int | None:
        row = self.db.execute("SELECT attempt FROM message_ids WHERE message_id=?", (message_id,)).fetchone()
        return row[0] if row else None

    async def waiting_attempts_of(self, message_ids: list[str]) -> list[int]:
        found: set[int] = set()
        for i in range(0, len(message_ids), 500):  # SQLite's bound on parameters per statement
            chunk = message_ids[i : i + 500]
            rows = self.db.execute(
                "SELECT DISTINCT a.id FROM message_ids m JOIN attempts a ON a.id = m.attempt "
                f"WHERE m.message_id IN ({','.join('?' * len(chunk))}) "  # placeholders only
                "AND a.state IN ('submitted', 'unknown')",
                chunk,
            ).fetchall()
            found.update(int(r[0]) for r in rows)
        return sorted(found)

    # -- opt-outs and ad impressions -----------------------------------------------------------
    async def opt_out(self, enterprise: str, number: str, channel: str, text: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO optouts VALUES (?,?,?,?,?)",
            (enterprise, number, time.time(), channel, text),
        )
        self._optouts.add((enterprise, number))  # after the durable write

    async def opted_out(self, enterprise: str, number: str) -> bool:
        return (enterprise, number) in self._optouts

    async def optouts(self, enterprise: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT number, at, channel, text FROM optouts WHERE enterprise=? ORDER BY at", (enterprise,)
        )
        return [{"number": r[0], "at": r[1], "channel": r[2], "text": r[3]} for r in rows]

    async def active_for(self, enterprise: str, recipient: str) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM deliveries WHERE recipient=? AND enterprise=? AND state='active'",
            (recipient, enterprise),
        )
        return [r[0] for r in rows]

    async def last_delivered(
        self, enterprise: str | Sequence[str], recipient: str, kind: str | None
    ) -> tuple[str, float, str, str] | None:
        """(card, when, delivery id, enterprise) of the latest card (of this kind) delivered to a
        person by the enterprise — or by any of several (the ones behind one 5G chatbot)."""
        ents = [enterprise] if isinstance(enterprise, str) else list(enterprise)
        if not ents:
            return None
        marks = ",".join("?" * len(ents))
        row = self.db.execute(
            "SELECT card, updated, id, enterprise FROM deliveries WHERE enterprise IN (" + marks + ") "
            "AND recipient=? AND (? IS NULL OR kind=?) AND state='delivered' ORDER BY updated DESC LIMIT 1",
            (*ents, recipient, kind, kind),
        ).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    async def first_reply(self, key: str, now: float, keep: float = 7 * 86400) -> bool:
        """True the first time a reply with this key (e.g. the chatbot's message id) is seen: a
        platform's redelivery of the same tap is not counted twice. Old keys are pruned."""
        self.db.execute("DELETE FROM replies_seen WHERE at < ?", (now - keep,))
        return self.db.execute("INSERT OR IGNORE INTO replies_seen VALUES (?,?)", (key, now)).rowcount > 0

    async def count_tap(self, enterprise: str, card: str, button: str, day: str) -> None:
        self.db.execute(
            "INSERT INTO taps VALUES (?,?,?,?,1) ON CONFLICT DO UPDATE SET n = n + 1",
            (enterprise, card, button, day),
        )

    async def taps(self, enterprise: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT card, button, day, n FROM taps WHERE enterprise=? ORDER BY day, card, n DESC",
            (enterprise,),
        )
        return [{"card": r[0], "button": r[1], "day": r[2], "taps": r[3]} for r in rows]

    async def count_impression(self, enterprise: str, card: str, day: str, taps: int = 0) -> None:
        self.db.execute(
            "INSERT INTO impressions VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET "
            "shown = shown + excluded.shown, taps = taps + excluded.taps",
            (enterprise, card, day, 0 if taps else 1, taps),
        )

    async def impressions(self, enterprise: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT card, day, shown, taps FROM impressions WHERE enterprise=? ORDER BY day, card",
            (enterprise,),
        )
        return [{"card": r[0], "day": r[1], "impressions": r[2], "taps": r[3]} for r in rows]

    async def delivery_stats(self, enterprise: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            f"SELECT date(a.started, 'unixepoch', '+8 hours') AS day, a.channel, {OUTCOME} AS outcome, "
            "count(*), avg(CASE WHEN a.done IS NOT NULL THEN a.done - a.started END) FROM attempts a "
            "JOIN deliveries d ON d.id = a.delivery WHERE d.enterprise=? GROUP BY day, a.channel, outcome "
            "ORDER BY day, a.channel, outcome",
            (enterprise,),
        )
        return attempt_stats(rows)

    # -- metering ledger (metering/ledger.py) ------------------------------------------------------
    async def record_charge(self, key: str, charge: Charge, e: LedgerEntry) -> None:
        """The ledger row of a charge; a repeated charge (found again under the same key after a
        crash) rewrites the same row."""
        ledger.write(self.db, key, charge, e)

    async def mark_refunded(self, key: str) -> None:
        ledger.mark_refunded(self.db, key)

    async def usage(self, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]:
        return ledger.usage_rows(self.db, enterprise, by)
