"""The OpenAPI document matches what the server really serves, both ways."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[Any, web.Application]
METHODS = {"get", "post", "put", "patch", "delete"}


def _router_ops(app: web.Application) -> set[tuple[str, str]]:
    ops = set()
    for route in app.router.routes():
        method = route.method.lower()
        if method not in METHODS:
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if "prefix" in info:  # static folders are documented as one templated path
            path = info["prefix"].rstrip("/") + "/{path}"
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
        ops.add((method, path))
    return ops


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Make component refs resolvable by plain jsonschema."""
    return {**schema, "components": doc["components"]}


async def test_document_and_router_agree(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops if m in METHODS}
    served = _router_ops(client.app)
    assert served - documented == set(), "served but undocumented"
    assert documented - served == set(), "documented but not served"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("responses"), f"{method} {path} lists no responses"
            for param in re.findall(r"\{(\w+)\}", path):
                names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                assert param in names, f"{method} {path}: path parameter {param} undocumented"


async def test_responses_match_their_declared_schemas(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()

    async def check(method: str, url: str, path: str, **kw: Any) -> None:
        resp = await client.request(method, url, **kw)
        op = doc["paths"][path][method.lower()]
        assert str(resp.status) in op["responses"], f"{method} {url}: {resp.status} undocumented"
        content = op["responses"][str(resp.status)].get("content", {})
        assert resp.content_type in content, f"{method} {url}: {resp.content_type} undocumented"
        if resp.content_type.endswith("json"):
            schema = content[resp.content_type]["schema"]
            jsonschema.validate(await resp.json(content_type=None), _resolve(doc, schema))

    sample = (await (await client.get("/api/templates/courier-hangup")).json())["sampleData"]
    await check("GET", "/healthz", "/healthz")
    await check("GET", "/metrics", "/metrics")
    await check("GET", "/api/profiles", "/api/profiles")
    await check("GET", "/api/templates", "/api/templates")
    await check("GET", "/api/templates/staff-card", "/api/templates/{name}")
    await check("GET", "/api/templates/nope", "/api/templates/{name}")
    render = "/api/templates/{name}/render"
    await check("POST", "/api/templates/courier-hangup/render", render, json=sample)
    await check("POST", "/api/templates/courier-hangup/render", render, json={"waybill": 1})
    await check(
        "POST",
        "/api/templates/courier-hangup/render",
        render,
        data=b"{",
        headers={"Content-Type": "application/json"},
    )
    await check(
        "POST",
        "/api/templates/courier-hangup/render",
        render,
        data=b"{}",
        headers={"Content-Type": "text/plain"},
    )
    await check("POST", "/api/templates/nope/render", render, json={})


async def test_building_apps_does_not_accumulate_in_shared_docs(client: Client) -> None:
    """Features extend the render operation; a second app must not see the first one's edits."""
    from mingpian.app import create_app
    from mingpian.keys import settings_key
    from mingpian.openapi import build_document

    first = build_document(client.app)
    again = build_document(create_app(client.app[settings_key]))
    op = "/api/templates/{name}/render"
    assert first["paths"][op]["post"]["description"] == again["paths"][op]["post"]["description"]
    assert first["paths"][op]["post"]["parameters"] == again["paths"][op]["post"]["parameters"]
