"""The MaaP send path's small HTTP/1.1 client against real servers: keep-alive reuse, chunked
bodies, servers that close idle connections, garbage and silence."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from infra.http1 import Http1Client, HttpError


async def test_keep_alive_chunked_and_headers(aiohttp_server: Any) -> None:
    peers: set[Any] = set()

    async def plain(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        body = await request.read()
        return web.json_response(
            {"len": len(body), "auth": request.headers["authorization"], "text": body.decode()},
            headers={"Retry-After": "3"},
        )

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in ("快递", "已签收", "x" * 5000):
            await resp.write(part.encode())
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/m", plain)
    app.router.add_post("/c", chunked)
    server = await aiohttp_server(app)
    client = Http1Client()
    try:
        for _ in range(5):
            status, headers, body = await client.post(
                str(server.make_url("/m")), "你好".encode(), {"authorization": "accessToken t"}, 5
            )
            assert status == 200 and headers["retry-after"] == "3"
            assert json.loads(body) == {"len": 6, "auth": "accessToken t", "text": "你好"}
        assert len(peers) == 1  # one connection, reused
        status, _, body = await client.post(str(server.make_url("/c")), b"", {}, 5)
        assert status == 200 and body.decode() == "快递已签收" + "x" * 5000
        status, _, _ = await client.post(str(server.make_url("/missing")), b"", {}, 5)
        assert status == 404
    finally:
        await client.close()


async def _raw_server(handler: Any) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_server_closing_idle_connection_is_retried_on_a_new_one() -> None:
    served = 0

    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive promised, but the server drops it (as idle timeouts do)

    server, port = await _raw_server(once_then_close)
    client = Http1Client()
    try:
        for _ in range(3):
            status, _, body = await client.post(f"http://127.0.0.1:{port}/x", b"hi", {}, 5)
            assert (status, body) == (200, b"ok")
        assert served == 3
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("reply", [b"SMTP ready\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b""])
async def test_garbage_or_nothing_is_an_http_error(reply: bytes) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server, port = await _raw_server(bad)
    client = Http1Client()
    try:
        with pytest.raises(HttpError):
            await client.post(f"http://127.0.0.1:{port}/x", b"", {}, 5)
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_silence_times_out_and_refused_connect_fails() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # never answers; returns when the client gives up and closes
        writer.close()
        await writer.wait_closed()

    server, port = await _raw_server(silent)
    client = Http1Client()
    try:
        with pytest.raises(HttpError, match="no answer within"):
            await client.post(f"http://127.0.0.1:{port}/x", b"", {}, 0.2)
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(HttpError, match="connect"):
        await client.post(f"http://127.0.0.1:{port}/x", b"", {}, 2)
    await client.close()
