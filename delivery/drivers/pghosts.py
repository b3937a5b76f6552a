"""Which PostgreSQL server the store connects to when its URL names several: the writable one.

A highly available deployment names its primary and its standbys in one URL,
`postgresql://user@db1:5432,db2:5432/mingpian?target_session_attrs=read-write`, and the store
connects to whichever of them accepts writes; after a failover (a standby promoted, by hand or
by Patroni) the next connection finds the new primary. asyncpg reads such URLs itself, but bounds
the whole attempt with one timeout: a dead host that drops packets instead of refusing them (a
machine that lost power) uses all of it, and the next host is never tried. So the hosts are
tried here one by one, each with its own bound (as libpq's `connect_timeout` does), and asyncpg
checks each as it would (`target_session_attrs`: the server's `in_hot_standby` and
`default_transaction_read_only`, `pg_is_in_recovery()` where it does not report them).

Order: the host that was writable last time first, then the others as the URL lists them; a host
that did not answer within `SHUNNED` seconds goes last, so a dead primary costs one bound per interval,
not one per connection. A URL with one host is handed to asyncpg as it is.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import asyncpg

HOST_TIMEOUT = 2.0  # s a host may take to accept a connection before the next one is tried
SHUNNED = 10.0  # s a host that did not answer is tried after the others
PROMOTING = 0.3  # s to wait before asking again when every host that answered was read-only
WRITABLE = "read-write"  # target_session_attrs when the URL names none
READ_ONLY = "read-only (a standby, or a fenced primary)"  # a host that answered but takes no writes


class NoWritableServer(asyncpg.TargetServerAttributeNotMatched):
    """Every host was tried and none accepts writes: a failover is under way (the primary is gone
    and no standby has been promoted yet), or all of them are down. An outage of the database
    (infra/outage.py classifies asyncpg's client errors as one)."""

    def __init__(self, tried: dict[str, str]) -> None:
        said = "; ".join(f"{host}: {why}" for host, why in tried.items())
        super().__init__(f"no writable PostgreSQL server among {len(tried)} hosts ({said})")
        self.tried = tried
        self.standbys = sum(1 for why in tried.values() if why == READ_ONLY)


def hosts_of(url: str) -> list[tuple[str, int | None]]:
    """The (host, port) pairs of a `postgresql://` URL's host list (port None: the default)."""
    netloc = urllib.parse.urlsplit(url).netloc
    spec = netloc.rpartition("@")[2]
    out: list[tuple[str, int | None]] = []
    for part in filter(None, spec.split(",")):
        if part.startswith("["):  # [IPv6]:port
            host, _, rest = part[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = part.partition(":")
        out.append((urllib.parse.unquote(host), int(port) if port else None))
    return out


def session_attrs(url: str) -> str:
    """The URL's `target_session_attrs`, or read-write (the store writes)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return query.get("target_session_attrs", [WRITABLE])[-1]


class HostChooser:
    """Connects to the writable server among a URL's hosts, remembering which one it was."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.hosts = hosts_of(url)
        self.attrs = session_attrs(url)
        self._writable: tuple[str, int | None] | None = None
        self._failed: dict[tuple[str, int | None], float] = {}  # host → when it last failed
        self._found = 0  # connections made so far

    @property
    def several(self) -> bool:
        return len(self.hosts) > 1

    def order(self) -> list[tuple[str, int | None]]:
        first = [self._writable] if self._writable in self.hosts else []
        hosts = first + [h for h in self.hosts if h not in first]
        now = time.monotonic()
        return sorted(hosts, key=lambda h: now - self._failed.get(h, float("-inf")) < SHUNNED)

    async def connect(self, dsn: str | None = None, *, timeout: float = HOST_TIMEOUT, **kwargs: Any) -> Any:
        """asyncpg.connect's signature (the pool calls it as its `connect`), `dsn` ignored for the
        chooser's URL. Raises NoWritableServer when hosts answered but none is writable, or
        the last host's error when none answered."""
        if not self.several:
            return await asyncpg.connect(self.url, timeout=timeout, **kwargs)
        found = self._found
        try:
            return await self._first_writable(timeout, kwargs)
        except NoWritableServer:
            # Hosts answered but none took writes: a standby may be being promoted, and a
            # session that started a moment before its promotion ended still says read-only.
            # A short wait and once more, so a failover ends in one outage, not a flap of two.
            await asyncio.sleep(PROMOTING)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if self._found == found:
                raise
        # Another connection found a writable server while this one was trying (a standby was
        # promoted meanwhile): once more, that one first, rather than an outage that has ended.
        return await self._first_writable(timeout, kwargs)

    async def _first_writable(self, timeout: float, kwargs: dict[str, Any]) -> Any:
        tried: dict[str, str] = {}
        last: BaseException | None = None
        for host, port in self.order():
            name = f"{host}:{port or 5432}"
            try:
                conn = await asyncpg.connect(
                    self.url,
                    host=host,
                    port=port,
                    target_session_attrs=self.attrs,
                    timeout=min(timeout, HOST_TIMEOUT),
                    **kwargs,
                )
            except asyncpg.TargetServerAttributeNotMatched:
                tried[name] = READ_ONLY  # it answered at once: tried in its turn next time
                continue
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                tried[name] = f"{type(exc).__name__}: {exc}"[:160]
                last = exc
            else:
                self._writable = (host, port)
                self._found += 1
                self._failed.pop((host, port), None)
                return conn
            self._failed[(host, port)] = time.monotonic()
        if READ_ONLY in tried.values() or last is None:
            raise NoWritableServer(tried) from last
        raise last


def waiting_for(exc: BaseException) -> str:
    """What a process whose database check failed with `exc` waits for, as a stable code:
    `database_not_writable` (servers answer, none takes writes: a failover under way) or
    `database_unreachable` (no server answers in time)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, (asyncpg.TargetServerAttributeNotMatched, asyncpg.ReadOnlySQLTransactionError)):
            return "database_not_writable"
        seen = seen.__cause__ or seen.__context__
    return "database_unreachable"
