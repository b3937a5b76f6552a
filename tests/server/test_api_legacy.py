"""POST /api/templates/{name}/render?format=ussd|flash|sms over real HTTP, and its 4xx paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.settings import Settings
from renderer import gsm
from renderer.replies import resolve_reply
from tests.support.client import ClientFactory
from tests.support.templates import TEMPLATES, write_template

Client = TestClient[Any, web.Application]
RENDER = "/api/templates/{name}/render"
NAMES = sorted(p.name for p in TEMPLATES.iterdir() if (p / "manifest.yaml").is_file())


async def _sample(client: Client, name: str) -> dict[str, Any]:
    return (await (await client.get(f"/api/templates/{name}")).json())["sampleData"]


async def _doc_schema(client: Client, status: str) -> dict[str, Any]:
    doc = await (await client.get("/api/openapi.json")).json()
    op = doc["paths"][RENDER]["post"]
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}


@pytest.mark.parametrize("fmt", ["ussd", "flash", "sms"])
async def test_every_template_renders_to_each_legacy_format(client: Client, fmt: str) -> None:
    schema = await _doc_schema(client, "200")
    legacy_only = {"$ref": "#/components/schemas/LegacyRender", "components": schema["components"]}
    for name in NAMES:
        resp = await client.post(
            f"/api/templates/{name}/render?format={fmt}", json=await _sample(client, name)
        )
        assert resp.status == 200, (name, await resp.text())
        body = await resp.json()
        jsonschema.validate(body, schema)
        jsonschema.validate(body, legacy_only)
        assert body["format"] == fmt and body["template"] == name
        assert body["segmentCount"] == len(body["segments"])
        if fmt != "sms":
            assert body["segmentCount"] == 1
        # the segments re-assemble the text and their hex is what the encoder produces
        assert "".join(s["text"] for s in body["segments"]) == body["text"]
        enc = gsm.encode(body["text"], fmt)
        assert [s.to_json() for s in enc.segments] == body["segments"]
        assert body["dcs"] == enc.dcs


async def test_flash_courier_body(client: Client) -> None:
    resp = await client.post(
        "/api/templates/courier-hangup/render?format=flash", json=await _sample(client, "courier-hangup")
    )
    body = await resp.json()
    assert body["text"].startswith("【顺丰速运】您的快递派送中")
    assert body["encoding"] == "UCS-2" and body["dcs"] == 0x18 and body["dcsHex"] == "18"
    assert body["units"] <= 70 and body["limit"] == 70
    assert body["replyMap"]["1"] == "track:SF1234567890123"
    assert resolve_reply(body["replyMap"], "回复１") == "track:SF1234567890123"
    seg = body["segments"][0]
    assert seg["udhHex"] == ""
    assert bytes.fromhex(seg["userDataHex"]).decode("utf-16-be") == body["text"]


async def test_sms_reports_several_segments_with_udh(client: Client) -> None:
    resp = await client.post(
        "/api/templates/ad-carousel/render?format=sms", json=await _sample(client, "ad-carousel")
    )
    body = await resp.json()
    n = body["segmentCount"]
    assert n > 1
    assert any(f"{n} concatenated SMS" in note for note in body["notes"])
    ref = body["segments"][0]["udhHex"][6:8]
    for i, seg in enumerate(body["segments"], 1):
        assert seg["udhHex"] == f"050003{ref}{n:02X}{i:02X}"
        assert seg["userDataHex"].startswith(seg["udhHex"])
    assert body["replyMap"]["T"] == "ad:optout"


async def test_profile_is_reported(client: Client) -> None:
    resp = await client.post(
        "/api/templates/staff-card/render?format=ussd&profile=china-mobile",
        json=await _sample(client, "staff-card"),
    )
    assert resp.status == 200
    assert (await resp.json())["profile"] == "china-mobile"


async def test_openapi_mentions_legacy(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert "LegacyRender" in doc["components"]["schemas"]
    op = doc["paths"][RENDER]["post"]
    assert "format=ussd|flash|sms" in op["description"]
    # building a second app must not stack the schema twice (the shared PATHS stay untouched)
    again = await (await client.get("/api/openapi.json")).json()
    assert again["paths"][RENDER] == doc["paths"][RENDER]
    refs = op["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert refs.count({"$ref": "#/components/schemas/LegacyRender"}) == 1


async def test_bad_requests_are_json_4xx(client: Client) -> None:
    sample = await _sample(client, "courier-hangup")
    url = "/api/templates/courier-hangup/render"
    r = await client.post(f"{url}?format=fax", json=sample)
    assert r.status == 400 and (await r.json())["error"] == "unknown_format"
    r = await client.post(f"{url}?format=ussd&profile=nope", json=sample)
    assert r.status == 400 and (await r.json())["problems"][0]["path"] == "profile"
    r = await client.post("/api/templates/nope/render?format=sms", json=sample)
    assert r.status == 404
    r = await client.post(f"{url}?format=sms", data=b"{", headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await client.post(f"{url}?format=flash", json={"waybill": 1})
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "data_invalid"
    assert any(p["path"].startswith("$.") for p in body["problems"])


def _with_overrides(root: Path, **texts: str) -> Path:
    manifest = root / "courier-hangup" / "manifest.yaml"
    lines = [manifest.read_text("utf-8").rstrip("\n"), "legacy:"]
    lines += [f'  {channel}: "{text}"' for channel, text in texts.items()]
    manifest.write_text("\n".join(lines) + "\n", "utf-8")
    return manifest


async def test_override_is_used_and_checked(
    aiohttp_client: ClientFactory, scratch_templates: Path, tmp_path: Path
) -> None:
    manifest = _with_overrides(
        scratch_templates,
        flash="【顺丰速运】{{ waybill }}派送中，回复1查物流",
        ussd="【顺丰速运】" + "很长的文字" * 20,
    )
    line = len(manifest.read_text("utf-8").splitlines())  # ussd is the last line
    settings = Settings(
        template_dir=scratch_templates, data_dir=tmp_path / "var", reload_interval=0.0, log_format="text"
    )
    client = await aiohttp_client(create_app(settings))
    sample = await _sample(client, "courier-hangup")
    r = await client.post("/api/templates/courier-hangup/render?format=flash", json=sample)
    body = await r.json()
    assert r.status == 200, body
    assert body["override"] is True
    assert body["text"] == "【顺丰速运】SF1234567890123派送中，回复1查物流"
    assert body["replyMap"]["1"] == "track:SF1234567890123"
    r = await client.post("/api/templates/courier-hangup/render?format=ussd", json=sample)
    body = await r.json()
    assert r.status == 422
    assert body["error"] == "limit_exceeded"
    problem = body["problems"][0]
    assert problem["path"] == "legacy.ussd"
    assert problem["file"].endswith("courier-hangup/manifest.yaml")
    assert problem["line"] == line
    assert "106 UCS-2 单位" in problem["message"] and "80" in problem["message"]


LINK_CARD = """\
card:
  title: 网点
  suggestions:
    - openUrl:
        text: 打开
        url: "{{ link }}"
        postback: open
"""


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>"])
async def test_a_link_the_rcs_target_refuses_is_not_in_legacy_text(
    aiohttp_client: ClientFactory, tmp_path: Path, link: str
) -> None:
    root = tmp_path / "card_templates"
    write_template(root, "link", LINK_CARD, {"type": "object"}, {"link": "https://a.example.cn"})
    settings = Settings(template_dir=root, data_dir=tmp_path / "var", reload_interval=0.0, log_format="text")
    client = await aiohttp_client(create_app(settings))
    rcs = await client.post(RENDER.format(name="link"), json={"link": link})
    assert rcs.status == 422  # the GSMA schema allows https, http, tel, sms, geo only
    for fmt in ("ussd", "flash", "sms"):
        resp = await client.post(RENDER.format(name="link") + f"?format={fmt}", json={"link": link})
        body = await resp.json()
        assert resp.status == 200, body
        assert link.split(":")[0] not in body["text"] and "回复1 打开" in body["text"]
        assert any(n.startswith("link of 1 打开 left out") for n in body["notes"]), body["notes"]
