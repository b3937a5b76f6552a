"""The submit rate of one SMSC account: at most `rate` submit_sm per second for the whole
account, however many server processes and sessions send on it.

Two implementations behind one protocol, like the metering counters: `LocalRate` in the
process (SQLite deployments: one process) and `RedisRate`, shared by every process on one
Redis. Both are the same cell-rate algorithm (GCRA) with a burst of one: each submit reserves
the next free slot, one every 1/rate s, and waits for it. Spaced evenly, no one-second window
the SMSC may count holds more than `rate` submits. A slot further away than the caller's bound
is not taken: the caller hands the attempt back (retryable) rather than queue without end.

Why here and not beside the metering counters in Redis: this is the SMPP account's limit, not
an enterprise's quota; the Redis one only borrows a connection, through the same auto-pipeline
(infra/redispipe.py) as the counters, so the gateways depend on `infra` and not on metering.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from infra.redispipe import AutoPipeline


class SubmitRate(Protocol):
    rate: float  # submits per second for the account; 0: unlimited

    async def acquire(self, wait: float) -> bool:
        """Wait for this submit's slot: True once it is due, False (nothing taken) if the next
        free slot is more than `wait` seconds away."""
        ...


class LocalRate:
    """The account's rate in this process: a slot every 1/rate s."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0  # time.monotonic() of the next free slot

    async def acquire(self, wait: float) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        slot = max(self._next, now)
        if slot - now > wait:
            return False
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)
        return True


# KEYS[1]: the account's next free slot (µs, Redis server time). ARGV: interval µs, longest wait
# µs. Answers the wait in µs for a slot taken, or -1 (nothing taken) when it is too far away.
# The server's clock is the one clock every process shares; TIME before a write is fine since
# Redis replicates a script's effects (5.0+ by default, 7.0 always).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local wait = slot - now
if wait > tonumber(ARGV[2]) then return -1 end
local nxt = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
return math.floor(wait)
"""


class RedisRate:
    """The account's rate shared by every process on one Redis: one script call per submit
    (batched with whatever else the pipeline carries in that event-loop iteration) reserves
    the slot, then the caller sleeps until it."""

    def __init__(self, pipe: AutoPipeline, key: str, rate: float) -> None:
        self.pipe = pipe
        self.key = key
        self.rate = rate
        pipe.add_script("smpp_rate", _RESERVE)

    async def acquire(self, wait: float) -> bool:
        if self.rate <= 0:
            return True
        interval = round(1_000_000 / self.rate)
        waited = int(await self.pipe.script("smpp_rate", [self.key], [interval, round(wait * 1_000_000)]))
        if waited < 0:
            return False
        if waited > 0:
            await asyncio.sleep(waited / 1_000_000)
        return True
