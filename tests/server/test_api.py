"""The HTTP API: templates, render, errors, request ids, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.settings import Settings
from tests.support.client import ClientFactory
from tests.support.templates import write_template

Client = TestClient[Any, web.Application]
JSON = {"Content-Type": "application/json"}


async def test_list_and_describe_templates(client: Client) -> None:
    resp = await client.get("/api/templates")
    assert resp.status == 200
    names = {t["name"]: t for t in (await resp.json())["templates"]}
    assert names["courier-hangup"]["phase"] == "hang-up" and names["courier-hangup"]["ok"]
    resp = await client.get("/api/templates/bank-identity")
    body = await resp.json()
    assert body["phase"] == "pre-call"
    assert body["dataSchema"]["type"] == "object"
    assert body["sampleData"]["card_tail"] == "8821"


async def test_render_returns_message_list_with_content_types(client: Client) -> None:
    sample = (await (await client.get("/api/templates/ad-carousel")).json())["sampleData"]
    resp = await client.post("/api/templates/ad-carousel/render", json=sample)
    assert resp.status == 200
    body = await resp.json()
    assert body["template"] == "ad-carousel" and body["profile"] == "default"
    assert body["brand"] == {"signature": "鲜果时光", "name": "鲜果时光生鲜超市", "color": "#EA580C"}
    assert body["messageList"][0]["contentType"] == "application/vnd.gsma.botmessage.v1.0+json"
    assert "generalPurposeCardCarousel" in body["messageList"][0]["contentText"]["message"]


async def test_render_bare_botmessage_on_accept(client: Client) -> None:
    sample = (await (await client.get("/api/templates/courier-hangup")).json())["sampleData"]
    resp = await client.post(
        "/api/templates/courier-hangup/render",
        json=sample,
        headers={"Accept": "application/vnd.gsma.botmessage.v1.0+json"},
    )
    assert resp.status == 200
    assert resp.content_type == "application/vnd.gsma.botmessage.v1.0+json"
    body = json.loads(await resp.text())
    assert body["message"]["generalPurposeCard"]["content"]["title"] == "您的快递派送中"


async def test_unknown_template_is_404_json(client: Client) -> None:
    resp = await client.post("/api/templates/nope/render", json={})
    assert resp.status == 404
    assert (await resp.json())["error"] == "template_not_found"
    resp = await client.get("/api/templates/..%2Fetc")
    assert resp.status == 404


async def test_schema_failures_are_422_with_every_path(client: Client) -> None:
    resp = await client.post(
        "/api/templates/courier-hangup/render", json={"waybill": "x", "courier": {"name": 3}}
    )
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "data_invalid"
    paths = {p["path"] for p in body["problems"]}
    assert {"$.waybill", "$.courier.name", "$.courier.phone", "$.status", "$.tracking_url"} <= paths


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b"{not json", JSON, 400, "invalid_json"),
        (b"", JSON, 400, "empty_body"),
        (b"\xff\xfe", JSON, 400, "invalid_encoding"),
        (b'{"a": 1}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"a": 1}', {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b"[" * 100 + b"]" * 100, JSON, 400, "too_deep"),
        (b"[" * 60000 + b"]" * 60000, JSON, 400, "too_deep"),
        (b"[1, 2]", JSON, 422, "data_invalid"),
        (b'"just a string"', JSON, 422, "data_invalid"),
    ],
)
async def test_bad_bodies_get_json_4xx(
    client: Client, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    resp = await client.post("/api/templates/courier-hangup/render", data=body, headers=headers)
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"] == error


async def test_oversized_body_is_413_json(client: Client) -> None:
    import io

    big = io.BytesIO(json.dumps({"motto": "字" * 300_000}).encode())
    resp = await client.post("/api/templates/personal-show/render", data=big, headers=JSON)
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"
    assert (await client.get("/healthz")).status == 200  # and the server is fine


async def test_unknown_format_and_profile_are_400(client: Client) -> None:
    resp = await client.post("/api/templates/courier-hangup/render?format=fax", json={})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "unknown_format" and body["problems"][0]["path"] == "format"
    resp = await client.post("/api/templates/courier-hangup/render?profile=mars", json={})
    assert resp.status == 400 and (await resp.json())["error"] == "unknown_profile"


async def test_profile_changes_the_limits(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    card = "carousel:\n  cards:\n    - for: i in items\n      title: '第{{ i }}张'\n"
    write_template(tmp_path, "eleven", card)
    client = await aiohttp_client(create_app(Settings(template_dir=tmp_path, data_dir=tmp_path / "v")))
    data = {"items": list(range(11))}
    resp = await client.post("/api/templates/eleven/render", json=data)
    assert resp.status == 422
    problem = (await resp.json())["problems"][0]
    assert problem["path"] == "$.message.generalPurposeCardCarousel.content"
    assert "2–10 张" in problem["message"] and problem["code"] == "carousel_size"
    resp = await client.post("/api/templates/eleven/render?profile=china-telecom", json=data)
    assert resp.status == 200


async def test_template_bug_is_reported_with_file_and_line(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    write_template(tmp_path, "buggy", "card:\n  title: ok\n  description: '{{ customer.nmae }}'\n")
    client = await aiohttp_client(create_app(Settings(template_dir=tmp_path, data_dir=tmp_path / "v")))
    resp = await client.post("/api/templates/buggy/render", json={"customer": {"name": "张三"}})
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "template_error"
    assert body["problems"][0]["file"].endswith("buggy/card.yaml")
    assert body["problems"][0]["line"] == 3
    listing = await (await client.get("/api/templates")).json()
    assert listing["templates"][0]["ok"] is True  # compiles; fails only when bound


async def test_request_id_is_echoed_or_made(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(resp.headers["X-Request-ID"]) == 32
    resp = await client.get("/no/such/route")
    assert resp.status == 404 and resp.headers["X-Request-ID"]
    assert (await resp.json())["error"] == "not_found"


async def test_wrong_method_is_405_json(client: Client) -> None:
    resp = await client.delete("/api/templates")
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"


async def test_metrics_count_requests_and_render_time(client: Client) -> None:
    sample = (await (await client.get("/api/templates/bank-identity")).json())["sampleData"]
    await client.post("/api/templates/bank-identity/render", json=sample)
    await client.post("/api/templates/bank-identity/render", json={})
    text = await (await client.get("/metrics")).text()
    assert (
        'mingpian_http_requests_total{method="POST",route="/api/templates/{name}/render",status="200"} 1'
        in text
    )
    assert 'status="422"} 1' in text
    assert 'mingpian_render_duration_seconds_count{template="bank-identity",format="rcs"} 1' in text
    assert 'mingpian_render_errors_total{template="bank-identity",kind="data_invalid"} 1' in text
    assert "# TYPE mingpian_http_request_duration_seconds histogram" in text


async def test_access_log_is_one_json_line_per_request(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="mingpian.access")
    await client.get("/healthz", headers={"X-Request-ID": "log-test-1"})
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "log-test-1"]
    assert len(records) == 1
    r = records[0]
    assert (r.method, r.route, r.status) == ("GET", "/healthz", 200)  # type: ignore[attr-defined]
    from mingpian.logs import JsonFormatter

    line = json.loads(JsonFormatter().format(r))
    assert line["request_id"] == "log-test-1" and line["duration_ms"] >= 0


async def test_templated_brand_is_filled_in_the_response(client: Client) -> None:
    sample = (await (await client.get("/api/templates/staff-card")).json())["sampleData"]
    body = await (await client.post("/api/templates/staff-card/render", json=sample)).json()
    assert body["brand"]["signature"] == "云栖智能"
    assert body["brand"]["name"] == "杭州云栖智能科技有限公司"
