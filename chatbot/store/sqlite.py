"""The embedded store: one SQLite file in WAL mode, one connection, used from the event loop.

Why on the loop and not in a thread: with WAL and synchronous=NORMAL a commit is a write into
the OS page cache (no fsync; the WAL is synced at checkpoints), less than a thread hop costs. It
also makes load → turn → write run without an await in between, so within one process turns of
a conversation never interleave; the version CAS still guards a second process opening the
same file by mistake.

Group commit: what a turn writes (dedupe row, state CAS, outbox rows) goes into a SAVEPOINT of
the transaction that is open for the current event-loop iteration; the transaction commits once
per iteration (one WAL write for all turns that arrived together, instead of one each), and a
turn's webhook call returns only after that COMMIT. A delivery that finds its dedupe row also
waits for the open transaction, so no platform ever gets a 200 for something not yet durable.
Outbox rows become visible to the sender only after their COMMIT.

Checkpoints: the serving connection never checkpoints (wal_autocheckpoint=0) — a checkpoint
fsyncs the database file, which would stall the event loop for the length of a disk flush.
A thread with its own connection runs a PASSIVE checkpoint every 0.2 s instead, which in WAL
mode runs alongside the writer; small, frequent checkpoints keep each flush short (measured
here: 1 s rounds stalled the writer for up to ~130 ms, 0.2 s rounds for ~25-45 ms).

Durability: a `kill -9` loses nothing committed (the WAL is in the page cache, and SQLite
recovers it on open). A power cut may lose the last transactions with NORMAL; set
MINGPIAN_SQLITE_SYNCHRONOUS=FULL to fsync every commit.

One server process per database file. That is what lets the outbox's queue index live in memory
(rebuilt from the table on open): claiming the due head of each conversation is a pop from a
ready list and a heap of backed-off conversations, not a scan of every pending row, which
matters when a MaaP outage has piled up a backlog. Leases live in memory too (a restart forgets
them). Acknowledgements of sent messages ride in the same per-iteration transaction (a crash
before it commits means a resend under the same message ID, which the MaaP drops).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import sqlite3
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import jsonio
from infra.migrations import Migrations, enable_wal, migrate_sqlite

from ..events import StatusReport
from . import Commit, CommitResult, Loaded, OutboxItem

# The schema: numbered migrations in chatbot/store/migrations/sqlite/, applied by open()
# (infra/migrations.py); the queue index of pending outbox rows lives in memory (see above).
SCHEMA = Migrations.load("chatbot.store", "sqlite", database="chatbot", adopt_if_table="conv")


def _checkpoint(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):  # busy or I/O trouble: the next round tries again
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


LOAD = """
SELECT EXISTS (SELECT 1 FROM dedupe WHERE key = ?1),
       (SELECT version FROM conv WHERE id = ?2), (SELECT state FROM conv WHERE id = ?2)
