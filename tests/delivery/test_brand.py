"""Brand identity under the operator's control: once an enterprise has verified lines, its
signature, names, colour, logo and chatbot change only by the operator or through a brand change
request the operator approves; until then its verified lines keep the approved brand. A chatbot
address belongs to one enterprise. Every step is audited. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import jsonschema

from mingpian.api.delivery import delivery_key
from simulators.smsc import GatewaySim

from .support import (
    CHATBOT,
    CMB_KEY,
    CUSTOMER,
    OPERATOR,
    SF_KEY,
    AppFactory,
    Client,
    auth,
    call,
    rcs_seed,
    settle,
)


async def _sf(client: Client) -> dict[str, Any]:
    return dict(await (await client.get("/api/enterprises/sf", headers=auth(OPERATOR))).json())


async def _audit(client: Client, eid: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/enterprises/{eid}/audit", headers=auth(OPERATOR))
    return list((await resp.json())["audit"])


async def _first_text(client: Client, gateway: GatewaySim, call_id: str) -> str:
    await call(client, call_id, "ringing")
    await settle(client, f"{call_id}:ringing")
    return str(gateway.submitted(CUSTOMER[3:])[-1]["text"])


async def test_a_verified_enterprise_cannot_rebrand_itself(make_app: AppFactory, gateway: GatewaySim) -> None:
    client = await make_app()
    sf = await _sf(client)
    for field, value in [
        ("signature", "中国银行"),
        ("brand_name", "中国银行"),
        ("name", "中国银行股份有限公司"),
        ("logo", "https://evil.example/logo.png"),
        ("color", "#ff0000"),
        ("chatbot", "sip:b@bot"),
    ]:
        resp = await client.put("/api/enterprises/sf", json={**sf, field: value}, headers=auth(SF_KEY))
        body = await resp.json()
        assert resp.status == 409 and body["error"] == "brand_locked", (field, body)
        assert body["problems"][0]["path"] == f"$.{field}" and "brand-requests" in body["message"]
    # removing an optional brand field is a change too
    resp = await client.put(
        "/api/enterprises/sf", json={k: v for k, v in sf.items() if k != "brand_name"}, headers=auth(SF_KEY)
    )
    assert resp.status == 409
    # everything else stays the enterprise's to change
    policy = {"chain": ["ussd", "sms"], "timeouts": {"ussd": 0.6, "sms": 0.8}}
    resp = await client.put("/api/enterprises/sf", json={**sf, "policy": policy}, headers=auth(SF_KEY))
    assert resp.status == 200
    assert (await _sf(client))["signature"] == "顺丰速运"
    assert (await _first_text(client, gateway, "b1")).startswith("【顺丰速运】")
    # the operator may change it directly, audited with what changed
    resp = await client.put(
        "/api/enterprises/sf", json={**sf, "signature": "顺丰快递"}, headers=auth(OPERATOR)
    )
    assert resp.status == 200
    entry = (await _audit(client, "sf"))[0]
    assert entry["actor"] == "operator" and entry["detail"] == {"brand": {"signature": "顺丰快递"}}


async def test_an_enterprise_without_verified_lines_edits_its_brand(make_app: AppFactory) -> None:
    client = await make_app()
    cmb = await (await client.get("/api/enterprises/cmb", headers=auth(CMB_KEY))).json()
    url = "/api/enterprises/cmb/lines/95555/verify"
    resp = await client.post(url, json={"verified": False}, headers=auth(OPERATOR))
    assert resp.status == 200
    resp = await client.put(
        "/api/enterprises/cmb", json={**cmb, "brand_name": "招商银行信用卡"}, headers=auth(CMB_KEY)
    )
    assert resp.status == 200 and (await resp.json())["brand_name"] == "招商银行信用卡"
    # once the operator verifies a line, that brand is the approved one
    assert (await client.post(url, json={"verified": True}, headers=auth(OPERATOR))).status == 200
    resp = await client.put(
        "/api/enterprises/cmb", json={**cmb, "brand_name": "别的银行"}, headers=auth(CMB_KEY)
    )
    assert resp.status == 409


async def test_a_brand_change_request_applies_only_once_approved(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    client = await make_app()
    sf = auth(SF_KEY)
    op = auth(OPERATOR)
    resp = await client.post(
        "/api/enterprises/sf/brand-requests",
        json={"changes": {"signature": "顺丰快递", "brand_name": "顺丰快递"}, "note": "品牌升级"},
        headers=sf,
    )
    req = await resp.json()
    assert resp.status == 201 and req["state"] == "pending" and req["filed_by"] == "enterprise:sf"
    rid = req["id"]
    # the answer is what the OpenAPI document says (a console is built from it)
    doc = await (await client.get("/api/openapi.json")).json()
    record = {**doc["components"]["schemas"]["DeliveryBrandRequestRecord"], "components": doc["components"]}
    jsonschema.validate(req, record)
    # one pending at a time
    again = await client.post(
        "/api/enterprises/sf/brand-requests", json={"changes": {"signature": "X"}}, headers=sf
    )
    assert again.status == 409 and (await again.json())["error"] == "request_pending"
    # until approved, the verified line keeps the approved brand
    assert (await _first_text(client, gateway, "r1")).startswith("【顺丰速运】")
    # only the operator decides; it sees the queue of every enterprise
    decision = f"/api/enterprises/sf/brand-requests/{rid}/decision"
    assert (await client.post(decision, json={"approve": True}, headers=sf)).status == 403
    assert (await client.get("/api/brand-requests", headers=sf)).status == 403
    queue = await (await client.get("/api/brand-requests", headers=op)).json()
    assert [r["id"] for r in queue["brand_requests"]] == [rid]
    bad = await client.get("/api/brand-requests?state=maybe", headers=op)
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_query"
    resp = await client.post(decision, json={"approve": True, "note": "资质已核"}, headers=op)
    done = await resp.json()
    jsonschema.validate(done, record)
    assert resp.status == 200 and done["state"] == "approved" and done["decision_note"] == "资质已核"
    assert (await _sf(client))["signature"] == "顺丰快递"
    assert (await _first_text(client, gateway, "r2")).startswith("【顺丰快递】")
    # decided once
    resp = await client.post(decision, json={"approve": False}, headers=op)
    assert resp.status == 409 and (await resp.json())["error"] == "not_pending"
    assert (await client.get("/api/brand-requests", headers=op)).status == 200
    approved = await (await client.get("/api/brand-requests?state=approved", headers=op)).json()
    assert [r["id"] for r in approved["brand_requests"]] == [rid]
    # refused and withdrawn requests change nothing
    resp = await client.post(
        "/api/enterprises/sf/brand-requests", json={"changes": {"signature": "中国银行"}}, headers=sf
    )
    rid2 = (await resp.json())["id"]
    resp = await client.post(
        f"/api/enterprises/sf/brand-requests/{rid2}/decision",
        json={"approve": False, "note": "与企业名称不符"},
        headers=op,
    )
    assert resp.status == 200 and (await resp.json())["state"] == "refused"
    resp = await client.post(
        "/api/enterprises/sf/brand-requests",
        json={"changes": {"logo": "https://x.example/l.png"}},
        headers=sf,
    )
    rid3 = (await resp.json())["id"]
    resp = await client.delete(f"/api/enterprises/sf/brand-requests/{rid3}", headers=sf)
    assert resp.status == 200 and (await resp.json())["state"] == "withdrawn"
    assert (await _sf(client))["signature"] == "顺丰快递" and "logo" not in await _sf(client)
    listed = await (await client.get("/api/enterprises/sf/brand-requests", headers=sf)).json()
    assert [r["state"] for r in listed["brand_requests"]] == ["withdrawn", "refused", "approved"]
    # every step audited
    actions = [(e["actor"], e["action"]) for e in await _audit(client, "sf")]
    for step in [
        ("enterprise:sf", "file brand request"),
        ("operator", "approve brand request"),
        ("operator", "refuse brand request"),
        ("enterprise:sf", "withdraw brand request"),
    ]:
        assert step in actions
    refused = next(e for e in await _audit(client, "sf") if e["action"] == "refuse brand request")
    assert refused["detail"] == {
        "request": rid2,
        "note": "与企业名称不符",
        "changes": {"signature": "中国银行"},
    }
    # invalid requests name the JSON path
    bad = await client.post(
        "/api/enterprises/sf/brand-requests", json={"changes": {"policy": {}}}, headers=sf
    )
    assert bad.status == 422 and (await bad.json())["problems"][0]["path"] == "$.changes"
    bad = await client.post("/api/enterprises/sf/brand-requests", json={"changes": {}}, headers=sf)
    assert bad.status == 422


async def test_a_chatbot_address_belongs_to_one_enterprise(make_app: AppFactory) -> None:
    client = await make_app(rcs_seed())
    op = auth(OPERATOR)
    cmb = await (await client.get("/api/enterprises/cmb", headers=op)).json()
    # the same chatbot, however it is spelt, is sf's
    for spelling in (CHATBOT, "106500", "sip:106500@other.example"):
        resp = await client.put("/api/enterprises/cmb", json={**cmb, "chatbot": spelling}, headers=op)
        body = await resp.json()
        assert resp.status == 409 and body["error"] == "chatbot_taken", spelling
        assert body["problems"][0]["path"] == "$.chatbot"
    resp = await client.post(
        "/api/enterprises", json={"id": "new", "name": "N", "signature": "N", "chatbot": CHATBOT}, headers=op
    )
    assert resp.status == 409 and (await resp.json())["error"] == "chatbot_taken"
    resp = await client.post(
        "/api/enterprises/cmb/brand-requests", json={"changes": {"chatbot": CHATBOT}}, headers=auth(CMB_KEY)
    )
    assert resp.status == 409 and (await resp.json())["problems"][0]["path"] == "$.changes.chatbot"
    # a request for a free address is approved; the address is then taken for sf
    resp = await client.post(
        "/api/enterprises/cmb/brand-requests",
        json={"changes": {"chatbot": "sip:95555@botplatform.rcs.chinaunicom.cn"}},
        headers=auth(CMB_KEY),
    )
    rid = (await resp.json())["id"]
    resp = await client.post(
        f"/api/enterprises/cmb/brand-requests/{rid}/decision", json={"approve": True}, headers=op
    )
    assert resp.status == 200
    sf = await _sf(client)
    resp = await client.put("/api/enterprises/sf", json={**sf, "chatbot": "95555"}, headers=op)
    assert resp.status == 409
    # sf lets its address go (the operator changes it): now cmb may have it
    resp = await client.put("/api/enterprises/sf", json={**sf, "chatbot": "sip:1@bot"}, headers=op)
    assert resp.status == 200
    resp = await client.put("/api/enterprises/cmb", json={**cmb, "chatbot": CHATBOT}, headers=op)
    assert resp.status == 200
    # a deleted enterprise's address is free again
    assert (await client.delete("/api/enterprises/cmb", headers=op)).status == 204
    resp = await client.put("/api/enterprises/sf", json={**sf, "chatbot": CHATBOT}, headers=op)
    assert resp.status == 200


async def _source(client: Client, gateway: GatewaySim, call_id: str) -> str:
    """The source address of the first message a call on sf's mobile line sends."""
    await call(client, call_id, "ringing")
    await settle(client, f"{call_id}:ringing")
    return str(gateway.submitted(CUSTOMER[3:])[-1]["source"])


