"""Counters in Redis: the scale-out backend, shared by every server process on one Redis.

Units are taken by a Lua script just before the attempt row's transaction (a script cannot join
a SQLite transaction), keyed by delivery and step; the ledger row then commits with the
attempt row, and a charge a crash left without its row is given back on resume
(`give_back_orphan`). An SMSC may send a receipt to any session of the account, so a receipt
no attempt of this process knows is published for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis import asyncio as aioredis

from infra import redisconn
from infra.outage import log_failure, unavailable
from infra.redispipe import AutoPipeline

from .ledger import LedgerEntry
from .packages import Charge, Package, refused

if TYPE_CHECKING:  # the store imports metering's ledger: no import cycle at run time
    from ..storage import LedgerStore

log = logging.getLogger("mingpian.delivery")
PENDING_TTL = 15.0  # seconds a claimed, unconfirmed call event stays claimed

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


# A package's count raised to the ledger's where Redis counts fewer (it lost charges); never lowered:
# Redis takes a charge before its ledger row is written, so counting more than the ledger is normal.
_FLOOR = """
local raised = 0
for i, field in ipairs({'used', 'overage'}) do
  local have = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  local floor = tonumber(ARGV[i])
  if have < floor then
    redis.call('HSET', KEYS[1], field, floor)
    raised = raised + floor - have
  end
