"""Fetching a photo URL for an enterprise, from the HTTPS hosts it allowed, into its library.

A card's data may name a photo by URL. The renderer never fetches (a template must not make the
server reach the network), so an enterprise that wants such photos in its pictures lists the
hosts (`photo_hosts`) and asks for each URL once (`POST …/media/fetch`); the file is then a
library file like an upload, and cards naming that URL use it.

What a fetch may reach, and why:
- `https://` only, on a host the enterprise listed (exact name, any case; no user:password), and
  on port 443 unless the entry names another (`photos.example.cn:8443` allows that port only);
- every address the name resolves to must be public: private (10/8, 172.16/12, 192.168/16,
  fc00::/7), loopback, link-local (169.254/16: cloud metadata services; fe80::/10), CGNAT,
  multicast, reserved and unspecified ones are refused, so a listed name that resolves inward
  cannot turn the server against its own network;
- the connection goes to the addresses that were checked (the name is not resolved again: no
  DNS rebinding between the check and the connection), with TLS verified for the name;
- redirects are followed by hand, at most three, each new URL checked like the first;
- the body is cut off past the library's upload cap and the whole fetch past `timeout` seconds.

A refusal says which rule stopped the fetch, never what a name resolved to nor the address a
connection failed at: an enterprise names the hosts, and the network's inside is not its to map
(an inward name, an unknown one and one without addresses get the same answer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .ingest import IngestError

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
HTTPS_PORT = 443
IpPolicy = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]


def public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address on the public internet (what a fetch may connect to)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


class FetchRefused(IngestError):
    """The URL may not be fetched, or its answer is not a file we keep; says which rule."""

    def __init__(self, message: str, code: str = "fetch_refused") -> None:
        super().__init__(code, message)


def listed(hosts: list[str]) -> set[tuple[str, int]]:
    """The (name, port) pairs `photo_hosts` allows: `name` is port 443, `name:port` that port."""
    out = set()
    for entry in hosts:
        name, _, port = entry.lower().partition(":")
        out.add((name.rstrip("."), int(port) if port.isdigit() else HTTPS_PORT))
    return out


def allowed(url: str, hosts: list[str]) -> bool:
    """Whether `url` is an https URL on one of `hosts` (and its port)."""
    parts = urlsplit(url)
    try:
        port = parts.port or HTTPS_PORT
    except ValueError:
        return False
    name = (parts.hostname or "").rstrip(".")
    return parts.scheme == "https" and (name, port) in listed(hosts)


class _Pinned(AbstractResolver):
    """Answers with the addresses already checked for the one host, and nothing else."""

    def __init__(self, host: str, infos: list[ResolveResult]) -> None:
        self.host, self.infos = host, infos

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"not resolving {host!r}")
        return [{**i, "port": port} for i in self.infos]  # type: ignore[typeddict-item]

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class PhotoFetcher:
    timeout: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    allow: IpPolicy = public  # tests may widen it; production keeps `public`
    ssl_context: ssl.SSLContext | None = None  # None: the system's trust store
    resolve: Callable[[str, int], Any] | None = None  # (host, port) → getaddrinfo list; None: the loop's
    user_agent: str = "Mingpian-photo-fetch/1"

    async def fetch(self, url: str, hosts: list[str]) -> tuple[bytes, str]:
        """The bytes at `url` and the final URL; FetchRefused says which rule stopped it."""
        allowed = listed(hosts)
        try:
            async with asyncio.timeout(self.timeout):
                for _ in range(MAX_REDIRECTS + 1):
                    status, location, body = await self._one(url, allowed)
                    if location is None:
                        if status != 200:
                            raise FetchRefused(f"{url} answered HTTP {status}")
                        return body, url
                    url = urljoin(url, location)
        except IngestError:  # FetchRefused, or a cap passed: as they are
            raise
        except TimeoutError:
            raise FetchRefused(f"fetching took longer than {self.timeout:g} s") from None
        except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as exc:
            raise FetchRefused(f"cannot fetch {url[:100]}: {_why(exc)}") from None
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _addresses(self, host: str, port: int) -> list[ResolveResult]:
        inward = FetchRefused(f"{host} does not resolve to a public address")  # one answer for all
        try:
            if self.resolve is not None:
                infos = await self.resolve(host, port)
            else:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, LookupError, UnicodeError):
            raise inward from None
        out: list[ResolveResult] = []
        for family, _, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            if not self.allow(ip):
                raise inward
            out.append(
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "family": family,
                    "proto": proto,
                    "flags": 0,
                }
            )
        if not out:
            raise inward
        return out

    async def _one(self, url: str, allowed: set[str]) -> tuple[int, str | None, bytes]:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme != "https":
            raise FetchRefused(f"only https URLs are fetched, not {url[:100]!r}")
        if parts.username or parts.password:
            raise FetchRefused("a URL with a user name or password is not fetched")
        if host not in {name for name, _ in allowed}:
            raise FetchRefused(f"{host or url[:100]!r} is not one of the enterprise's photo_hosts")
        try:
            port = parts.port or HTTPS_PORT
        except ValueError:
            raise FetchRefused(f"{url[:100]!r} has no valid port") from None
        if (host, port) not in allowed:
            raise FetchRefused(
                f"port {port} of {host} is not allowed: only 443, or a port the photo_hosts entry names "
                f"({host}:{port})"
            )
        infos = await self._addresses(host, port)
        connector = aiohttp.TCPConnector(
            resolver=_Pinned(host, infos), ssl=self.ssl_context or True, use_dns_cache=False, force_close=True
        )
        async with (
            aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.user_agent}) as session,
            session.get(url, allow_redirects=False) as resp,
        ):
            if resp.status in (301, 302, 303, 307, 308):
                return resp.status, resp.headers.get("Location", ""), b""
            if resp.status != 200:
                return resp.status, None, b""
            size = resp.content_length
            if size is not None and size > self.max_bytes:
                raise IngestError("media_too_large", f"{url} has {size} bytes", f"{self.max_bytes} bytes")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                body += chunk
                if len(body) > self.max_bytes:
                    raise IngestError("media_too_large", f"{url} has more bytes", f"{self.max_bytes} bytes")
            return 200, None, bytes(body)


def _why(exc: BaseException) -> str:
    """What went wrong, in words that name no address (the library's errors quote the socket's)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        return "the TLS certificate is not trusted for the name"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError):
        return "cannot connect to the host"
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return "the host's answer is not valid HTTP"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the host closed the connection"
    if isinstance(exc, ValueError):
        return "the URL is not valid"
    return f"the connection failed ({type(exc).__name__})"
