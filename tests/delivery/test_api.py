"""The delivery API: CRUD validated by JSON Schema (4xx naming the JSON path), E.164, seed,
verification with audit, hashed keys, and every route probed across tenants and without a key."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from delivery import keys as dauth
from delivery.errors import SeedError
from delivery.model import NumberError, normalize_number
from delivery.seed import load_seed
from delivery.store import SqliteDeliveryStore
from mingpian.api.delivery import delivery_key

from .support import (
    CMB_KEY,
    CMB_LINE,
    CUSTOMER,
    OPERATOR,
    SF_HOTLINE,
    SF_KEY,
    SF_LINE,
    AppFactory,
    auth,
    call,
    sample,
    settle,
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("400-811-1111", "+864008111111"),
        ("010-12345678", "+861012345678"),
        ("0571 8888 8888", "+8657188888888"),
        ("95555", "95555"),
        ("10086", "10086"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalize_number(raw) == e164


@pytest.mark.parametrize("raw", ["abc", "1380013800", "+86abc", "", "23456789012345"])
def test_bad_numbers_are_refused(raw: str) -> None:
    with pytest.raises(NumberError):
        normalize_number(raw)


async def test_keys_are_stored_hashed_only(make_app: AppFactory) -> None:
    client = await make_app()
    store = client.app[delivery_key].store
    dump = "\n".join(await store.snapshot())
    assert SF_KEY not in dump and OPERATOR not in dump
    assert dauth.hash_key(SF_KEY) in dump
    resp = await client.post("/api/enterprises/sf/keys", headers=auth(OPERATOR))
    key = (await resp.json())["key"]
    assert resp.status == 201 and key.startswith("mpk_") and len(key) > 40
    assert (await client.get("/api/enterprises/sf", headers=auth(key))).status == 200
    assert (await client.get("/api/enterprises/sf", headers={"X-API-Key": key})).status == 200
    assert (await client.get("/api/enterprises/sf", headers=auth(key + "x"))).status == 401


async def test_crud_with_validation_errors_naming_the_json_path(make_app: AppFactory) -> None:
    client = await make_app()
    op = auth(OPERATOR)
    ent = {"id": "jd", "name": "京东物流", "signature": "京东物流", "policy": {"chain": ["ussd", "flash"]}}
    resp = await client.post("/api/enterprises", json=ent, headers=op)
    assert resp.status == 201
    assert (await client.post("/api/enterprises", json=ent, headers=op)).status == 409
    bad = await client.post(
        "/api/enterprises", json={**ent, "id": "x", "policy": {"chain": ["fax"]}}, headers=op
    )
    body = await bad.json()
    assert bad.status == 422 and body["problems"][0]["path"] == "$.policy.chain[0]"
    bad = await client.post("/api/enterprises", json={**ent, "id": "y", "color": "red"}, headers=op)
    assert (await bad.json())["problems"][0]["path"] == "$.color"
    # lines: normalised, unique across enterprises, `verified` is not the enterprise's to set
    resp = await client.post(
        "/api/enterprises/jd/lines", json={"number": "400 600 1111", "kind": "hotline"}, headers=op
    )
    line = await resp.json()
    assert resp.status == 201 and line["number"] == "+864006001111" and line["verified"] is False
    taken = await client.post("/api/enterprises/jd/lines", json={"number": "13800000001"}, headers=op)
    assert taken.status == 409 and (await taken.json())["problems"][0]["path"] == "$.number"
    sneaky = await client.put(
        "/api/enterprises/jd/lines/4006001111", json={"number": "4006001111", "verified": True}, headers=op
    )
    assert sneaky.status == 422 and "verified" in (await sneaky.json())["message"]
    bad = await client.post("/api/enterprises/jd/lines", json={"number": "not a number"}, headers=op)
    assert bad.status == 422 and (await bad.json())["problems"][0]["path"] == "$.number"
    # cards must name an existing template; unknown fields and phases are refused with their path
    bad = await client.post(
        "/api/enterprises/jd/cards", json={"id": "c", "phase": "ringing", "template": "nope"}, headers=op
    )
    assert bad.status == 422 and (await bad.json())["problems"][0]["path"] == "$.template"
    bad = await client.post(
        "/api/enterprises/jd/cards", json={"id": "c", "phase": "later", "template": "staff-card"}, headers=op
    )
    assert (await bad.json())["problems"][0]["path"] == "$.phase"
    ok = await client.post(
        "/api/enterprises/jd/cards",
        json={
            "id": "c",
            "phase": "ringing",
            "template": "staff-card",
            "line": "4006001111",
            "data": sample("staff-card"),
        },
        headers=op,
    )
    assert ok.status == 201 and (await ok.json())["line"] == "+864006001111"
    got = await client.get("/api/enterprises/jd/cards/c", headers=op)
    assert (await got.json())["template"] == "staff-card"
    assert (await client.delete("/api/enterprises/jd/cards/c", headers=op)).status == 204
    assert (await client.get("/api/enterprises/jd/cards/c", headers=op)).status == 404
    # malformed JSON, wrong type and missing fields are 4xx JSON too
    resp = await client.post(
        "/api/enterprises/jd/staff", data=b"{", headers={**op, "Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_json"
    resp = await client.post("/api/enterprises/jd/staff", json=[1], headers=op)
    assert resp.status == 422 and (await resp.json())["problems"][0]["path"] == "$"
    resp = await client.post(
        "/api/calls", json={"call_id": "x", "caller": "1", "callee": CUSTOMER, "phase": "ringing"}, headers=op
    )
    assert resp.status == 422 and (await resp.json())["problems"][0]["path"] == "$.caller"
    resp = await client.post(
        "/api/calls",
        json={"call_id": "x", "caller": "13600000000", "callee": CUSTOMER, "phase": "ringing"},
        headers=op,
    )
    assert resp.status == 404 and (await resp.json())["error"] == "unknown_line"


async def test_only_the_operator_verifies_and_every_change_is_audited(make_app: AppFactory) -> None:
    client = await make_app()
    url = "/api/enterprises/sf/lines/4008111111/verify"
    assert (await client.post(url, json={"verified": True}, headers=auth(SF_KEY))).status == 403
    resp = await client.post(url, json={"verified": True, "note": "证书 2026-001"}, headers=auth(OPERATOR))
    assert resp.status == 200 and (await resp.json())["verified"] is True
    log = (await (await client.get("/api/enterprises/sf/audit", headers=auth(SF_KEY))).json())["audit"]
    assert log[0] == {
        **log[0],
        "actor": "operator",
        "target": "line:+864008111111",
        "action": "verify",
        "detail": {"note": "证书 2026-001"},
    }
    # an enterprise editing its own line keeps the operator's verification
    resp = await client.put(
        "/api/enterprises/sf/lines/+864008111111",
        json={"number": "4008111111", "label": "客服"},
        headers=auth(SF_KEY),
    )
    assert resp.status == 200 and (await resp.json())["verified"] is True


async def test_a_call_id_is_each_enterprises_own(make_app: AppFactory) -> None:
    """Two enterprises posting their own events may use the same call id and phase: neither
    event is taken for the other's duplicate, and each sees only its own call."""
    client = await make_app()
    cmb = await call(client, "1001", "ringing", caller=CMB_LINE, key=CMB_KEY)
    sf = await call(client, "1001", "ringing", caller=SF_LINE, key=SF_KEY)
    assert not cmb["duplicate"] and not sf["duplicate"] and cmb["call_id"] == sf["call_id"] == "1001"
    again = await call(client, "1001", "ringing", caller=SF_LINE, key=SF_KEY)
    assert again["duplicate"] and again["delivery"] == sf["delivery"]
    for posted, eid in ((cmb, "cmb"), (sf, "sf")):
        d = await settle(client, posted["delivery"])
        assert (d["enterprise"], d["state"]) == (eid, "delivered")
        seen = await (
            await client.get("/api/calls/1001", headers=auth(CMB_KEY if eid == "cmb" else SF_KEY))
        ).json()
        assert [x["enterprise"] for x in seen["deliveries"]] == [eid] and seen["call_id"] == "1001"


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


