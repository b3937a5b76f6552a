"""Outages of the shared backends (PostgreSQL, Redis): one error type for "the backend does not
answer, try again later", how to tell such an error from a bug, and the process's record of
outages, which logs one line when an outage starts and one when it ends instead of one per
request (a 10 s outage under load would otherwise write thousands of tracebacks).

The domain raises `Unavailable` where it knows which backend failed; the server answers it 503
with `Retry-After` in one place, and maps the drivers' own errors that reach it the same way
(`backend_of`). Nothing here knows HTTP.
"""

from __future__ import annotations

import logging
import time
from collections import deque

log = logging.getLogger("mingpian.outage")
# "redis-replicas": Redis answers but does not get writes to enough replicas (`redis_wait_replicas`);
# an outage of its own, so that batches without such writes, which succeed, do not end it.
NAMES = {"database": "PostgreSQL", "redis": "Redis", "redis-replicas": "Redis replication"}
RETRY_AFTER = 2  # seconds a client is asked to wait before sending again
KEEP = 64  # past outages remembered per backend (for `downtime`)


class Unavailable(ConnectionError):
    """A shared backend does not answer: nothing of the request was accepted; retry later."""

    def __init__(self, backend: str, cause: BaseException | None = None) -> None:
        name = NAMES.get(backend, backend)
        detail = f": {type(cause).__name__}: {cause}"[:200] if cause is not None else ""
        super().__init__(f"{name} is unavailable{detail}")
        self.backend = backend
        self.name = name


def _driver_backend(exc: BaseException) -> str | None:
    """The backend whose driver raised `exc` as a connection failure, by the error's type."""
    try:  # the drivers are loaded when an error is classified, not by every store importing this
        import asyncpg
    except ImportError:  # pragma: no cover - a dependency of the project
        asyncpg = None
    if asyncpg is not None and isinstance(
        exc,
        (
            asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, …
            asyncpg.InterfaceError,  # the connection is closed, the pool is closing
            asyncpg.InternalClientError,  # a connection the server dropped, used again
            asyncpg.CannotConnectNowError,  # starting up or shutting down
            asyncpg.AdminShutdownError,  # pg_ctl stop -m fast ended the session
            asyncpg.CrashShutdownError,
            asyncpg.TooManyConnectionsError,
        ),
    ):
        return "database"
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ReadOnlyError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # BusyLoadingError, Sentinel's MasterNotFoundError included; READONLY: a demoted master
    # (reached through an address that did not follow the failover) until a master answers there.
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, ReadOnlyError)):
        return str(getattr(exc, "backend", "redis"))  # infra.redispipe.NotReplicated: its own
    if isinstance(exc, ResponseError) and str(exc).startswith("NOREPLICAS"):  # min-replicas-to-write
        return "redis-replicas"
    return None


def _frames_backend(exc: BaseException) -> str | None:
    """For plain OSError / TimeoutError: the backend whose driver code it was raised in."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith("asyncpg"):
            found = "database"
        elif module.startswith(("redis", "infra.redispipe")):
            found = "redis"
        tb = tb.tb_next
    return found


def backend_of(exc: BaseException) -> str | None:
    """ "database" or "redis" when `exc` (or what caused it) says that backend cannot be reached;
    None for anything else (a bug stays a bug)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, Unavailable):
            return exc.backend
        backend = _driver_backend(exc)
        if backend is None and isinstance(exc, (OSError, TimeoutError)):
            backend = _frames_backend(exc)
        if backend is not None:
            return backend
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def unavailable(exc: BaseException) -> Unavailable | None:
    """`exc` as an outage (noted in the record), or None when it is not one."""
    if isinstance(exc, Unavailable):
        outages.down(exc.backend, exc)
        return exc
    backend = backend_of(exc)
    if backend is None:
        return None
    outages.down(backend, exc)
    return Unavailable(backend, exc)


def log_failure(logger: logging.Logger, exc: BaseException, message: str, *args: object) -> None:
    """For background work (a worker loop, a lease keeper): an outage is noted (one line for the
    whole outage), anything else logged with its traceback as before."""
    if unavailable(exc) is None:
        logger.error(message, *args, exc_info=exc)


class Outages:
    """Which backends are down now, since when, and the recent outages' spans. `down` and `up`
    are cheap when nothing changes: they sit on hot paths (every flush, every pipeline batch)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # backend → when (time.time()) the current outage began
        self._past: dict[str, deque[tuple[float, float]]] = {}
        self.started = 0  # outages begun in this process's life

    def clear(self) -> None:
        """Forget every outage (a test starting afresh in the same process)."""
        self._since.clear()
        self._past.clear()

    def is_down(self, backend: str) -> bool:
        return backend in self._since

    def down(self, backend: str, cause: BaseException | None = None) -> None:
        """A request or task found `backend` unreachable: the first one logs the outage."""
        if backend in self._since:
            return
        self._since[backend] = time.time()
        self.started += 1
        why = f" ({type(cause).__name__}: {cause})"[:300] if cause is not None else ""
        log.warning(
            "%s is unavailable: requests that need it are answered 503 until it is back%s",
            NAMES.get(backend, backend),
            why,
        )

    def up(self, backend: str) -> None:
        """`backend` answered again: the end of its outage, logged once."""
        since = self._since.pop(backend, None)
        if since is None:
            return
        now = time.time()
        self._past.setdefault(backend, deque(maxlen=KEEP)).append((since, now))
        log.warning("%s is back after %.1f s", NAMES.get(backend, backend), now - since)

    def downtime(self, backend: str, since: float, now: float | None = None) -> float:
        """Seconds `backend` was down between `since` and `now` (both time.time())."""
        now = time.time() if now is None else now
        spans = list(self._past.get(backend, ()))
        if backend in self._since:
            spans.append((self._since[backend], now))
        return sum(max(0.0, min(end, now) - max(start, since)) for start, end in spans)


class PoolFloorNoted(logging.Filter):
    """asyncpg's pool warns, with a traceback, each time it fails to reconnect up to its minimum
    size: several lines a second for as long as PostgreSQL is away. Noted as the outage instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "connection floor" not in record.getMessage():
            return True
        exc = record.exc_info[1] if record.exc_info else None
        outages.down("database", exc)
        return False


def quiet_pool_warnings() -> None:
    """Install `PoolFloorNoted` on asyncpg's pool logger (once; idempotent)."""
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, PoolFloorNoted) for f in pool_log.filters):
        pool_log.addFilter(PoolFloorNoted())


outages = Outages()  # the process's record: every part of the server notes into the same one