async def test_the_sender_number_is_the_operators_to_approve(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    """An enterprise cannot make its messages come from a number nobody approved for it (a bank's
    95566); its own verified lines it may use, anything else goes through the operator."""
    client = await make_app()
    sf, op = auth(SF_KEY), auth(OPERATOR)
    ent = await _sf(client)
    for value in ("95566", "10690000", "ICBC", "4008111111"):  # the hotline is not verified yet
        resp = await client.put("/api/enterprises/sf", json={**ent, "sms_sender": value}, headers=sf)
        body = await resp.json()
        assert resp.status == 409 and body["error"] == "brand_locked", (value, body)
        assert body["problems"][0]["path"] == "$.sms_sender" and "brand-requests" in body["message"]
    assert "sms_sender" not in await _sf(client)
    assert await _source(client, gateway, "s1") == "13800000001"  # the line itself
    # an enterprise without verified lines is held to the same rule
    cmb = await (await client.get("/api/enterprises/cmb", headers=op)).json()
    assert (
        await client.post("/api/enterprises/cmb/lines/95555/verify", json={"verified": False}, headers=op)
    ).ok
    resp = await client.put(
        "/api/enterprises/cmb", json={**cmb, "sms_sender": "95566"}, headers=auth(CMB_KEY)
    )
    assert resp.status == 409 and (await resp.json())["problems"][0]["path"] == "$.sms_sender"
    # a verified line of its own needs no review, and stops being a sender when it stops being verified
    url = "/api/enterprises/sf/lines/4008111111/verify"
    assert (await client.post(url, json={"verified": True}, headers=op)).status == 200
    resp = await client.put("/api/enterprises/sf", json={**ent, "sms_sender": "4008111111"}, headers=sf)
    assert resp.status == 200, await resp.text()
    assert await _source(client, gateway, "s2") == "4008111111"
    assert (await client.post(url, json={"verified": False}, headers=op)).status == 200
    assert await _source(client, gateway, "s3") == "13800000001"
    # a request the operator approves: the number is sent from once approved, not before
    resp = await client.post(
        "/api/enterprises/sf/brand-requests",
        json={"changes": {"sms_sender": "10690001"}, "note": "运营商分配的服务代码"},
        headers=sf,
    )
    assert resp.status == 201, await resp.text()
    rid = (await resp.json())["id"]
    assert await _source(client, gateway, "s4") == "13800000001"
    decision = f"/api/enterprises/sf/brand-requests/{rid}/decision"
    assert (await client.post(decision, json={"approve": True}, headers=op)).status == 200
    assert (await _sf(client))["sms_sender"] == "10690001"
    assert await _source(client, gateway, "s5") == "10690001"
    # the enterprise's own write keeps the approved sender; removing it is always allowed
    ent = await _sf(client)
    resp = await client.put(
        "/api/enterprises/sf", json={**ent, "photo_hosts": ["img.example.com"]}, headers=sf
    )
    assert resp.status == 200
    assert await _source(client, gateway, "s6") == "10690001"
    resp = await client.put(
        "/api/enterprises/sf", json={k: v for k, v in ent.items() if k != "sms_sender"}, headers=sf
    )
    assert resp.status == 200
    assert await _source(client, gateway, "s7") == "13800000001"
    # the operator sets it directly, audited
    resp = await client.put("/api/enterprises/sf", json={**ent, "sms_sender": "10690002"}, headers=op)
    assert resp.status == 200
    assert await _source(client, gateway, "s8") == "10690002"
    entry = (await _audit(client, "sf"))[0]
    assert entry["actor"] == "operator" and entry["detail"] == {"brand": {"sms_sender": "10690002"}}


async def test_a_sender_stored_without_approval_is_not_sent_from(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    """A sender an enterprise wrote for itself before the number was part of the brand has no
    approval: messages go out from the line until the operator approves one."""
    client = await make_app()
    store = client.app[delivery_key].store
    ent = await _sf(client)
    await store.put("enterprise", "", "sf", {**ent, "sms_sender": "95566"})
    assert await _source(client, gateway, "u1") == "13800000001"
    # the enterprise saving its document again does not approve it either
    stored = await _sf(client)
    resp = await client.put(
        "/api/enterprises/sf", json={**stored, "photo_hosts": ["img.example.com"]}, headers=auth(SF_KEY)
    )
    assert resp.status == 200
    assert await _source(client, gateway, "u2") == "13800000001"
    # nor does the operator saving the document for something else; naming the approval does
    stored = await _sf(client)
    resp = await client.put("/api/enterprises/sf", json={**stored, "photo_hosts": []}, headers=auth(OPERATOR))
    assert resp.status == 200 and "sms_sender_approved" not in await resp.json()
    assert await _source(client, gateway, "u3") == "13800000001"
    approve = {**stored, "sms_sender_approved": "95566"}
    resp = await client.put("/api/enterprises/sf", json=approve, headers=auth(SF_KEY))
    assert resp.status == 200 and "sms_sender_approved" not in await resp.json()  # not the enterprise's
    resp = await client.put("/api/enterprises/sf", json=approve, headers=auth(OPERATOR))
    assert resp.status == 200 and (await resp.json())["sms_sender_approved"] == "95566"
    assert await _source(client, gateway, "u4") == "95566"


async def test_an_unverified_line_is_never_the_sender(make_app: AppFactory, gateway: GatewaySim) -> None:
    """A line the operator has not verified may be anyone's number (a bank's 95566 added by another
    enterprise): its texts go out from the platform's sender, never from the line itself."""
    client = await make_app()
    resp = await client.post(
        "/api/enterprises/sf/lines", json={"number": "95566", "kind": "short"}, headers=auth(SF_KEY)
    )
    assert resp.status == 201, await resp.text()
    await settle(client, (await call(client, "spoof1", "ended", caller="95566", key=SF_KEY))["delivery"])
    sub = gateway.submitted(CUSTOMER[3:])[0]
    assert sub["source"] == "" and (sub["source_ton"], sub["source_npi"]) == (0, 0)  # the SMSC's own
    assert gateway.problems == []  # an empty source is what SMPP 3.4 leaves to the SMSC
    # a platform sender the operator configured is used instead
    await client.close()
    client = await make_app(delivery_platform_sender="10690000")
    await settle(client, (await call(client, "spoof2", "ended", caller="95566", key=SF_KEY))["delivery"])
    assert gateway.submitted(CUSTOMER[3:])[-1]["source"] == "10690000"
    # the verified mobile line still speaks for itself
    await call(client, "own1", "ringing")
    await settle(client, "own1:ringing")
    assert gateway.submitted(CUSTOMER[3:])[-1]["source"] == "13800000001"