async def test_every_route_refuses_other_tenants_and_anonymous_callers(make_app: AppFactory) -> None:
    client = await make_app()
    posted = await call(client, "cmb-call", "ringing", caller=CMB_LINE, key=CMB_KEY)
    await settle(client, posted["delivery"])
    filed = await client.post(
        "/api/enterprises/cmb/brand-requests",
        json={"changes": {"brand_name": "招商银行信用卡"}},
        headers=auth(CMB_KEY),
    )
    rid = (await filed.json())["id"]
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, "PNG")
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(buf.getvalue()), filename="logo.png", content_type="image/png")
    r = await client.post("/api/enterprises/cmb/media", data=form, headers=auth(CMB_KEY))
    assert r.status == 201
    media_id = (await r.json())["id"]  # the library routes are probed with cmb's own file
    store = client.app[delivery_key].store
    link = await client.app[delivery_key].links.mint(
        "cmb", CUSTOMER, posted["delivery"], 0, "ussd", "url", "https://www.cmbchina.com/", 86400.0
    )  # a short link of cmb's, probed by its code
    before = "\n".join(await store.snapshot())
    routes = sorted(
        {
            (r.method, r.resource.canonical)
            for r in client.app.router.routes()
            if r.resource is not None
            and r.resource.canonical.startswith(
                ("/api/enterprises", "/api/calls", "/api/replies", "/api/brand-requests")
            )
            and r.method in ("GET", "POST", "PUT", "DELETE")
        }
    )
    assert len(routes) >= 36
    assert ("POST", "/api/enterprises/{eid}/media") in routes and (
        "GET",
        "/api/enterprises/{eid}/media/{id}/content",
    ) in routes
    bodies: dict[str, Any] = {
        "/api/calls": {"call_id": "evil", "caller": CMB_LINE, "callee": CUSTOMER, "phase": "ringing"},
        "/api/replies": {"from": CUSTOMER, "to": CMB_LINE, "text": "TD"},
    }
    for method, path in routes:
        # the other enterprise's ids: enterprise cmb, its line, its card, its call
        own = "identity" if "/cards" in path else media_id if "/media" in path else CMB_LINE
        ids = {
            "eid": "cmb",
            "id": own,
            "call_id": "cmb-call",
            "kid": "0123456789ab",
            "rid": rid,
            "n": "1",
            "carrier": "china-unicom",
            "code": link.code,
            "x": "identity~0001",  # an experiment on cmb's card
        }
        url = _fill(path, ids)
        body = bodies.get(
            path,
            {
                "id": "x",
                "number": "13700000000",
                "verified": True,
                "name": "x",
                "signature": "x",
                "phase": "ringing",
                "template": "staff-card",
                "units": 1,
                "valid_from": 0,
                "valid_to": 1,
                "template_data": {},
                "count": 1,
                "changes": {"signature": "招商银行"},
                "approve": True,
            },
        )
        anon = await client.request(method, url, json=body)
        assert anon.status == 401, (method, url)
        assert (await anon.json())["error"] == "unauthorized"
        other = await client.request(method, url, json=body, headers=auth(SF_KEY))
        text = await other.text()
        if path == "/api/enterprises" and method == "GET":
            assert other.status == 200 and "cmb" not in text and "招商" not in text
            continue
        assert other.status in (403, 404, 422), (method, url, other.status, text)
        assert "招商" not in text and "bank-identity" not in text, (method, url)
    assert "\n".join(await store.snapshot()) == before  # nothing of cmb was read into or written by sf


