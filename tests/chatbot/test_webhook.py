"""Webhook edges: authentication (401 for every failure), malformed bodies (400 + JSON path),
repeated deliveries (one reply), the URL check, status reports, and the GSMA dialect."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from chatbot.auth import csp_signature_headers, hmac_headers, username_header
from tests.chatbot.support import (
    BEARER,
    CSP_TOKEN,
    HMAC_SECRET,
    OPERATOR,
    PASSWORD,
    USER,
    USERNAME,
    WAYBILL,
    start_bot,
)

T = Any
CHATBOT = "sip:106500@botplatform.rcs.chinaunicom.cn"
MSG_PATH = f"/maap/courier/messageNotification/{CHATBOT}/messages"


async def test_same_delivery_three_times_gives_one_reply(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    s = bot.sim
    body = s.message(USER, postback=f"track:{WAYBILL}")
    assert [await s.deliver(body) for _ in range(3)] == [200, 200, 200]
    await s.wait_for(1)
    # Give a wrongly duplicated reply every chance to show up before counting.
    await s.tap(USER, f"reschedule:{WAYBILL}")
    got = await s.wait_for(2)
    assert len(got) == 2 and s.stats()["duplicateReplies"] == 0
    assert got[0].text.startswith("运单 ") and got[1].text.startswith("请选择新的派送时间")
    # The platform's later retry (even days later) is still recognised.
    assert await s.deliver(body) == 200
    await s.tap(USER, f"track:{WAYBILL}")
    assert len(await s.wait_for(3)) == 3 and s.stats()["duplicateReplies"] == 0


GSMA_AUTH = {"Authorization": f"Bearer {BEARER}"}


def _signed(raw: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", **csp_signature_headers(CSP_TOKEN)}


async def test_every_auth_scheme_accepts_good_credentials(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    """Each on the routes of its dialect (by default: CT/CU signature, bearer, Username/Password,
    and our own HMAC on all)."""
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    body = bot.sim.message(USER, text="你好")
    raw = json.dumps(body).encode()
    for headers in (csp_signature_headers(CSP_TOKEN), hmac_headers(HMAC_SECRET, raw)):
        resp = await bot.client.post(MSG_PATH, data=raw, headers=headers)
        assert resp.status == 200, (headers, await resp.text())
        ack = await resp.json()
        assert ack == {
            "messageId": body["messageId"],
            "conversationId": body["conversationId"],
            "contributionId": body["contributionId"],
            "errorCode": 0,
            "errorMessage": "",
        }
    status = json.dumps({"deliveryInfoList": [{"messageId": "x", "status": "delivered"}]}).encode()
    for path, raw, headers in (
        ("/maap/courier/events", b"{}", GSMA_AUTH),
        (f"/maap/courier/DeliveryInfoNotification/{CHATBOT}", b"<x/>", username_header(USERNAME, PASSWORD)),
        (f"/maap/courier/deliveryNotification/{CHATBOT}/status", status, hmac_headers(HMAC_SECRET, status)),
    ):
        resp = await bot.client.post(path, data=raw, headers=headers)
        assert resp.status != 401, (path, await resp.text())


async def test_each_route_takes_only_its_dialect_s_schemes(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    raw = json.dumps(bot.sim.message(USER, text="你好")).encode()
    cm = f"/maap/courier/InboundMessageNotification/{CHATBOT}"
    for path, headers in (
        ("/maap/courier/events", csp_signature_headers(CSP_TOKEN)),
        (cm, csp_signature_headers(CSP_TOKEN)),
        (MSG_PATH, GSMA_AUTH),
        (cm, GSMA_AUTH),
        (MSG_PATH, username_header(USERNAME, PASSWORD)),
        ("/maap/courier/events", username_header(USERNAME, PASSWORD)),
    ):
        resp = await bot.client.post(path, data=raw, headers=headers)
        assert resp.status == 401, (path, headers)
        assert "expected one of" in (await resp.json())["message"]
    # configurable per dialect: a CT/CU route that takes only our HMAC
    bot2 = await start_bot(aiohttp_client, sim, tmp_path / "2", webhook_csp_schemes=("hmac-sha256",))
    resp = await bot2.client.post(MSG_PATH, data=raw, headers=csp_signature_headers(CSP_TOKEN))
    assert resp.status == 401
    resp = await bot2.client.post(MSG_PATH, data=raw, headers=hmac_headers(HMAC_SECRET, raw))
    assert resp.status == 200
    bot3 = await start_bot(aiohttp_client, sim, tmp_path / "3", webhook_gsma_schemes=())
    resp = await bot3.client.post("/maap/courier/events", data=b"{}", headers=GSMA_AUTH)
    assert resp.status == 401 and "no webhook credentials" in (await resp.json())["message"]


async def test_a_csp_signature_is_used_once(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    """The CT/CU signature does not cover the body: a captured (timestamp, nonce, signature)
    must not carry another notification, nor the same one again, on any route."""
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    first = bot.sim.message(USER, text="你好")
    headers = csp_signature_headers(CSP_TOKEN)
    resp = await bot.client.post(MSG_PATH, json=first, headers=headers)
    assert resp.status == 200
    forged = bot.sim.message(USER, postback=f"track:{WAYBILL}")
    status = {"deliveryInfoList": [{"messageId": "x", "status": "delivered"}]}
    for path, body in (
        (MSG_PATH, forged),
        (MSG_PATH, first),
        (f"/maap/courier/deliveryNotification/{CHATBOT}/status", status),
    ):
        resp = await bot.client.post(path, json=body, headers=headers)
        err = await resp.json()
        assert resp.status == 401 and "already used" in err["message"], (path, err)
    await bot.sim.wait_for(1)  # the reply to the first message only
    await __import__("asyncio").sleep(0.2)
    assert len(bot.sim.received) == 1
    # a fresh signature goes through
    resp = await bot.client.post(MSG_PATH, json=forged, headers=csp_signature_headers(CSP_TOKEN))
    assert resp.status == 200


async def test_callbacks_from_outside_the_allowed_networks_are_403(
    aiohttp_client: T, sim: T, tmp_path: Path
) -> None:
    bot = await start_bot(
        aiohttp_client,
        sim,
        tmp_path,
        webhook_csp_networks=("10.0.0.0/8",),
        webhook_gsma_networks=("127.0.0.1",),
    )
    raw = json.dumps(bot.sim.message(USER, text="你好")).encode()
    resp = await bot.client.post(MSG_PATH, data=raw, headers=csp_signature_headers(CSP_TOKEN))
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    resp = await bot.client.post("/maap/courier/events", data=b"{}", headers=GSMA_AUTH)
    assert resp.status != 403


def _bad_auth_cases(raw: bytes) -> list[tuple[str, dict[str, str]]]:
    now = time.time()
    good = csp_signature_headers(CSP_TOKEN)
    b64 = base64.b64encode(
        hashlib.sha256("".join(sorted((CSP_TOKEN, good["timestamp"], good["nonce"]))).encode()).digest()
    ).decode()
    assert b64  # base64 of the right digest is accepted (below), a wrong one is not
    return [
        ("no credentials", {}),
        ("wrong csp token", csp_signature_headers("other-token")),
        ("stale csp timestamp", csp_signature_headers(CSP_TOKEN, now=now - 3600)),
        ("csp signature without nonce", {k: v for k, v in good.items() if k != "nonce"}),
        ("tampered csp signature", {**good, "signature": "0" * 64}),
        ("wrong hmac secret", hmac_headers("nope", raw)),
        ("hmac over another body", hmac_headers(HMAC_SECRET, raw + b" ")),
        ("stale hmac", hmac_headers(HMAC_SECRET, raw, now=now - 400)),
        ("future hmac", hmac_headers(HMAC_SECRET, raw, now=now + 600)),
        ("hmac bad timestamp", {**hmac_headers(HMAC_SECRET, raw), "X-Mingpian-Timestamp": "yesterday"}),
        ("wrong password", username_header(USERNAME, "wrong")),
        ("wrong username", username_header("root", PASSWORD)),
        ("wrong bearer", {"Authorization": "Bearer nope"}),
        ("basic auth", {"Authorization": "Basic " + base64.b64encode(b"maap:x").decode()}),
    ]


async def test_every_auth_failure_is_401_before_parsing(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    good_body = json.dumps(bot.sim.message(USER, postback=f"track:{WAYBILL}")).encode()
    for raw in (good_body, b"{not json", b"\xff\xfe"):
        for name, headers in _bad_auth_cases(raw):
            for path in (
                MSG_PATH,
                f"/maap/courier/deliveryNotification/{CHATBOT}/status",
                "/maap/courier/events",
                "/maap/no-such-bot/events",
            ):
                resp = await bot.client.post(path, data=raw, headers=headers)
                assert resp.status == 401, (name, path, resp.status)
                err = await resp.json()
                assert err["error"] == "unauthorized" and err["message"]
        resp = await bot.client.get("/maap/courier/notifyPath", headers={"echoStr": "x"})
        assert resp.status == 401
    assert bot.sim.received == []


async def test_base64_csp_signature_is_accepted(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    h = csp_signature_headers(CSP_TOKEN)
    digest = hashlib.sha256("".join(sorted((CSP_TOKEN, h["timestamp"], h["nonce"]))).encode()).digest()
    h["signature"] = base64.b64encode(digest).decode()
    resp = await bot.client.post(MSG_PATH, json=bot.sim.message(USER, text="你好"), headers=h)
    assert resp.status == 200


async def test_no_configured_credentials_refuses_everything(
    aiohttp_client: T, sim: T, tmp_path: Path
) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    auth = bot.client.app[__import__("mingpian.api.chatbot", fromlist=["runtime_key"]).runtime_key].auth
    object.__setattr__(auth, "csp_token", "")
    object.__setattr__(auth, "hmac_secret", "")
    object.__setattr__(auth, "username", "")
    object.__setattr__(auth, "bearer", "")
    resp = await bot.client.post(MSG_PATH, json={}, headers={"Authorization": f"Bearer {BEARER}"})
    assert resp.status == 401
    assert "no webhook credentials" in (await resp.json())["message"]


MALFORMED: list[tuple[str, Any, str]] = [
    ("not an object", [], "$"),
    (
        "missing messageId",
        {"senderAddress": USER, "messageList": [{"contentType": "text/plain", "contentText": "x"}]},
        "$.messageId",
    ),
    ("missing messageList", {"messageId": "m1", "senderAddress": USER}, "$.messageList"),
    ("empty messageList", {"messageId": "m1", "senderAddress": USER, "messageList": []}, "$.messageList"),
    (
        "item without contentType",
        {"messageId": "m1", "senderAddress": USER, "messageList": [{"contentText": "x"}]},
        "$.messageList[0].contentType",
    ),
    (
        "number as sender",
        {
            "messageId": "m1",
            "senderAddress": 138,
            "messageList": [{"contentType": "text/plain", "contentText": "x"}],
        },
        "$.senderAddress",
    ),
    (
        "tap that is not JSON",
        {
            "messageId": "m1",
            "senderAddress": USER,
            "messageList": [
                {
                    "contentType": "application/vnd.gsma.botsuggestion.response.v1.0+json",
                    "contentText": "{oops",
                }
            ],
        },
        "$.messageList[0].contentText",
    ),
    (
        "tap without postback",
        {
            "messageId": "m1",
            "senderAddress": USER,
            "messageList": [
                {
                    "contentType": "application/vnd.gsma.botsuggestion.response.v1.0+json",
                    "contentText": {"response": {"reply": {"displayText": "查询"}}},
                }
            ],
        },
        "$.messageList[0].contentText.response.reply.postback.data",
    ),
    (
        "bad base64",
        {
            "messageId": "m1",
            "senderAddress": USER,
            "messageList": [{"contentType": "text/plain", "contentEncoding": "base64", "contentText": "%%%"}],
        },
        "$.messageList[0].contentText",
    ),
    (
        "unknown encoding",
        {
            "messageId": "m1",
            "senderAddress": USER,
            "messageList": [{"contentType": "text/plain", "contentEncoding": "gbk", "contentText": "x"}],
        },
        "$.messageList[0].contentEncoding",
    ),
]


@pytest.mark.parametrize(("name", "body", "path"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_message_is_400_with_json_path(
    aiohttp_client: T, sim: T, tmp_path: Path, name: str, body: Any, path: str
) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    resp = await bot.client.post(MSG_PATH, data=json.dumps(body).encode(), headers=_signed(b""))
    assert resp.status == 400, await resp.text()
    err = await resp.json()
    assert path in [p["path"] for p in err["problems"]], err


async def test_broken_json_and_bad_status_bodies_are_400(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    for raw in (b"{", b'{"a": }', "你好".encode("gbk"), b"[" * 100000):
        resp = await bot.client.post(MSG_PATH, data=raw, headers=_signed(raw))
        assert resp.status == 400
        assert (await resp.json())["problems"][0]["path"] == "$"
    status_path = f"/maap/courier/deliveryNotification/{CHATBOT}/status"
    resp = await bot.client.post(
        status_path, json={"deliveryInfoList": [{"messageId": "x", "status": "lost"}]}, headers=_signed(b"")
    )
    assert resp.status == 400
    assert (await resp.json())["problems"][0]["path"] == "$.deliveryInfoList[0].status"
    resp = await bot.client.post(
        "/maap/courier/events", json={"event": "message", "messageContact": {}}, headers=GSMA_AUTH
    )
    paths = [p["path"] for p in (await resp.json())["problems"]]
    assert resp.status == 400 and "$.RCSMessage" in paths and "$.messageContact.userContact" in paths


async def test_unknown_bot_is_404_after_auth(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    resp = await bot.client.post("/maap/nobody/events", json={}, headers=GSMA_AUTH)
    assert resp.status == 404 and (await resp.json())["error"] == "unknown_bot"


async def test_notify_path_echoes(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path, webhook_app_id="app-xyz")
    resp = await bot.client.get(
        "/maap/courier/notifyPath", headers={"echoStr": "随机串-123", **csp_signature_headers(CSP_TOKEN)}
    )
    assert resp.status == 200
    assert resp.headers["echoStr"] == "随机串-123" and resp.headers["appId"] == "app-xyz"


async def test_delivery_reports_are_recorded(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    bot.sim.reports = True
    await bot.sim.tap(USER, f"track:{WAYBILL}")
    [reply] = await bot.sim.wait_for(1)
    for _ in range(500):  # the report travels back asynchronously
        info = await (
            await bot.client.get(f"/api/chatbot/messages/{reply.message_id}", headers=OPERATOR)
        ).json()
        if info.get("delivery") == "delivered":
            break
        await __import__("asyncio").sleep(0.02)
    assert info["state"] == "sent" and info["delivery"] == "delivered" and info["attempts"] == 1
    digits = "".join(c for c in USER if c.isdigit())
    assert digits not in json.dumps(info) and digits[-4:] in info["conversation"]  # masked
    assert (await bot.client.get("/api/chatbot/messages/nope", headers=OPERATOR)).status == 404


async def test_gsma_dialect_tap_and_text(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    tap = {
        "event": "response",
        "messageContact": {"userContact": "+8613900001111", "chatId": "chat-1"},
        "RCSMessage": {
            "msgId": "g-1",
            "suggestedResponse": {
                "response": {"reply": {"displayText": "查询物流", "postback": {"data": f"track:{WAYBILL}"}}}
            },
        },
    }
    for _ in range(2):
        resp = await bot.client.post(
            "/maap/courier/events", json=tap, headers={"Authorization": f"Bearer {BEARER}"}
        )
        assert resp.status == 200
    got = await bot.sim.wait_for(1)
    assert got[0].user == "+8613900001111" and got[0].text.startswith(f"运单 {WAYBILL}")
    status = {
        "event": "messageStatus",
        "messageContact": {"userContact": "+8613900001111"},
        "RCSMessage": {"msgId": got[0].message_id, "status": "displayed"},
    }
    resp = await bot.client.post(
        "/maap/courier/events", json=status, headers={"Authorization": f"Bearer {BEARER}"}
    )
    assert resp.status == 200
    info = await (await bot.client.get(f"/api/chatbot/messages/{got[0].message_id}", headers=OPERATOR)).json()
    assert info["delivery"] == "displayed"
    await __import__("asyncio").sleep(0.1)
    assert len(bot.sim.received) == 1


def test_replay_window_edges_exactly() -> None:
    from chatbot.auth import AuthError, WebhookAuth

    auth = WebhookAuth(hmac_secret=HMAC_SECRET, replay_window=300)
    body = b'{"a": 1}'
    now = 1_800_000_000.0
    assert auth.verify(hmac_headers(HMAC_SECRET, body, now=now - 300), body, now=now) == "hmac-sha256"
    assert auth.verify(hmac_headers(HMAC_SECRET, body, now=now + 300), body, now=now) == "hmac-sha256"
    for skew in (-301, 301):
        with pytest.raises(AuthError, match="replay window"):
            auth.verify(hmac_headers(HMAC_SECRET, body, now=now + skew), body, now=now)
    ms = {**hmac_headers(HMAC_SECRET, body, now=now)}
    ms["X-Mingpian-Timestamp"] = str(int(now * 1000))  # milliseconds, as some platforms send
    with pytest.raises(AuthError, match="does not match"):  # accepted as fresh, but signed over seconds
        auth.verify(ms, body, now=now)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_replays_and_other_bots_status_reports_change_nothing_on_either_store(
    aiohttp_client: T, sim: T, tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    extra: dict[str, Any] = {"store": store}
    if store == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_url")
    bot = await start_bot(aiohttp_client, sim, tmp_path, **extra)
    await bot.sim.tap(USER, f"track:{WAYBILL}")
    [reply] = await bot.sim.wait_for(1)
    url = f"/api/chatbot/messages/{reply.message_id}"
    report = {"deliveryInfoList": [{"messageId": reply.message_id, "status": "failed", "errorCode": 5}]}
    # the bank bot's status route acknowledges a report naming the courier bot's message: no change
    resp = await bot.client.post(
        f"/maap/bank/deliveryNotification/{CHATBOT}/status",
        json=report,
        headers=csp_signature_headers(CSP_TOKEN),
    )
    assert resp.status == 200
    info = await (await bot.client.get(url, headers=OPERATOR)).json()
    assert info.get("delivery") is None and info["state"] == "sent"
    # nor does a report for a message id nobody sent create anything
    ghost = {"deliveryInfoList": [{"messageId": "ghost-1", "status": "delivered"}]}
    resp = await bot.client.post(
        f"/maap/courier/deliveryNotification/{CHATBOT}/status",
        json=ghost,
        headers=csp_signature_headers(CSP_TOKEN),
    )
    assert resp.status == 200
    assert (await bot.client.get("/api/chatbot/messages/ghost-1", headers=OPERATOR)).status == 404
    # on its own bot's route it counts; replayed signature: refused, even with another body
    headers = csp_signature_headers(CSP_TOKEN)
    status_url = f"/maap/courier/deliveryNotification/{CHATBOT}/status"
    delivered = {"deliveryInfoList": [{"messageId": reply.message_id, "status": "delivered"}]}
    assert (await bot.client.post(status_url, json=delivered, headers=headers)).status == 200
    assert (await bot.client.post(status_url, json=report, headers=headers)).status == 401
    info = await (await bot.client.get(url, headers=OPERATOR)).json()
    assert info["delivery"] == "delivered"


async def test_message_lookups_need_the_operator_key(aiohttp_client: T, sim: T, tmp_path: Path) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    await bot.sim.tap(USER, f"track:{WAYBILL}")
    [reply] = await bot.sim.wait_for(1)
    url = f"/api/chatbot/messages/{reply.message_id}"
    resp = await bot.client.get(url)
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    assert (await bot.client.get(url, headers={"Authorization": "Bearer mpk_guess"})).status == 401
    assert (await bot.client.get("/api/chatbot/messages/nope")).status == 401  # no oracle without a key
    assert (await bot.client.get(url, headers=OPERATOR)).status == 200


async def test_behind_a_trusted_proxy_the_networks_are_checked_on_the_forwarded_client(
    aiohttp_client: T, sim: T, tmp_path: Path
) -> None:
    """Behind a load balancer every callback comes from it: the source networks are checked on
    the address it was reached from, which it names in X-Forwarded-For."""
    bot = await start_bot(
        aiohttp_client, sim, tmp_path, trusted_proxies=("127.0.0.1",), webhook_csp_networks=("10.0.0.0/8",)
    )
    raw = json.dumps(bot.sim.message(USER, text="你好")).encode()
    outside = {**csp_signature_headers(CSP_TOKEN), "X-Forwarded-For": "10.0.0.9, 203.0.113.7"}
    resp = await bot.client.post(MSG_PATH, data=raw, headers=outside)
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    inside = {**csp_signature_headers(CSP_TOKEN), "X-Forwarded-For": "10.0.0.9"}
    resp = await bot.client.post(MSG_PATH, data=raw, headers=inside)
    assert resp.status == 200, await resp.text()
