"""The embedded store: one SQLite file in WAL mode, one connection, used from the event loop.

Why on the loop and not in a thread: with WAL and synchronous=NORMAL a commit is a write into
the OS page cache (no fsync; the WAL is synced at checkpoints), i.e. tens of microseconds, less
than a thread hop costs. It also makes load → turn → commit run without an await in between, so
within one process turns of a conversation can never interleave; the version CAS in `commit`
still guards a second process opening the same file by mistake.

Durability: a `kill -9` loses nothing committed (the WAL is in the page cache, and SQLite
recovers it on open). A power cut may lose the last transactions with NORMAL; set
MINGPIAN_SQLITE_SYNCHRONOUS=FULL to fsync every commit.
One server process per database file. That is what lets the outbox's queue index live in memory
(rebuilt from the table on open): claiming the due head of each conversation is then a pop from
a ready list and a heap of backed-off conversations, not a scan of every pending row, which
matters when a MaaP outage has piled up a backlog. Leases live in memory too (a restart forgets
them), and acknowledgements of sent messages are applied in one transaction per event-loop iteration
(a crash in between means a resend under the same message ID, which the MaaP drops).
"""

from __future__ import annotations

import asyncio
import heapq
import sqlite3
from collections import deque
from pathlib import Path
from typing import Any

import orjson

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



class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.db: sqlite3.Connection | None = None
        self._leased: set[int] = set()  # outbox rows in flight (this process is the only sender)
        self._queues: dict[str, deque[int]] = {}  # conv → pending outbox seqs, oldest first
        self._ready: deque[str] = deque()  # convs whose head may be sent now
        self._delayed: list[tuple[float, str]] = []  # heap of (next_at, conv) backing off
        # (sql, params, seq, conv, retry at or None when the head is done) to apply
        self._acks: list[tuple[str, tuple[Any, ...], int, str, float | None]] = []
        self._flush_pending = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA temp_store=MEMORY")
        db.executescript(SCHEMA)
        self.db = db
        now_due: dict[str, float] = {}
        for seq, conv, next_at in db.execute(
                "SELECT seq, conv, next_at FROM outbox WHERE state = 'pending' ORDER BY seq"):
            q = self._queues.setdefault(conv, deque())
            if not q:
                now_due[conv] = next_at
            q.append(seq)
        for conv, next_at in now_due.items():
            heapq.heappush(self._delayed, (next_at, conv))

    async def close(self) -> None:
        self._flush()
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
        return Loaded(False, orjson.loads(row[1]), row[0])

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
            seqs = [db.execute("INSERT INTO outbox (message_id, conv, body, created) "
                               "VALUES (?, ?, ?, strftime('%s','now'))", (mid, c.conv, body)).lastrowid
                    for mid, body in c.outbox]
            db.execute("COMMIT")
            if seqs:
                q = self._queues.setdefault(c.conv, deque())
                if not q:
                    self._ready.append(c.conv)
                q.extend(s for s in seqs if s is not None)
            return CommitResult.OK
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- outbox -------------------------------------------------------------------------------
    async def claim(self, limit: int, now: float, lease: float) -> list[OutboxItem]:
        self._flush()
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[1])
        heads: list[int] = []
        while self._ready and len(heads) < limit:
            q = self._queues.get(self._ready.popleft())
            if q and q[0] not in self._leased:
                heads.append(q[0])
        if not heads:
            return []
        self._leased.update(heads)
        marks = ",".join("?" * len(heads))
        rows = self._db.execute(f"SELECT seq, message_id, conv, body, attempts FROM outbox "
                                f"WHERE seq IN ({marks}) ORDER BY seq", heads).fetchall()
        return [OutboxItem(str(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def _ack(self, sql: str, params: tuple[Any, ...], seq: int, conv: str, retry_at: float | None) -> None:
        self._acks.append((sql, params, seq, conv, retry_at))
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._acks or self.db is None:
            return
        acks, self._acks = self._acks, []
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params, *_ in acks:
                db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._leased.difference_update(a[2] for a in acks)
            raise
        for _, _, seq, conv, retry_at in acks:
            self._leased.discard(seq)
            q = self._queues.get(conv)
            if retry_at is not None:
                heapq.heappush(self._delayed, (retry_at, conv))
                continue
            if q and q[0] == seq:
                q.popleft()
            if q:
                self._ready.append(conv)
            else:
                self._queues.pop(conv, None)

    async def sent(self, item: OutboxItem, now: float) -> None:
        self._ack("UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
                  (now, int(item.ref)), int(item.ref), item.conv, None)

    async def retry(self, item: OutboxItem, next_at: float, error: str) -> None:
        self._ack("UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE seq = ?",
                  (next_at, error[:500], int(item.ref)), int(item.ref), item.conv, next_at)

    async def give_up(self, item: OutboxItem, now: float, error: str) -> None:
        self._ack("UPDATE outbox SET state = 'failed', sent_at = ?, attempts = attempts + 1, "
                  "last_error = ? WHERE seq = ?", (now, error[:500], int(item.ref)), int(item.ref), item.conv,
                  None)

    async def record_status(self, reports: list[StatusReport], now: float) -> None:
        self._flush()
        self._db.executemany(
            "UPDATE outbox SET delivery = ?, delivery_at = ?, "
            "last_error = CASE WHEN ? != '' THEN ? ELSE last_error END WHERE message_id = ?",
            [(r.status, now, r.error, r.error[:500], r.message_id) for r in reports])

    async def message(self, message_id: str) -> dict[str, Any] | None:
        self._flush()
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
