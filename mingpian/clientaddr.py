"""The client's address, for limits and logs: the TCP peer, or behind trusted proxies the address
they were reached from.

`X-Forwarded-For` is anyone's to write, so it is read only when the peer is one of the
`trusted_proxies`; then its entries are walked from the right (each proxy appends the address
it was reached from) past the trusted proxies, and the first address that is not one of them is
the client. Whatever the client put on the left itself is never reached. With no trusted proxies
(the default) the header is ignored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from .keys import settings_key

FORWARDED_FOR = "X-Forwarded-For"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def _networks(names: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in names)


def _address(text: str) -> Address | None:
    """An address as proxies write it: `203.0.113.9`, `2001:db8::1`, or with a port
    (`203.0.113.9:5123`, `[2001:db8::1]:443`)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(addr: Address, networks: tuple[Network, ...]) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket is 10.0.0.1
    return any(addr.version == n.version and addr in n for n in networks)


def client_address(request: web.Request) -> str:
    """The address of the client behind the request (see the module's text); "?" when unknown."""
    peer = request.remote or "?"
    settings = request.app.get(settings_key)
    if settings is None or not settings.trusted_proxies:
        return peer
    networks = _networks(settings.trusted_proxies)
    nearest = _address(peer)
    if nearest is None or not _trusted(nearest, networks):
        return peer
    hops = [h for value in request.headers.getall(FORWARDED_FOR, ()) for h in value.split(",")]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:  # not an address a proxy of ours wrote: the last proxy is what we know
            break
        if not _trusted(addr, networks):
            return str(addr)
        nearest = addr
    return str(nearest)