"""


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL", migrate: str = "auto") -> None:
        """`migrate`: what open() does with pending migrations: auto, check or off."""
        self.path = Path(path)
        self.migrate = migrate
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.db: sqlite3.Connection | None = None
        self._leased: set[int] = set()  # outbox rows in flight (this process is the only sender)
        self._queues: dict[str, deque[int]] = {}  # conv → pending outbox seqs, oldest first
        self._ready: deque[str] = deque()  # convs whose head may be sent now
        self._delayed: list[tuple[float, str]] = []  # heap of (next_at, conv) backing off
        # The open transaction: its completion future, the outbox rows it adds (conv, seqs) and
        # the acknowledgements it applies (seq, conv, retry at / None when the head is done).
        self._tx: asyncio.Future[None] | None = None
        self._tx_new: list[tuple[str, list[int]]] = []
        self._tx_acks: list[tuple[int, str, float | None]] = []
        self.commits = 0
        self.transactions = 0
        self._checkpointer: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def tokens(self) -> None:
        """One process: the MaaP client keeps its tokens itself."""
        return None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            enable_wal(db)
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA temp_store=MEMORY")
            migrate_sqlite(db, SCHEMA, self.migrate)
        except BaseException:
            db.close()
            raise
        db.execute("PRAGMA wal_autocheckpoint=0")
        self.db = db
        self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoints())
        first_due: dict[str, float] = {}
        for seq, conv, next_at in db.execute(
            "SELECT seq, conv, next_at FROM outbox WHERE state = 'pending' ORDER BY seq"
        ):
            q = self._queues.setdefault(conv, deque())
            if not q:
                first_due[conv] = next_at
            q.append(seq)
        for conv, next_at in first_due.items():
            heapq.heappush(self._delayed, (next_at, conv))

    async def _checkpoints(self, every: float = 0.2) -> None:
        side = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        side.execute("PRAGMA busy_timeout=1000")
        job: asyncio.Future[None] | None = None
        try:
            while True:
                await asyncio.sleep(every)
                job = asyncio.ensure_future(asyncio.to_thread(_checkpoint, side))
                await asyncio.shield(job)
        finally:
            if job is not None and not job.done():
                await asyncio.wait([job])  # never close the connection under a running checkpoint
            side.close()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        self._commit_now()
        if self.db is not None:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.db.close()
            self.db = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self.db is None:
            raise RuntimeError("store is not open")
        return self.db

    # -- the per-iteration transaction ----------------------------------------------------------
    def _begin(self) -> asyncio.Future[None]:
        if self._tx is None:
            self._db.execute("BEGIN IMMEDIATE")
            loop = asyncio.get_running_loop()
            self._tx = loop.create_future()
            loop.call_soon(self._commit_now)
        return self._tx

    def _abort(self, exc: BaseException) -> None:
        """Roll back the open transaction; every turn waiting on it gets the error."""
        tx, self._tx = self._tx, None
        acks, self._tx_acks = self._tx_acks, []
        self._tx_new = []
        if self.db is not None and self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._leased.difference_update(seq for seq, _, _ in acks)
        if tx is not None and not tx.done():
            tx.set_exception(exc)
            tx.exception()

    def _commit_now(self) -> None:
        tx, self._tx = self._tx, None
        if tx is None:
            return
        new, self._tx_new = self._tx_new, []
        acks, self._tx_acks = self._tx_acks, []
        db = self._db
        try:
            db.execute("COMMIT")
        except Exception as exc:  # disk full, I/O error: nothing of this transaction happened
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._leased.difference_update(seq for seq, _, _ in acks)
            if not tx.done():
                tx.set_exception(exc)
                tx.exception()  # retrieved here too, so an unawaited future never warns
            return
        self.transactions += 1
        for conv, seqs in new:
            q = self._queues.setdefault(conv, deque())
            if not q:
                self._ready.append(conv)
            q.extend(seqs)
        for seq, conv, retry_at in acks:
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
        if not tx.done():
            tx.set_result(None)

    # -- turns --------------------------------------------------------------------------------
    async def load(self, conv: str, dedupe_key: str) -> Loaded:
        seen, version, state = self._db.execute(LOAD, (dedupe_key, conv)).fetchone()
        if seen:
            if self._tx is not None:
                await asyncio.shield(self._tx)  # the record may be in the open transaction
            return Loaded(True, None, 0)
        if version is None:
            return Loaded(False, None, 0)
        return Loaded(False, jsonio.loads(state), version)

    async def commit(self, c: Commit) -> CommitResult:
        # No SAVEPOINT (two statements per turn saved): a failed dedupe insert writes nothing,
        # a failed CAS is undone by deleting the dedupe row, and any other failure aborts the
        # whole open transaction — whose turns are all still waiting for their COMMIT, so every
        # one of them answers an error and the platform retries them.
        db = self._db
        tx = self._begin()
        try:
            try:
                db.execute("INSERT INTO dedupe (key, at) VALUES (?, strftime('%s','now'))", (c.dedupe_key,))
            except sqlite3.IntegrityError:
                await asyncio.shield(tx)
                return CommitResult.DUPLICATE
            if c.expected_version == 0:
                cur = db.execute(
                    "INSERT OR IGNORE INTO conv (id, version, state) VALUES (?, 1, ?)", (c.conv, c.state)
                )
            else:
                cur = db.execute(
                    "UPDATE conv SET version = version + 1, state = ? WHERE id = ? AND version = ?",
                    (c.state, c.conv, c.expected_version),
                )
            if cur.rowcount != 1:
                db.execute("DELETE FROM dedupe WHERE key = ?", (c.dedupe_key,))
                return CommitResult.CONFLICT
            seqs = [
                int(
                    db.execute(
                        "INSERT INTO outbox (message_id, conv, body, created) "
                        "VALUES (?, ?, ?, strftime('%s','now'))",
                        (mid, c.conv, body),
                    ).lastrowid
                    or 0
                )
                for mid, body in c.outbox
            ]
        except sqlite3.Error as exc:
            self._abort(exc)
            raise
        if seqs:
            self._tx_new.append((c.conv, seqs))
        self.commits += 1
        await asyncio.shield(tx)  # the webhook answers only once this is durable
        return CommitResult.OK

    # -- outbox -------------------------------------------------------------------------------
    async def claim(self, limit: int, now: float, lease: float) -> list[OutboxItem]:
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
        rows = self._db.execute(
            f"SELECT seq, message_id, conv, body, attempts FROM outbox WHERE seq IN ({marks}) ORDER BY seq",
            heads,
        ).fetchall()
        return [OutboxItem(str(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def _ack(self, sql: str, params: tuple[Any, ...], item: OutboxItem, retry_at: float | None) -> None:
        self._begin()
        self._db.execute(sql, params)
        self._tx_acks.append((int(item.ref), item.conv, retry_at))

    async def sent(self, item: OutboxItem, now: float) -> None:
        self._ack(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
            (now, int(item.ref)),
            item,
            None,
        )

    async def retry(self, item: OutboxItem, next_at: float, error: str) -> None:
        self._ack(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE seq = ?",
            (next_at, error[:500], int(item.ref)),
            item,
            next_at,
        )

    async def give_up(self, item: OutboxItem, now: float, error: str) -> None:
        self._ack(
            "UPDATE outbox SET state = 'failed', sent_at = ?, attempts = attempts + 1, "
            "last_error = ? WHERE seq = ?",
            (now, error[:500], int(item.ref)),
            item,
            None,
        )

    async def record_status(self, reports: list[StatusReport], now: float, bot: str) -> None:
        self._begin()
        self._db.executemany(
            "UPDATE outbox SET delivery = ?, delivery_at = ?, "
            "last_error = CASE WHEN ? != '' THEN ? ELSE last_error END "
            "WHERE message_id = ? AND substr(conv, 1, ?) = ?",
            [
                (r.status, now, r.error, r.error[:500], r.message_id, len(bot) + 1, bot + "\x1f")
                for r in reports
            ],
        )
        await asyncio.shield(self._begin())

    def forget_user(self, user: str) -> None:
        """Drop every conversation of one user (conversation keys end with "\\x1f<user>"): the
        studio's preview store forgets an expired browser session's conversations."""
        self._begin()
        self._db.execute("DELETE FROM conv WHERE substr(id, -?) = ?", (len(user) + 1, "\x1f" + user))

    async def first_nonce(self, key: str, now: float, keep: float) -> bool:
        """True the first time `key` is seen within `keep` seconds (committed with the request's
        turn, in the same group transaction)."""
        self._begin()
        db = self._db
        db.execute("DELETE FROM nonces WHERE key = ? AND until < ?", (key, now))
        return db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?)", (key, now + keep)).rowcount > 0

    async def message(self, message_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT message_id, conv, state, attempts, last_error, delivery, sent_at FROM outbox "
            "WHERE message_id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        keys = ("messageId", "conversation", "state", "attempts", "lastError", "delivery", "sentAt")
        return dict(zip(keys, row, strict=True))

    async def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    # -- media hosted on a platform ------------------------------------------------------------
    async def hosted(self, platform: str, digest: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT record FROM hosted_media WHERE platform = ? AND digest = ?", (platform, digest)
        ).fetchone()
        return jsonio.loads(row[0]) if row else None

    async def put_hosted(
        self, platform: str, digest: str, record: dict[str, Any], until: float, refs: tuple[str, ...] = ()
    ) -> None:
        self._begin()
        self._db.execute(
            "INSERT OR REPLACE INTO hosted_media (platform, digest, record, until) VALUES (?, ?, ?, ?)",
            (platform, digest, jsonio.dumps_str(record), until),
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO hosted_refs (ref, platform, digest, until) VALUES (?, ?, ?, ?)",
            [(ref, platform, digest, until) for ref in refs],
        )
        await asyncio.shield(self._begin())

    async def hosted_ref(self, ref: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT platform, digest FROM hosted_refs WHERE ref = ?", (ref,)).fetchone()
        return (row[0], row[1]) if row else None

    async def update_hosted(
        self, platform: str, digest: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read, change and write with no await between: atomic in the one process."""
        row = self._db.execute(
            "SELECT record FROM hosted_media WHERE platform = ? AND digest = ?", (platform, digest)
        ).fetchone()
        if row is None:
            return None
        record: dict[str, Any] = jsonio.loads(row[0])
        new = change(record)
        if new is None:
            return record
        self._begin()
        self._db.execute(
            "UPDATE hosted_media SET record = ?, until = ? WHERE platform = ? AND digest = ?",
            (jsonio.dumps_str(new), float(new.get("until") or 0), platform, digest),
        )
        await asyncio.shield(self._begin())
        return new

    # -- the chatbot's information on its platform ----------------------------------------------
    async def bot_info(self, platform: str, chatbot: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT record FROM bot_info WHERE platform = ? AND chatbot = ?", (platform, chatbot)
        ).fetchone()
        return jsonio.loads(row[0]) if row else None

    async def update_bot_info(
        self,
        platform: str,
        chatbot: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> tuple[dict[str, Any] | None, bool]:
        """Read, change and write with no await between: atomic in the one process."""
        record = await self.bot_info(platform, chatbot)
        new = change(record)
        if new is None:
            return record, False
        self._begin()
        self._db.execute(
            "INSERT OR REPLACE INTO bot_info (platform, chatbot, record) VALUES (?, ?, ?)",
            (platform, chatbot, jsonio.dumps_str(new)),
        )
        await asyncio.shield(self._begin())
        return new, True

    async def host_claim(self, platform: str, digest: str, ttl: float) -> str | None:
        """One process per file: the caller's in-process lock is the whole claim."""
        return "local"

    async def host_release(self, platform: str, digest: str, owner: str) -> None:
        return None

    async def prune(self, now: float, dedupe_ttl: float, keep_sent: float) -> None:
        self._begin()
        self._db.execute("DELETE FROM hosted_media WHERE until > 0 AND until < ?", (now,))
        self._db.execute("DELETE FROM hosted_refs WHERE until > 0 AND until < ?", (now,))
        db = self._db
        db.execute("DELETE FROM dedupe WHERE at < ?", (now - dedupe_ttl,))
        db.execute("DELETE FROM nonces WHERE until < ?", (now,))
        db.execute("DELETE FROM outbox WHERE state != 'pending' AND sent_at < ?", (now - keep_sent,))