end
return raised
"""
MASTER_CHECK = 2.0  # seconds between looks at which Redis master answers (fanout)


_CLAIM = """
if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[1]) then return 'new' end
return redis.call('GET', KEYS[1])
"""


def _log_failure(fut: asyncio.Future[Any]) -> None:
    exc = fut.exception() if not fut.cancelled() else None
    if exc is not None and unavailable(exc) is None:  # an outage is logged once, not per event
        log.warning("delivery counters: confirming a call event failed: %s", exc)


class RedisCounters:
    """The scale-out counters: shared by every server process on one Redis.

    Every command goes through the shared auto-pipeline (infra/redispipe.py): the
    claims, confirmations and charges of all the calls in flight during one event-loop
    iteration share one round trip, instead of three redis-py round trips per call event.
    Each step that must be atomic is still one command (a Lua script or `SET`)."""

    def __init__(
        self,
        url: str,
        store: LedgerStore | None = None,
        prefix: str = "mp:dl:",
        wait: tuple[int, float] = (0, 0.5),
    ) -> None:
        self.store = store  # where ledger rows go; None for bare counting (tests, tools)
        # A bounded pool that waits for a free connection: a burst of calls queues, it does not fail.
        # One address or the master Sentinel names (infra/redisconn.py).
        pool = redisconn.pool(url, max_connections=32, timeout=10, decode_responses=True)
        self.r = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._run_id = ""  # the Redis master last seen (INFO server's run_id)
        # `wait`: replicas a charge or a cap's count waits for (infra/redispipe.py, durable), so a
        # failover cannot lose a charge that a card was sent for and let the package be spent again.
        self.pipe = AutoPipeline(
            self.r,
            {"claim": _CLAIM, "consume": _CONSUME, "refund": _REFUND, "cap": _CAP, "floor": _FLOOR},
            wait_replicas=wait[0],
            wait_timeout=wait[1],
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
        keys, args = [self.prefix + "cap:" + key], [now, window, limit, member]
        return bool(await self.pipe.script("cap", keys, args, durable=True))

    async def consume(
        self, key: str, packages: list[Package], units: int, entry: LedgerEntry | None = None
    ) -> Charge:
        keys = [self.prefix + "ch:" + key] + [self.prefix + "pkg:" + p.key for p in packages]
        args: list[Any] = [units]
        for p in packages:
            args += [p.units, p.policy]
        ok, idx, taken, over, repeated = await self.pipe.script("consume", keys, args, durable=True)
        if not int(ok):
            return refused(packages)
        p = packages[int(idx) - 1] if packages and 0 < int(idx) <= len(packages) else None
        taken, over = int(taken), int(over)
        cost = (taken * p.unit_price + over * p.overage_price) if p else 0.0
        return Charge(True, p.id if p else None, taken, over, cost, repeated=bool(int(repeated)))

    async def take_before(self, key: str, packages: list[Package], units: int) -> Charge | None:
        return await self.consume(key, packages, units)

    async def take_within(
        self, key: str, packages: list[Package], units: int, entry: LedgerEntry, before: Charge | None
    ) -> Charge:
        charge = before if before is not None else await self.consume(key, packages, units)
        if charge.ok and self.store is not None:
            await self.store.record_charge(key, charge, entry)
        return charge

    async def give_back_orphan(self, key: str) -> None:
        await self.refund(key)

    async def refund(self, key: str, at: float = 0.0) -> bool:
        done = bool(await self.pipe.script("refund", [self.prefix + "ch:" + key], []))
        if self.store is not None:
            await self.store.mark_refunded(key, at)
        return done

    async def usage(self, package: str) -> tuple[int, int]:
        h = await self.r.hgetall(self.prefix + "pkg:" + package)
        return int(h.get("used", 0)), int(h.get("overage", 0))

    # -- receipts that reached the wrong process -------------------------------------------------
    async def forward_receipt(self, message_id: str, stat: str) -> None:
        """An SMSC sends receipts to any session of the account, not the one that submitted:
        a receipt for a message id this process does not know goes to every process."""
        await self.pipe.call("PUBLISH", self.prefix + "receipts", f"{message_id}\x1f{stat}")

    async def forward_wake(self, delivery: str) -> None:
        """A delivery's state changed where its chain may not be waiting: wake it in every process."""
        await self.pipe.call("PUBLISH", self.prefix + "wake", delivery)

    # -- charges Redis lost ----------------------------------------------------------------------
    async def check_master(self) -> int:
        """Raise every package's count back to the ledger's when the Redis answering is not the
        one last seen (a failover to a replica that missed the last charges) or keeps no mark of
        a past check (Redis lost its data: it would count every package from zero); the units
        raised. Cheap when nothing changed: one INFO and one GET."""
        info = await self.r.info("server")
        run_id, mark = str(info.get("run_id", "")), self.prefix + "reconciled"
        changed = run_id != self._run_id and self._run_id != ""
        raised = 0
        if changed or not await self.r.exists(mark):
            raised = await self.reconcile()
            await self.r.set(mark, str(time.time()))
            if raised:
                log.warning(
                    "delivery counters: Redis counted %d units fewer than the ledger (%s); raised "
                    "back to the ledger's, so no package is spent past its units",
                    raised,
                    "a new master" if changed else "its data was lost",
                )
        self._run_id = run_id
        return raised

    async def reconcile(self) -> int:
        """Each package's count in Redis raised to what the ledger charged it, where it is lower;
        the units raised in all. The ledger is read once every charge queued here is written."""
        if self.store is None:
            return 0
        await self.store.durable()
        totals = await self.store.package_totals()
        raised = await asyncio.gather(
            *(
                self.pipe.script("floor", [f"{self.prefix}pkg:{ent}/{pkg}"], [used, over], durable=True)
                for ent, pkg, used, over in totals
            )
        )
        return sum(int(r) for r in raised)

    async def _watch_master(self) -> None:
        while True:
            try:
                await self.check_master()
            except Exception as exc:  # Redis or the database away: looked at again shortly
                log_failure(log, exc, "delivery counters: checking the Redis master failed")
            await asyncio.sleep(MASTER_CHECK)

    async def fanout(
        self, on_receipt: Callable[[str, str], Awaitable[None]], on_wake: Callable[[str], None]
    ) -> None:
        """Feed what other processes forwarded (receipts, wakes) to the handlers until cancelled
        (resubscribes after a hiccup). Meanwhile, watch for a new Redis master (`check_master`)."""
        watch = asyncio.get_running_loop().create_task(self._watch_master(), name="delivery-redis-master")
        try:
            await self._fanout(on_receipt, on_wake)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _fanout(
        self, on_receipt: Callable[[str, str], Awaitable[None]], on_wake: Callable[[str], None]
    ) -> None:
        receipts, wake = self.prefix + "receipts", self.prefix + "wake"
        while True:
            pubsub = self.r.pubsub()
            try:
                await pubsub.subscribe(receipts, wake)
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    if msg.get("channel") == wake:
                        on_wake(str(msg["data"]))
                    else:
                        mid, _, stat = str(msg["data"]).partition("\x1f")
                        await on_receipt(mid, stat)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarted: subscribe again shortly
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def ping(self) -> None:
        """Redis answers, and (with `wait`) replicates what is written: back for charges."""
        await self.r.ping()
        await self.pipe.replicated()

    async def close(self) -> None:
        await self.pipe.drain()
        await self.r.aclose(close_connection_pool=True)