async def test_seed_errors_name_the_file_and_path(tmp_path: Path) -> None:
    store = SqliteDeliveryStore(tmp_path / "d.sqlite3")
    store.open()
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "enterprises:\n  - id: a\n    name: A\n    signature: A\n    lines:\n      - {number: 1, kind: fax}\n",
        "utf-8",
    )
    with pytest.raises(SeedError, match=r"seed.yaml: enterprises\[0\].lines\[0\]"):
        await load_seed(store, seed)
    store.close()


async def test_a_bad_seed_stops_the_server_with_one_line(tmp_path: Path) -> None:
    """The server does not start on a seed it cannot load: SystemExit naming file and path."""
    from aiohttp.test_utils import TestServer

    from mingpian.app import create_app
    from mingpian.settings import Settings
    from tests.support.templates import TEMPLATES

    seed = tmp_path / "seed.yaml"
    seed.write_text("enterprises:\n  - {id: a, name: A}\n", "utf-8")
    app = create_app(Settings(template_dir=TEMPLATES, data_dir=tmp_path / "var", delivery_seed=str(seed)))
    server = TestServer(app)
    with pytest.raises(SystemExit, match=r"seed.yaml: enterprises\[0\]: 'signature' is a required property"):
        await server.start_server()
    await server.close()


