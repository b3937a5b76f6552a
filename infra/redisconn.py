"""Where every Redis pool of the project gets its connections: one server named by its address
(`redis://host:port/db`, `rediss://…`, `unix://…`), or the master that a set of Redis Sentinels
names (`redis+sentinel://host1:26379,host2:26379/<master name>/<db>`), so that a failover moves
the whole fleet to the promoted replica without anyone editing a setting.

Why one function: the pools (delivery counters, chatbot store, media store, readiness probe)
differ in size only; the choice between one address and Sentinel, and the timeouts, are made
here once. With Sentinel, each new connection asks the sentinels where the master is, so a
connection dropped by a failover (the old master died, or answered READONLY after it was demoted,
which redis-py turns into a connection error) reconnects to the new master; until the sentinels
have promoted one, the callers get a connection error, which the server answers 503 (an outage,
infra/outage.py).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from .redispipe import SOCKET_TIMEOUTS
from .redisurl import is_sentinel, parse_sentinel_url

# A sentinel that does not answer is skipped after this long (the next one is asked): short, since
# a sentinel answers from memory, and every new connection during a failover asks them.
SENTINEL_TIMEOUT = 1.0  # s


class SentinelBlockingConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool, with the waiting of `BlockingConnectionPool` at its limit (a burst
    queues for a connection instead of failing with "Too many connections"), which is how every
    pool of the project behaves. Closing the pool also closes its connections to the sentinels."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # the pool's close (a master change disconnects only the idle ones)
            await self.sentinel_manager.aclose()


def pool(url: str, *, max_connections: int, timeout: float = 10, **options: Any) -> ConnectionPool:
    """A blocking pool of connections to the Redis at `url` (its master, for a Sentinel URL),
    with the project's socket timeouts; `options` as redis-py's pools take them
    (`decode_responses`, …)."""
    options = {**SOCKET_TIMEOUTS, **options}
    if not is_sentinel(url):
        return BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
    t = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
    }
    if t.sentinel_password:
        sentinel_kwargs["password"] = t.sentinel_password
    manager = Sentinel(list(t.sentinels), sentinel_kwargs=sentinel_kwargs)
    return SentinelBlockingConnectionPool(
        t.service,
        manager,
        max_connections=max_connections,
        timeout=timeout,
        db=t.db,
        username=t.username,
        password=t.password,
        ssl=t.ssl,
        **options,
    )


def client(url: str, *, max_connections: int, timeout: float = 10, **options: Any) -> Redis:
    """A client over `pool(url, …)` that closes the pool when it is closed."""
    return Redis.from_pool(pool(url, max_connections=max_connections, timeout=timeout, **options))
