"""The embedded store: one SQLite file in WAL mode, one connection, used from the event loop.

Why on the loop and not in a thread: with WAL and synchronous=NORMAL a commit is a write into
the OS page cache (no fsync; the WAL is synced at checkpoints), i.e. tens of microseconds, less
than a thread hop costs. It also makes load → turn → commit run without an await in between, so
within one process turns of a conversation can never interleave; the version CAS in `commit`
still guards a second process opening the same file by mistake.

Durability: a `kill -9` loses nothing committed (the WAL is in the page cache, and SQLite
recovers it on open). A power cut may lose the last transactions with NORMAL; set
MINGPIAN_SQLITE_SYNCHRONOUS=FULL to fsync every commit.
One server process per database file: outbox leases are cleared on open.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ..events import StatusReport
from . import Commit, CommitResult, Loaded, OutboxItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conv (id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE,
  conv TEXT NOT NULL,
  body TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at REAL NOT NULL DEFAULT 0,
  lease_until REAL NOT NULL DEFAULT 0,
  created REAL NOT NULL,
  sent_at REAL,
  last_error TEXT,
  delivery TEXT,                           -- latest status report from the platform
  delivery_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (conv, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_done ON outbox (sent_at) WHERE state != 'pending';
CREATE INDEX IF NOT EXISTS dedupe_at ON dedupe (at);
"""

CLAIM = """
SELECT o.seq, o.message_id, o.conv, o.body, o.attempts FROM outbox o
WHERE o.state = 'pending' AND o.next_at <= ?1 AND o.lease_until <= ?1
  AND o.seq = (SELECT MIN(seq) FROM outbox i WHERE i.conv = o.conv AND i.state = 'pending')
ORDER BY o.seq LIMIT ?2
"""


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.db: sqlite3.Connection | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.executescript(SCHEMA)
        db.execute("UPDATE outbox SET lease_until = 0 WHERE state = 'pending' AND lease_until > 0")
        self.db = db

    async def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self.db is None:
            raise RuntimeError("store is not open")
        return self.db

    # -- turns --------------------------------------------------------------------------------
    async def load(self, conv: str, dedupe_key: str) -> Loaded:
        db = self._db
        if db.execute("SELECT 1 FROM dedupe WHERE key = ?", (dedupe_key,)).fetchone():
            return Loaded(True, None, 0)
        row = db.execute("SELECT version, state FROM conv WHERE id = ?", (conv,)).fetchone()
        if row is None:
            return Loaded(False, None, 0)
        return Loaded(False, json.loads(row[1]), row[0])

    async def commit(self, c: Commit) -> CommitResult:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            try:
                db.execute("INSERT INTO dedupe (key, at) VALUES (?, strftime('%s','now'))",
                           (c.dedupe_key,))
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                return CommitResult.DUPLICATE
            if c.expected_version == 0:
                cur = db.execute("INSERT OR IGNORE INTO conv (id, version, state) VALUES (?, 1, ?)",
                                 (c.conv, c.state))
            else:
                cur = db.execute("UPDATE conv SET version = version + 1, state = ? "
                                 "WHERE id = ? AND version = ?", (c.state, c.conv, c.expected_version))
            if cur.rowcount != 1:
                db.execute("ROLLBACK")
                return CommitResult.CONFLICT
            if c.outbox:
                db.executemany(
                    "INSERT INTO outbox (message_id, conv, body, created) "
                    "VALUES (?, ?, ?, strftime('%s','now'))",
                    [(mid, c.conv, body) for mid, body in c.outbox])
            db.execute("COMMIT")
            return CommitResult.OK
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- outbox -------------------------------------------------------------------------------
    async def claim(self, limit: int, now: float, lease: float) -> list[OutboxItem]:
        db = self._db
        rows = db.execute(CLAIM, (now, limit)).fetchall()
        if not rows:
            return []
        db.executemany("UPDATE outbox SET lease_until = ? WHERE seq = ?",
                       [(now + lease, r[0]) for r in rows])
        return [OutboxItem(str(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def sent(self, item: OutboxItem, now: float) -> None:
        self._db.execute("UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, "
                         "lease_until = 0 WHERE seq = ?", (now, int(item.ref)))

    async def retry(self, item: OutboxItem, next_at: float, error: str) -> None:
        self._db.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ?, lease_until = 0, "
                         "last_error = ? WHERE seq = ?", (next_at, error[:500], int(item.ref)))

    async def give_up(self, item: OutboxItem, now: float, error: str) -> None:
        self._db.execute("UPDATE outbox SET state = 'failed', sent_at = ?, attempts = attempts + 1, "
                         "lease_until = 0, last_error = ? WHERE seq = ?", (now, error[:500], int(item.ref)))

    async def record_status(self, reports: list[StatusReport], now: float) -> None:
        self._db.executemany(
            "UPDATE outbox SET delivery = ?, delivery_at = ?, "
            "last_error = CASE WHEN ? != '' THEN ? ELSE last_error END WHERE message_id = ?",
            [(r.status, now, r.error, r.error[:500], r.message_id) for r in reports])

    async def message(self, message_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT message_id, conv, state, attempts, last_error, delivery, sent_at FROM outbox "
            "WHERE message_id = ?", (message_id,)).fetchone()
        if row is None:
            return None
        keys = ("messageId", "conversation", "state", "attempts", "lastError", "delivery", "sentAt")
        return dict(zip(keys, row, strict=True))

    async def pending(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0])

    async def prune(self, now: float, dedupe_ttl: float, keep_sent: float) -> None:
        db = self._db
        db.execute("DELETE FROM dedupe WHERE at < ?", (now - dedupe_ttl,))
        db.execute("DELETE FROM outbox WHERE state != 'pending' AND sent_at < ?", (now - keep_sent,))
