"""The API explorer speaks Chinese: the served OpenAPI document gives every operation a Chinese
summary, description and tag, and its parameters and answers Chinese descriptions (the English
the route modules wrote kept beside them)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.openapi_zh import OPERATIONS

Client = TestClient[Any, web.Application]
METHODS = {"get", "post", "put", "patch", "delete"}
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


async def test_every_operation_is_described_in_chinese(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    tags = [t["name"] for t in doc["tags"]]
    assert tags and all(CJK.search(t) for t in tags), tags
    assert all(CJK.search(t["description"]) for t in doc["tags"])
    assert CJK.search(doc["info"]["description"]) and doc["info"]["x-description-en"]
    missing, seen = [], set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            seen.add(where)
            if not (CJK.search(op.get("summary", "")) and CJK.search(op.get("description", ""))):
                missing.append(where)  # add its Chinese to mingpian/openapi_zh.py
                continue
            assert op["tags"] and op["tags"][0] in tags, where
            # what the explorer shows of its parameters and answers is Chinese too
            for part in [*op.get("parameters", []), *op.get("responses", {}).values()]:
                if part.get("description") and not CJK.search(part["description"]):
                    missing.append(f"{where}: {part['description']}")
            assert op.get("x-summary-en"), where  # the English, for developers
    assert missing == []
    assert set(OPERATIONS) - seen == set(), "Chinese for operations the server no longer has"
    # the English a feature adds to another's operation is kept (the legacy and H5 formats)
    render = doc["paths"]["/api/templates/{name}/render"]["post"]
    assert "format=h5" in render["x-description-en"] and "format=h5" in render["description"]
    assert render["tags"] == ["模板与渲染"]
    profile = next(p for p in render["parameters"] if p["name"] == "profile")
    assert (
        profile["description"].startswith("运营商配置") and "default_profile" in profile["x-description-en"]
    )
    assert doc["paths"]["/api/reviews"]["get"]["summary"] == "名片审核队列（运营方）"
