"""The client's address behind trusted proxies (mingpian/clientaddr.py): `X-Forwarded-For` is
believed only from a listed proxy, read from the right past the proxies; the access log names
that client. Served by real aiohttp servers."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.clientaddr import client_address
from mingpian.keys import settings_key
from mingpian.settings import Settings

Client = TestClient[Any, web.Application]


async def _echo(request: web.Request) -> web.Response:
    return web.Response(text=client_address(request))


async def _server(aiohttp_client: Any, settings: Settings, proxies: str) -> Client:
    app = web.Application()
    app[settings_key] = settings.with_(trusted_proxies=proxies)
    app.router.add_get("/", _echo)
    client: Client = await aiohttp_client(app)
    return client


async def _seen(client: Client, *forwarded: str) -> str:
    headers = [("X-Forwarded-For", f) for f in forwarded]
    return await (await client.get("/", headers=headers)).text()


async def test_forwarded_addresses_count_only_from_trusted_proxies(
    aiohttp_client: Any, settings: Settings
) -> None:
    behind = await _server(aiohttp_client, settings, "127.0.0.0/8, 10.0.0.0/8, 2001:db8::/32")
    assert await _seen(behind) == "127.0.0.1"  # no header: the peer
    assert await _seen(behind, "203.0.113.9") == "203.0.113.9"
    # the right-most address that is not a proxy; what the client wrote on the left is not reached
    assert await _seen(behind, "198.51.100.1, 203.0.113.9, 10.1.1.1") == "203.0.113.9"
    assert await _seen(behind, "198.51.100.1", "203.0.113.9, 10.2.2.2") == "203.0.113.9"  # two headers
    # ports and IPv6 as proxies write them
    assert await _seen(behind, "203.0.113.9:5123") == "203.0.113.9"
    assert await _seen(behind, "[2001:db9::7]:443, 2001:db8::1") == "2001:db9::7"
    # nothing but proxies: the farthest of them; a token that is no address stops the walk
    assert await _seen(behind, "10.3.3.3, 10.4.4.4") == "10.3.3.3"
    assert await _seen(behind, "203.0.113.9, unknown, 10.5.5.5") == "10.5.5.5"
    # a peer that is not a trusted proxy: its header is its own word, ignored
    direct = await _server(aiohttp_client, settings, "10.0.0.0/8")
    assert await _seen(direct, "203.0.113.9") == "127.0.0.1"
    plain = await _server(aiohttp_client, settings, "")
    assert await _seen(plain, "203.0.113.9") == "127.0.0.1"


async def test_the_access_log_names_the_client_behind_the_proxy(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="mingpian.access")
    client = await aiohttp_client(create_app(settings.with_(trusted_proxies="127.0.0.1")))
    headers = {"X-Request-ID": "via-proxy-1", "X-Forwarded-For": "203.0.113.9"}
    await client.get("/healthz", headers=headers)
    (record,) = [r for r in caplog.records if getattr(r, "request_id", None) == "via-proxy-1"]
    assert record.remote == "203.0.113.9"  # type: ignore[attr-defined]


def test_trusted_proxies_setting() -> None:
    env = {"MINGPIAN_TRUSTED_PROXIES": "10.1.2.3/8, 192.168.0.1, ::1"}
    assert Settings.from_env(env).trusted_proxies == ("10.0.0.0/8", "192.168.0.1/32", "::1/128")
    assert Settings().trusted_proxies == ()
    with pytest.raises(SystemExit, match=r"'proxy\.example' is not a network; expected .*empty: none"):
        Settings.from_env({"MINGPIAN_TRUSTED_PROXIES": "proxy.example"})
