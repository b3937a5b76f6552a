"""Photo URLs fetched into an enterprise's library from its `photo_hosts` only: the address rules
(private, loopback, link-local refused after resolution), redirects re-checked, size and time
bounds, and a fetched photo used by the card that names its URL.

A real HTTPS server (a self-signed certificate made by openssl for `photos.test`) stands for the
photo host. It listens on 127.0.0.1, which the production rule refuses: the success paths widen
the rule to that one address (and the resolver maps `photos.test` to it); the refusals run
with the production rule."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image, ImageChops

from delivery.library.fetch import FetchRefused, PhotoFetcher, public
from delivery.library.ingest import IngestError
from mingpian.api.delivery import delivery_key

from .support import SF_KEY, AppFactory, auth

HOST = "photos.test"
LOCAL = ipaddress.ip_address("127.0.0.1")


def jpeg(color: tuple[int, int, int] = (255, 0, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 200), color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
async def photo_host(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    app = web.Application()
    photo = jpeg()

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=photo, content_type="image/jpeg")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"\xff" * 65536)
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=photo)

    app.router.add_get("/p.jpg", image)
    app.router.add_get("/r", redirect)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield {"port": port, "base": f"https://{HOST}:{port}", "ssl": client_ctx, "photo": photo}
    await runner.cleanup()


async def _resolve(host: str, port: int) -> list[Any]:
    if host != HOST:
        raise OSError(f"unknown host {host}")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def fetcher(host: dict[str, Any], *, production: bool = False, **kw: Any) -> PhotoFetcher:
    allow = public if production else (lambda ip: ip == LOCAL)
    return PhotoFetcher(allow=allow, ssl_context=host["ssl"], resolve=_resolve, **kw)


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_only_public_addresses_are_fetched_from(address: str, ok: bool) -> None:
    assert public(ipaddress.ip_address(address)) is ok


async def test_the_rules_before_and_after_resolution(photo_host: dict[str, Any]) -> None:
    base, port = photo_host["base"], photo_host["port"]
    listed = [f"{HOST}:{port}"]  # the test server's port is not 443: the entry names it
    data, final = await fetcher(photo_host).fetch(f"{base}/p.jpg", listed)
    assert data == photo_host["photo"] and final == f"{base}/p.jpg"
    cases = [
        (fetcher(photo_host, production=True), f"{base}/p.jpg", "not resolve to a public address"),
        (fetcher(photo_host), f"{base}/p.jpg".replace(HOST, "other.test"), "not one of the enterprise's"),
        (fetcher(photo_host), f"http://{HOST}/p.jpg", "only https"),
        (fetcher(photo_host), f"https://u:p@{HOST}:{port}/p.jpg", "user name or password"),
        (fetcher(photo_host), f"{base}/r?to=https://evil.test/p.jpg", "not one of the enterprise's"),
        (fetcher(photo_host), f"{base}/r?to=http://{HOST}/p.jpg", "only https"),
        (fetcher(photo_host), f"{base}/r?to=/r%3Fto%3D/r%253Fto%253D/r%25253Fto%25253D/p.jpg", "redirects"),
        (fetcher(photo_host), f"{base}/missing.jpg", "HTTP 404"),
        (fetcher(photo_host, timeout=0.5), f"{base}/slow", "longer than 0.5 s"),
        # ports: 443 unless the entry names another; a redirect to an unlisted port is refused too
        (fetcher(photo_host), f"https://{HOST}:{port + 1}/p.jpg", f"port {port + 1}"),
        (fetcher(photo_host), f"{base}/r?to=https://{HOST}:22/p.jpg", "port 22"),
        (fetcher(photo_host), f"https://{HOST}:99999/p.jpg", "port"),
    ]
    for f, url, why in cases:
        with pytest.raises(FetchRefused, match=why):
            await f.fetch(url, listed)
    with pytest.raises(FetchRefused, match="port"):  # a bare name is port 443 only
        await fetcher(photo_host).fetch(f"{base}/p.jpg", [HOST])
    # a redirect to a listed host is followed (and checked again)
    data, final = await fetcher(photo_host).fetch(f"{base}/r?to={base}/p.jpg", listed)
    assert data == photo_host["photo"] and final == f"{base}/p.jpg"
    with pytest.raises(IngestError) as err:
        await fetcher(photo_host, max_bytes=1_000_000).fetch(f"{base}/big", listed)
    assert err.value.code == "media_too_large"
    # a certificate not trusted: refused
    with pytest.raises(FetchRefused, match=r"certificate"):
        await PhotoFetcher(allow=lambda ip: ip == LOCAL, resolve=_resolve).fetch(f"{base}/p.jpg", listed)


async def test_no_refusal_tells_what_a_name_resolves_to(photo_host: dict[str, Any]) -> None:
    """An enterprise names the hosts; what they resolve to inside the network is not its to learn:
    an inward name, a name that does not resolve and one that resolves to nothing answer alike,
    and a connection that fails names no address."""

    async def inward(host: str, port: int) -> list[Any]:
        return {
            "inward.test": [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))],
            "metadata.test": [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00:ec2::254", port, 0, 0))],
            "empty.test": [],
        }[host]  # KeyError (a LookupError) for any other name, like a resolver's failure

    async def failing(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    answers = set()
    for resolve, host in (
        (inward, "inward.test"),
        (inward, "metadata.test"),
        (inward, "empty.test"),
        (failing, "nowhere.test"),
    ):
        with pytest.raises(FetchRefused) as err:
            await PhotoFetcher(resolve=resolve).fetch(f"https://{host}/p.jpg", [host])
        message = str(err.value)
        assert "10.20" not in message and "fd00" not in message and "Errno" not in message, message
        answers.add(message.replace(host, "H"))
    assert len(answers) == 1, answers
    # a listed port nobody listens on: the connection fails, and its address is not in the answer
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    with pytest.raises(FetchRefused) as err:
        await fetcher(photo_host).fetch(f"https://{HOST}:{dead}/p.jpg", [f"{HOST}:{dead}"])
    assert "127.0.0.1" not in str(err.value) and "connect" in str(err.value), err.value


async def test_a_fetched_photo_is_a_library_file_the_card_uses(
    make_app: AppFactory, photo_host: dict[str, Any]
) -> None:
    client = await make_app()
    client.app[delivery_key].library.fetcher = fetcher(photo_host)
    url = f"{photo_host['base']}/p.jpg"
    r = await client.post("/api/enterprises/sf/media/fetch", json={"url": url}, headers=auth(SF_KEY))
    assert r.status == 422 and (await r.json())["error"] == "fetch_refused"  # no photo_hosts yet
    assert (await r.json())["problems"][0]["path"] == "$.url"
    ent = await (await client.get("/api/enterprises/sf", headers=auth(SF_KEY))).json()
    hosts = [f"{HOST}:{photo_host['port']}"]
    r = await client.put("/api/enterprises/sf", json={**ent, "photo_hosts": hosts}, headers=auth(SF_KEY))
    assert r.status == 200, await r.text()
    r = await client.post("/api/enterprises/sf/media/fetch", json={"url": url}, headers=auth(SF_KEY))
    row = await r.json()
    assert r.status == 201 and row["kind"] == "image" and row["name"] == url, row
    card = await (await client.get("/api/enterprises/sf/cards/hangup", headers=auth(SF_KEY))).json()
    card["data"] = {**card["data"], "photo_url": url}
    assert (
        await client.put("/api/enterprises/sf/cards/hangup", json=card, headers=auth(SF_KEY))
    ).status == 200
    base = "/api/enterprises/sf/cards/hangup/preview"
    png = await client.get(f"{base}?format=png", headers=auth(SF_KEY))
    im = Image.open(io.BytesIO(await png.read())).convert("RGB")
    bands = im.split()
    masks = [
        b.point(lambda v, c=c: 255 if abs(v - c) <= 60 else 0)
        for b, c in zip(bands, (255, 0, 255), strict=True)
    ]
    magenta = ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2]).histogram()[255]
    assert magenta > 20_000  # the fetched copy is drawn; the renderer itself fetched nothing
    rcs = await (await client.get(f"{base}?format=rcs", headers=auth(SF_KEY))).json()
    media = rcs["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"]["media"]
    assert media["mediaUrl"] == row["url"]
