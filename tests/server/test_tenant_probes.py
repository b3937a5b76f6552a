"""The attacks on brand identity, webhooks and tenant edges, replayed against a real server
process (`python -m mingpian serve`, configured through the environment): an enterprise cannot
rebrand its verified line or take another's chatbot, a captured CT/CU signature opens nothing a
second time, a status report cannot reach another bot's message, message lookups need a key, and
another enterprise's numbers answer like nobody's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from chatbot.auth import csp_signature_headers
from chatbot.turns import outbound_id
from mingpian.settings import PROJECT_ROOT
from simulators.maap import Simulator
from tests.support.processes import free_port, wait_port

OPERATOR = "mpk_probe-operator-key-0123456789abcdef"
SF_KEY = "mpk_probe-sf-key-0123456789abcdef"
CMB_KEY = "mpk_probe-cmb-key-0123456789abcdef"
TOKEN = "probe-csp-token"
SF_BOT = "sip:106500@botplatform.rcs.chinaunicom.cn"
CMB_BOT = "sip:95555@botplatform.rcs.chinaunicom.cn"
USER = "tel:+8613912345678"


def _sample(name: str) -> dict[str, Any]:
    return dict(json.loads((PROJECT_ROOT / "card_templates" / name / "sample.json").read_text("utf-8")))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("probes")
    seed = {
        "operator_keys": [OPERATOR],
        "enterprises": [
            {
                "id": "sf",
                "name": "顺丰速运有限公司",
                "signature": "顺丰速运",
                "chatbot": SF_BOT,
                "keys": [SF_KEY],
                "lines": [{"number": "400-811-1111", "verified": True}],
            },
            {
                "id": "cmb",
                "name": "招商银行",
                "signature": "招商银行",
                "chatbot": CMB_BOT,
                "keys": [CMB_KEY],
                "lines": [{"number": "95555", "verified": True}],
            },
        ],
    }
    (tmp / "seed.yaml").write_text(yaml.safe_dump(seed, allow_unicode=True), "utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        MINGPIAN_PORT=str(port),
        MINGPIAN_DATA_DIR=str(tmp / "var"),
        MINGPIAN_DELIVERY_SEED=str(tmp / "seed.yaml"),
        MINGPIAN_WEBHOOK_CSP_TOKEN=TOKEN,
        MINGPIAN_LOG_LEVEL="ERROR",
    )
    with (tmp / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
    try:
        wait_port(port, proc, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_brand_change_on_a_verified_line_without_the_operator(server: str) -> None:
    sf = requests.get(f"{server}/api/enterprises/sf", headers=_key(SF_KEY), timeout=10).json()
    for change in ({"signature": "中国银行"}, {"brand_name": "中国银行"}, {"chatbot": "sip:b@bot"}):
        resp = requests.put(
            f"{server}/api/enterprises/sf", json={**sf, **change}, headers=_key(SF_KEY), timeout=10
        )
        assert resp.status_code == 409 and resp.json()["error"] == "brand_locked"
    # not even the operator can give it another enterprise's chatbot
    resp = requests.put(
        f"{server}/api/enterprises/sf", json={**sf, "chatbot": "95555"}, headers=_key(OPERATOR), timeout=10
    )
    assert resp.status_code == 409 and resp.json()["error"] == "chatbot_taken"
    after = requests.get(f"{server}/api/enterprises/sf", headers=_key(SF_KEY), timeout=10).json()
    assert after == sf


def test_a_captured_csp_signature_opens_nothing_again(server: str) -> None:
    sim = Simulator(webhook=f"{server}/maap/courier", chatbot=SF_BOT)
    first = sim.message(USER, text="你好")
    headers = {"Content-Type": "application/json", **csp_signature_headers(TOKEN)}
    msg = f"{server}/maap/courier/messageNotification/{SF_BOT}/messages"
    assert requests.post(msg, data=json.dumps(first), headers=headers, timeout=10).status_code == 200
    forged = sim.message(USER, postback="track:SF1234567890123")
    for url in (
        msg,
        f"{server}/maap/bank/messageNotification/{SF_BOT}/messages",
        f"{server}/maap/courier/events",
        f"{server}/maap/courier/InboundMessageNotification/{SF_BOT}",
    ):
        resp = requests.post(url, data=json.dumps(forged), headers=headers, timeout=10)
        assert resp.status_code == 401, url


def test_status_reports_reach_only_their_bot_and_lookups_need_a_key(server: str) -> None:
    sim = Simulator(webhook=f"{server}/maap/courier", chatbot=SF_BOT)
    tap = sim.message(USER, postback="track:SF1234567890123")
    msg = f"{server}/maap/courier/messageNotification/{SF_BOT}/messages"
    signed = {"Content-Type": "application/json", **csp_signature_headers(TOKEN)}
    assert requests.post(msg, data=json.dumps(tap), headers=signed, timeout=10).status_code == 200
    reply = outbound_id("courier", tap["messageId"], 0)
    lookup = f"{server}/api/chatbot/messages/{reply}"
    assert requests.get(lookup, timeout=10).status_code == 401
    assert requests.get(lookup, headers=_key(SF_KEY), timeout=10).status_code == 403
    assert requests.get(lookup, headers=_key(OPERATOR), timeout=10).json()["delivery"] is None
    report = {"deliveryInfoList": [{"messageId": reply, "status": "failed", "errorCode": 5}]}
    resp = requests.post(
        f"{server}/maap/bank/deliveryNotification/{SF_BOT}/status",
        data=json.dumps(report),
        headers={"Content-Type": "application/json", **csp_signature_headers(TOKEN)},
        timeout=10,
    )
    assert resp.status_code == 200
    info = requests.get(lookup, headers=_key(OPERATOR), timeout=10).json()
    assert info["delivery"] is None and info["lastError"] is None


def test_another_enterprise_s_numbers_answer_like_nobody_s(server: str) -> None:
    lines = f"{server}/api/enterprises/sf/lines"
    theirs = requests.get(f"{lines}/95555", headers=_key(SF_KEY), timeout=10)
    nobody = requests.get(f"{lines}/13700000000", headers=_key(SF_KEY), timeout=10)
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["error"] == nobody.json()["error"] == "not_found"
    # a number is one enterprise's line at most: a claim of a taken one is a 409 that says not whose
    claim = requests.post(lines, json={"number": "95555"}, headers=_key(SF_KEY), timeout=10)
    assert claim.status_code == 409 and claim.json()["error"] == "taken"
    assert "cmb" not in claim.text and "招商" not in claim.json()["message"] and "another" not in claim.text
    cards = f"{server}/api/enterprises/sf/cards"
    card = {"id": "probe", "phase": "ended", "template": "courier-hangup", "data": _sample("courier-hangup")}
    for number in ("95555", "13700000000"):
        resp = requests.post(cards, json={**card, "line": number}, headers=_key(SF_KEY), timeout=10)
        assert resp.status_code == 422 and resp.json()["error"] == "unknown_line"
    resp = requests.post(cards, json={**card, "data": {"waybill": "?"}}, headers=_key(SF_KEY), timeout=10)
    assert resp.status_code == 422
    assert {"$.data.waybill", "$.data.status"} <= {p["path"] for p in resp.json()["problems"]}
    call = {"call_id": "probe-1", "caller": "95555", "callee": "13912345678", "phase": "ringing"}
    resp = requests.post(f"{server}/api/calls", json=call, headers=_key(SF_KEY), timeout=10)
    assert resp.status_code == 404 and resp.json()["error"] == "unknown_line"
    assert resp.headers["Server"] == "Mingpian"
