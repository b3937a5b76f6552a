"""Packages, pools and the counters that must be atomic: quota consumption, frequency caps and
call-event dedupe, with a SQLite and a Redis implementation behind one interface.

Consumption happens when a message is handed to the gateway (so two concurrent calls can never
both take the last unit) and is refunded when that attempt fails or times out: what remains
charged is exactly what was delivered. Every charge is keyed by its attempt, so a retried
charge or a redelivered receipt never charges twice.

- SQLite: one `BEGIN IMMEDIATE` transaction per consumption; atomic across processes sharing
  the file too.
- Redis: a Lua script checks and takes units from the first package with room, in one step on
  the server, so several server processes on one Redis never overspend a shared pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .store import DeliveryStore

log = logging.getLogger("mingpian.delivery")
PENDING_TTL = 15.0  # seconds a claimed, unconfirmed call event stays claimed
DEFAULT_UNITS = {"rcs": 1, "ussd": 1, "flash": 1, "sms": 1}  # SMS: per segment
CN = timedelta(hours=8)

SCHEMA = """
CREATE TABLE IF NOT EXISTS package_usage (package TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0,
    overage INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, enterprise TEXT NOT NULL, package TEXT,
    line TEXT NOT NULL, channel TEXT NOT NULL, units INTEGER NOT NULL, overage INTEGER NOT NULL,
    cost REAL NOT NULL, day TEXT NOT NULL, at REAL NOT NULL, refunded INTEGER NOT NULL DEFAULT 0)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS caps (key TEXT NOT NULL, at REAL NOT NULL, member TEXT NOT NULL,
    PRIMARY KEY (key, member)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Package:
    id: str
    enterprise: str
    units: int
    policy: str  # stop | overage
    unit_price: float  # package price / units: what a unit inside the package costs
    overage_price: float

    @classmethod
    def from_json(cls, enterprise: str, d: dict[str, Any]) -> Package:
        units = int(d["units"])
        return cls(
            d["id"],
            enterprise,
            units,
            d.get("policy", "stop"),
            float(d.get("price", 0.0)) / units if units else 0.0,
            float(d.get("overage_price", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Charge:
    ok: bool
    package: str | None = None
    units: int = 0
    overage: int = 0
    cost: float = 0.0
    reason: str = ""
    repeated: bool = False


def day_of(t: float) -> str:
    return (datetime.fromtimestamp(t, UTC) + CN).strftime("%Y-%m-%d")


def applicable(store: DeliveryStore, enterprise: str, line: str, now: float) -> tuple[list[Package], bool]:
    """The packages that may pay for a message from `line`, in spending order (the line's own
    packages, then pools), and whether the enterprise is metered at all (has any package)."""
    docs = store.list("package", enterprise)
    valid = [
        d
        for d in docs
        if d["valid_from"] <= now < d["valid_to"] and (not d.get("lines") or line in d["lines"])
    ]
    valid.sort(key=lambda d: (d.get("kind", "pool") != "line", d["valid_to"], d["id"]))
    return [Package.from_json(enterprise, d) for d in valid], bool(docs)


def units_for(package_doc: dict[str, Any] | None, channel: str, segments: int) -> int:
    per = (package_doc or {}).get("unit_cost", {}).get(channel, DEFAULT_UNITS.get(channel, 1))
    return per * (segments if channel in ("sms", "flash") else 1)


class Counters(Protocol):
    name: str

    async def claim(self, key: str, ttl: float) -> str: ...
    def confirm(self, key: str, ttl: float) -> None: ...
    async def cap(self, key: str, limit: int, window: float, member: str, now: float) -> bool: ...
    async def consume(
        self, key: str, packages: list[Package], units: int, ledger: tuple[Any, ...] | None = None
    ) -> Charge: ...
    async def refund(self, key: str) -> bool: ...
    async def usage(self, package: str) -> tuple[int, int]: ...
    async def close(self) -> None: ...


class SqliteCounters:
    name = "sqlite"

    def __init__(self, store: DeliveryStore) -> None:
        self.store = store
        self._rows: set[str] = set()  # package_usage rows known to exist
        store.db.executescript(SCHEMA)

    async def claim(self, key: str, ttl: float) -> str:
        """One process per file: a claim is final at once ("new" or "done")."""
        now = time.time()
        with self.store.tx() as db:
            db.execute("DELETE FROM dedupe WHERE key=? AND until < ?", (key, now))
            new = db.execute("INSERT OR IGNORE INTO dedupe VALUES (?,?)", (key, now + ttl)).rowcount > 0
        return "new" if new else "done"

    def confirm(self, key: str, ttl: float) -> None:
        pass

    async def cap(self, key: str, limit: int, window: float, member: str, now: float) -> bool:
        with self.store.tx() as db:
            db.execute("DELETE FROM caps WHERE key=? AND at <= ?", (key, now - window))
            if db.execute("SELECT 1 FROM caps WHERE key=? AND member=?", (key, member)).fetchone():
                return True
            (n,) = db.execute("SELECT count(*) FROM caps WHERE key=?", (key,)).fetchone()
            if n >= limit:
                return False
            db.execute("INSERT INTO caps VALUES (?,?,?)", (key, now, member))
            return True

    async def consume(
        self, key: str, packages: list[Package], units: int, ledger: tuple[Any, ...] | None = None
    ) -> Charge:
        with self.store.tx() as db:
            row = db.execute(
                "SELECT package, units, overage, refunded FROM charges WHERE key=?", (key,)
            ).fetchone()
            if row and not row[3]:
                return Charge(True, row[0], row[1], row[2], repeated=True)
            charge = None
            for p in packages:
                if _pk(p) not in self._rows:
                    db.execute("INSERT OR IGNORE INTO package_usage (package) VALUES (?)", (_pk(p),))
                    self._rows.add(_pk(p))
                took = db.execute(
                    "UPDATE package_usage SET used = used + ? WHERE package=? AND used + ? <= ?",
                    (units, _pk(p), units, p.units),
                ).rowcount
                if took:
                    charge = Charge(True, p.id, units, 0, units * p.unit_price)
                    break
            else:
                for p in packages:
                    if p.policy == "overage":
                        db.execute(
                            "UPDATE package_usage SET overage = overage + ? WHERE package=?", (units, _pk(p))
                        )
                        charge = Charge(True, p.id, 0, units, units * p.overage_price)
                        break
            if charge is not None:
                if ledger is not None:  # the ledger row commits with the consumption, or neither does
                    _ledger(db, key, charge, ledger)
                return charge
        return Charge(False, reason="package used up" if packages else "no valid package for this line")

    async def refund(self, key: str) -> bool:
        with self.store.tx() as db:
            row = db.execute(
                "SELECT enterprise, package, units, overage, refunded FROM charges WHERE key=?", (key,)
            ).fetchone()
            if not row or row[4]:
                return False
            if row[1] is not None:
                db.execute(
                    "UPDATE package_usage SET used = used - ?, overage = overage - ? WHERE package=?",
                    (row[2], row[3], f"{row[0]}/{row[1]}"),
                )
            db.execute("UPDATE charges SET refunded = 1 WHERE key=?", (key,))
            return True

    async def usage(self, package: str) -> tuple[int, int]:
        row = self.store.db.execute(
            "SELECT used, overage FROM package_usage WHERE package=?", (package,)
        ).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    async def close(self) -> None:
        pass


def _ledger(db: Any, key: str, charge: Charge, ledger: tuple[Any, ...]) -> None:
    enterprise, line, channel, day, at = ledger
    db.execute(
        "INSERT OR REPLACE INTO charges VALUES (?,?,?,?,?,?,?,?,?,?,0)",
        (key, enterprise, charge.package, line, channel, charge.units, charge.overage, charge.cost, day, at),
    )


def _pk(p: Package) -> str:
    return f"{p.enterprise}/{p.id}"


_CONSUME = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'consumed' then
  return {1, redis.call('HGET', KEYS[1], 'idx'), redis.call('HGET', KEYS[1], 'units'),
          redis.call('HGET', KEYS[1], 'over'), 1}
end
local units = tonumber(ARGV[1])
local n = #KEYS - 1
for i = 1, n do
  local used = tonumber(redis.call('HGET', KEYS[i + 1], 'used') or '0')
  if used + units <= tonumber(ARGV[2 * i]) then
    redis.call('HINCRBY', KEYS[i + 1], 'used', units)
    redis.call('HSET', KEYS[1], 'state', 'consumed', 'idx', i, 'pkg', KEYS[i + 1], 'units', units, 'over', 0)
    redis.call('EXPIRE', KEYS[1], 2592000)
    return {1, i, units, 0, 0}
  end
end
for i = 1, n do
  if ARGV[2 * i + 1] == 'overage' then
    redis.call('HINCRBY', KEYS[i + 1], 'overage', units)
    redis.call('HSET', KEYS[1], 'state', 'consumed', 'idx', i, 'pkg', KEYS[i + 1], 'units', 0, 'over', units)
    redis.call('EXPIRE', KEYS[1], 2592000)
    return {1, i, 0, units, 0}
  end
end
return {0, 0, 0, 0, 0}
"""
_REFUND = """
if redis.call('HGET', KEYS[1], 'state') ~= 'consumed' then return 0 end
local pkg = redis.call('HGET', KEYS[1], 'pkg')
redis.call('HINCRBY', pkg, 'used', 0 - tonumber(redis.call('HGET', KEYS[1], 'units')))
redis.call('HINCRBY', pkg, 'overage', 0 - tonumber(redis.call('HGET', KEYS[1], 'over')))
redis.call('HSET', KEYS[1], 'state', 'refunded')
return 1
"""
_CAP = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""


_CLAIM = """
if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[1]) then return 'new' end
return redis.call('GET', KEYS[1])
"""


def _log_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("delivery counters: confirming a call event failed: %s", fut.exception())


class RedisCounters:
    """The scale-out counters: shared by every server process on one Redis.

    Every command goes through the chatbot store's auto-pipeline (chatbot/redispipe.py): the
    claims, confirmations and charges of all the calls in flight during one event-loop
    iteration share one round trip, instead of three redis-py round trips per call event.
    Each step that must be atomic is still one command (a Lua script or `SET`)."""

    name = "redis"

    def __init__(self, url: str, prefix: str = "mp:dl:") -> None:
        from redis import asyncio as aioredis

        from chatbot.redispipe import AutoPipeline

        # A bounded pool that waits for a free connection: a burst of calls queues, it does not fail.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=32, timeout=10, decode_responses=True
        )
        self.r = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self.pipe = AutoPipeline(
            self.r, {"claim": _CLAIM, "consume": _CONSUME, "refund": _REFUND, "cap": _CAP}
        )

    async def claim(self, key: str, ttl: float, wait: float = 2.0) -> str:
        """Claim a call event across processes: "new" (ours: accept it, then `confirm`), "done"
        (a duplicate), or "pending" (another process took it and has not confirmed within
        `wait` s: the caller answers "retry"). The claim itself expires after PENDING_TTL, so a
        process dying between claim and commit does not lose the event for good. One script:
        SET NX, else the current state, in one round trip."""
        keys = [self.prefix + "dd:" + key]
        end = time.monotonic() + wait
        while True:
            state = await self.pipe.script("claim", keys, [int(PENDING_TTL * 1000)])
            if state in ("new", "done"):
                return str(state)
            if time.monotonic() >= end:
                return "pending"
            await asyncio.sleep(0.02)

    def confirm(self, key: str, ttl: float) -> None:
        """Mark a claimed event "done" (its commit is durable). Queued into this loop iteration's
        pipeline, not awaited: it reaches Redis together with the 202, so the window in which a
        crash leaves only the "pending" claim is what it was when the answer waited for it, but
        the answer no longer pays a round trip. A repeat arriving at another process meanwhile
        sees "pending" and waits for "done" (see `claim`)."""
        fut = self.pipe.call("SET", self.prefix + "dd:" + key, "done", "PX", int(ttl * 1000))
        fut.add_done_callback(_log_failure)

    async def cap(self, key: str, limit: int, window: float, member: str, now: float) -> bool:
        return bool(await self.pipe.script("cap", [self.prefix + "cap:" + key], [now, window, limit, member]))

    async def consume(
        self, key: str, packages: list[Package], units: int, ledger: tuple[Any, ...] | None = None
    ) -> Charge:
        keys = [self.prefix + "ch:" + key] + [self.prefix + "pkg:" + _pk(p) for p in packages]
        args: list[Any] = [units]
        for p in packages:
            args += [p.units, p.policy]
        ok, idx, taken, over, repeated = await self.pipe.script("consume", keys, args)
        if not int(ok):
            return Charge(False, reason="package used up" if packages else "no valid package for this line")
        p = packages[int(idx) - 1] if packages and 0 < int(idx) <= len(packages) else None
        taken, over = int(taken), int(over)
        cost = (taken * p.unit_price + over * p.overage_price) if p else 0.0
        return Charge(True, p.id if p else None, taken, over, cost, repeated=bool(int(repeated)))

    async def refund(self, key: str) -> bool:
        return bool(await self.pipe.script("refund", [self.prefix + "ch:" + key], []))

    async def usage(self, package: str) -> tuple[int, int]:
        h = await self.r.hgetall(self.prefix + "pkg:" + package)
        return int(h.get("used", 0)), int(h.get("overage", 0))

    # -- receipts that reached the wrong process -------------------------------------------------
    async def forward_receipt(self, message_id: str, stat: str) -> None:
        """An SMSC sends receipts to any session of the account, not the one that submitted:
        a receipt for a message id this process does not know goes to every process."""
        await self.pipe.call("PUBLISH", self.prefix + "receipts", f"{message_id}\x1f{stat}")

    async def receipts(self, handle: Callable[[str, str], None]) -> None:
        """Feed forwarded receipts to `handle` until cancelled (resubscribes after a hiccup)."""
        while True:
            pubsub = self.r.pubsub()
            try:
                await pubsub.subscribe(self.prefix + "receipts")
                async for msg in pubsub.listen():
                    if msg.get("type") == "message":
                        mid, _, stat = str(msg["data"]).partition("\x1f")
                        handle(mid, stat)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarted: subscribe again shortly
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        await self.pipe.drain()
        await self.r.aclose(close_connection_pool=True)


class Meter:
    """Charges and refunds per attempt, with the ledger (for reports) in the local SQLite."""

    def __init__(self, store: DeliveryStore, counters: Counters) -> None:
        self.store = store
        self.counters = counters
        store.db.executescript(SCHEMA)

    async def charge(
        self, key: str, enterprise: str, line: str, channel: str, segments: int, now: float,
        *, record: bool = True,
    ) -> Charge:
        """Take the units of one attempt. `record=False`: the caller writes the ledger row with
        `record` itself, in the transaction of its attempt row (Redis counters)."""
        packages, metered = applicable(self.store, enterprise, line, now)
        if not metered:  # an enterprise without packages is not metered (e.g. a trial)
            return Charge(True, reason="unmetered")
        doc = self.store.get("package", enterprise, packages[0].id) if packages else None
        units = units_for(doc, channel, segments)
        ledger = (enterprise, line, channel, day_of(now), now)
        charge = await self.counters.consume(key, packages, units, ledger)
        if record:
            self.record(key, charge, enterprise, line, channel, now)
        return charge

    def record(self, key: str, charge: Charge, enterprise: str, line: str, channel: str, now: float) -> None:
        """The ledger row (for reports) of a charge taken in Redis; SqliteCounters writes its own
        in the consumption's transaction. A repeated charge (taken before a crash, found again
        under the same key) rewrites the same row."""
        if charge.ok and charge.reason != "unmetered" and self.counters.name != "sqlite":
            _ledger(self.store.db, key, charge, (enterprise, line, channel, day_of(now), now))

    async def refund(self, key: str) -> bool:
        done = await self.counters.refund(key)
        if self.counters.name != "sqlite":  # SqliteCounters flags the ledger row itself
            self.store.db.execute("UPDATE charges SET refunded = 1 WHERE key=?", (key,))
        return done

    async def balances(self, enterprise: str) -> list[dict[str, Any]]:
        out = []
        for d in self.store.list("package", enterprise):
            used, over = await self.counters.usage(f"{enterprise}/{d['id']}")
            out.append(
                {
                    "id": d["id"],
                    "kind": d.get("kind", "pool"),
                    "units": d["units"],
                    "used": used,
                    "remaining": max(0, d["units"] - used),
                    "overage": over,
                    "policy": d.get("policy", "stop"),
                    "valid_from": d["valid_from"],
                    "valid_to": d["valid_to"],
                }
            )
        return out

    def usage(self, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]:
        cols = [c for c in by if c in ("day", "line", "channel", "package")] or ["day"]
        sel = ", ".join(cols)
        rows = self.store.db.execute(
            f"SELECT {sel}, count(*), sum(units), sum(overage), round(sum(cost), 4) FROM charges "
            f"WHERE enterprise=? AND refunded=0 GROUP BY {sel} ORDER BY {sel}",
            (enterprise,),
        )
        return [
            {
                **dict(zip(cols, r[: len(cols)], strict=True)),
                "messages": r[len(cols)],
                "units": r[len(cols) + 1],
                "overage_units": r[len(cols) + 2],
                "cost": r[len(cols) + 3],
            }
            for r in rows
        ]


def to_csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
