"""Redis URLs as the `redis_url` setting takes them: one server (`redis://host:port/db`,
`rediss://…`, `unix://…`, read by redis-py) or the master a set of Redis Sentinels names
(`redis+sentinel://[user:password@]host:port,host:port,…/master-name/db`, read here). Kept apart
from the pools (redisconn.py) so that checking a setting loads no Redis client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme → TLS to the master
SENTINEL_PORT = 26379
URL_FORMS = (
    "redis://[user:password@]host:port/db, rediss://…, unix://path, or "
    "redis+sentinel://[user:password@]host:port,host:port,…/master-name/db[?sentinel_password=…]"
)


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a `redis+sentinel://` URL names: the sentinels, the master's name, and how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel(url: str) -> bool:
    return url.split(":", 1)[0].lower() in SENTINEL_SCHEMES


def _host_port(part: str) -> tuple[str, int]:
    if part.startswith("["):  # [IPv6]:port
        host, _, rest = part[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
    if not host:
        raise ValueError(f"a sentinel address without a host: {part!r}")
    try:
        number = int(port) if port else SENTINEL_PORT
    except ValueError:
        raise ValueError(f"a sentinel address with a bad port: {part!r}") from None
    return host, number


def parse_sentinel_url(url: str) -> SentinelTarget:
    """A `redis+sentinel://` URL's parts; ValueError naming what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: {url.split(':', 1)[0]!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    sentinels = tuple(_host_port(h) for h in hosts.split(",") if h)
    if not sentinels:
        raise ValueError("a Sentinel URL names no sentinel (host:port,host:port,…)")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("a Sentinel URL's path is /master-name or /master-name/db")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"a Sentinel URL's database is a number, not {path[1]!r}") from None
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"a Sentinel URL takes only ?sentinel_password=, not {sorted(unknown)}")
    sentinel_password = query.get("sentinel_password", [None])[0]
    return SentinelTarget(
        sentinels, unquote(path[0]), db, username, password, sentinel_password, SENTINEL_SCHEMES[scheme]
    )


def check_url(url: str) -> str:
    """The setting's check: a Sentinel URL must parse; others are redis-py's to read."""
    if is_sentinel(url):
        parse_sentinel_url(url)
    elif url.split(":", 1)[0].lower() not in ("redis", "rediss", "unix"):
        raise ValueError(f"a Redis URL is one of {URL_FORMS}")
    return url
