"""The card's H5 page from any data (mingpian/h5/render.py): `?format=h5` of the render route and
the studio's frame document `GET /api/templates/{name}/h5?s=…`, with inert buttons."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from aiohttp.test_utils import TestClient

from renderer.h5 import STYLE_HASH
from simulators.seeds import sample

Client = TestClient[Any, Any]


def _share(data: Any, deflate: bool = True) -> str:
    raw = json.dumps(data, ensure_ascii=False).encode()
    if deflate:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return "z" + base64.urlsafe_b64encode(c.compress(raw) + c.flush()).decode().rstrip("=")
    return "j" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _inert(html: str) -> None:
    assert 'href="#tap-0"' in html and 'action="#answer"' in html
    assert "sf-express.com" not in html and "/s/" not in html


async def test_render_format_h5(client: Client) -> None:
    resp = await client.post("/api/templates/courier-hangup/render?format=h5", json=sample("courier-hangup"))
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert "您的快递派送中" in html and 'href="tel:13800138000"' in html
    _inert(html)
    csp = resp.headers["Content-Security-Policy"]
    assert (
        f"style-src {STYLE_HASH}" in csp and "frame-ancestors 'self'" in csp and "form-action 'none'" in csp
    )


async def test_preview_page_for_the_studio_frame(client: Client) -> None:
    for deflate in (True, False):
        resp = await client.get(
            "/api/templates/courier-hangup/h5", params={"s": _share(sample("courier-hangup"), deflate)}
        )
        assert resp.status == 200, await resp.text()
        _inert(await resp.text())
        assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    bad = await client.get("/api/templates/courier-hangup/h5", params={"s": "z!!!"})
    assert bad.status == 400 and (await bad.json())["problems"][0]["path"] == "s"
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = "z" + base64.urlsafe_b64encode(c.compress(b" " * 1_000_000) + c.flush()).decode().rstrip("=")
    big = await client.get("/api/templates/courier-hangup/h5", params={"s": bomb})
    assert big.status == 413
    invalid = await client.get("/api/templates/courier-hangup/h5", params={"s": _share({"waybill": 1})})
    assert invalid.status == 422
    unknown = await client.get("/api/templates/nope/h5", params={"s": _share({})})
    assert unknown.status == 404