async def test_tenant_edges_answer_alike_and_cards_are_checked_when_written(make_app: AppFactory) -> None:
    client = await make_app()
    sf = auth(SF_KEY)
    # another enterprise's number answers exactly as a number that is nobody's line
    unknown = await client.get("/api/enterprises/sf/lines/13700000000", headers=sf)
    theirs = await client.get(f"/api/enterprises/sf/lines/{CMB_LINE}", headers=sf)
    assert unknown.status == theirs.status == 404
    a, b = await unknown.json(), await theirs.json()
    assert (
        a["error"] == b["error"] == "not_found"
        and a["message"].replace("13700000000", CMB_LINE) == b["message"]
    )
    # a number can be one enterprise's line only: claiming a taken one is a 409 that says not whose
    claimed = await client.post("/api/enterprises/sf/lines", json={"number": CMB_LINE}, headers=sf)
    body = await claimed.json()
    assert claimed.status == 409 and body["error"] == "taken" and body["problems"][0]["path"] == "$.number"
    assert "another" not in body["message"] and "cmb" not in str(body) and "招商" not in str(body)
    # a line's number never changes, so a PUT naming another number is refused before it is looked up
    mine = f"/api/enterprises/sf/lines/{SF_HOTLINE}"
    answers = []
    for number in (CMB_LINE, "13700000000"):
        resp = await client.put(mine, json={"number": number}, headers=sf)
        answers.append((resp.status, (await resp.json())["error"]))
    assert answers == [(422, "id_mismatch")] * 2
    free = await client.post("/api/enterprises/sf/lines", json={"number": "13700000009"}, headers=sf)
    assert free.status == 201
    # (the operator, who sees every enterprise, is told why)
    taken = await client.post("/api/enterprises/sf/lines", json={"number": CMB_LINE}, headers=auth(OPERATOR))
    assert taken.status == 409 and (await taken.json())["error"] == "taken"
    # a card names only its own enterprise's lines: theirs and nobody's answer alike
    card = {"id": "c2", "phase": "ended", "template": "courier-hangup", "data": sample("courier-hangup")}
    answers = []
    for number in (CMB_LINE, "13700000000"):
        resp = await client.post("/api/enterprises/sf/cards", json={**card, "line": number}, headers=sf)
        body = await resp.json()
        assert (
            resp.status == 422 and body["error"] == "unknown_line" and body["problems"][0]["path"] == "$.line"
        )
        answers.append(body["message"].replace(CMB_LINE, "N").replace("+8613700000000", "N"))
    assert answers[0] == answers[1]
    # the same for an estimate's line
    est = {"template": "courier-hangup", "data": sample("courier-hangup"), "count": 10, "line": CMB_LINE}
    resp = await client.post("/api/enterprises/sf/estimate", json=est, headers=sf)
    assert resp.status == 422 and (await resp.json())["problems"][0]["path"] == "$.line"
    resp = await client.post("/api/enterprises/sf/estimate", json={**est, "line": SF_HOTLINE}, headers=sf)
    assert resp.status == 200
    # the same for a package's lines (operator-written)
    pkg = {"id": "p2", "units": 1, "valid_from": 0, "valid_to": 1, "lines": [SF_HOTLINE, CMB_LINE]}
    resp = await client.post("/api/enterprises/sf/packages", json=pkg, headers=auth(OPERATOR))
    assert resp.status == 422 and (await resp.json())["problems"][0]["path"] == "$.lines[1]"
    # card data is checked against the template's schema on create ...
    bad = {**card, "data": {**sample("courier-hangup"), "status": "丢了", "courier": {"name": "王"}}}
    resp = await client.post("/api/enterprises/sf/cards", json=bad, headers=sf)
    body = await resp.json()
    assert resp.status == 422 and body["error"] == "invalid"
    assert {p["path"] for p in body["problems"]} == {"$.data.status", "$.data.courier.phone"}
    assert (await client.post("/api/enterprises/sf/cards", json=card, headers=sf)).status == 201
    # ... and on update
    resp = await client.put(
        "/api/enterprises/sf/cards/c2", json={**card, "data": {"waybill": "x"}}, headers=sf
    )
    paths = {p["path"] for p in (await resp.json())["problems"]}
    assert resp.status == 422 and {"$.data.waybill", "$.data.status", "$.data.courier"} <= paths
    # fields a call fills (call fields) or the line's staff member supplies need not be in the card
    partial = {k: v for k, v in sample("courier-hangup").items() if k != "waybill"}
    resp = await client.put(
        "/api/enterprises/sf/cards/c2",
        json={**card, "data": partial, "call_fields": {"waybill": "caller"}},
        headers=sf,
    )
    assert resp.status == 200
    staff_card = {"id": "c3", "phase": "answered", "template": "staff-card", "line": SF_LINE}
    staff_card["data"] = {"company": sample("staff-card")["company"]}  # employee: from the line's staff
    assert (await client.post("/api/enterprises/sf/cards", json=staff_card, headers=sf)).status == 201
    resp = await client.post(
        "/api/enterprises/sf/cards", json={**staff_card, "id": "c4", "line": SF_HOTLINE}, headers=sf
    )
    assert resp.status == 422 and (await resp.json())["problems"][0]["path"] == "$.data.employee"
