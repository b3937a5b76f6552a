"""What the MaaP client sends in each dialect, compared with the examples in the interface notes
(CT/CU JSON, China Mobile OMA XML, GSMA): method, path, headers and body of sends, revokes,
uploads and capability lookups, captured by a plain recording server that answers like the
platform."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from defusedxml.ElementTree import fromstring

from chatbot.capability import answer
from chatbot.maap import MaapClient
from chatbot.uploads import LocalFile, upload
from renderer import BOTMESSAGE, BOTSUGGESTION

NS = "{urn:oma:xml:rest:netapi:messaging:1}"
CHATBOT = "sip:12520040000@botplatform.rcs.chinamobile.com"
USER = "tel:+8613912345678"
CARD = {
    "message": {"generalPurposeCard": {"content": {"title": "您的快递派送中", "description": "运单号 SF1"}}}
}
CHIPS = {"suggestions": [{"reply": {"displayText": "查件", "postback": {"data": "track"}}}]}


def body(reply: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "messageId": "5f0b6c1e-0000-4000-8000-000000000001",
        "destinationAddress": [USER],
        "senderAddress": CHATBOT,
        "conversationId": "conv-1",
        "contributionId": "contrib-1",
        "messageList": [
            {"contentType": BOTMESSAGE, "contentText": CARD},
            {"contentType": BOTSUGGESTION, "contentText": CHIPS},
        ],
        "smsSupported": True,
        "smsContent": "【顺丰速运】您的快递派送中]]>",  # a CDATA end inside the text must survive
    }
    if reply:
        out["inReplyTo"] = "their-contribution"
    return out


class Recorder:
    """Records every request; answers 200 with `reply` (per path prefix) or the default."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, bytes]] = []
        self.replies: dict[str, web.Response] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append((request.method, request.raw_path, request.headers.copy(), raw))
        if request.path.endswith("/accessToken"):
            return web.json_response(
                {
                    "accessToken": "tok-1",
                    "expires": 7200,
                    "url": str(request.url.origin()) + "/v2",
                    "errorCode": 0,
                }
            )
        if request.path == "/oauth2/token":
            return web.json_response({"access_token": "bearer-1", "expires_in": 3600})
        for prefix, resp in self.replies.items():
            if request.path.startswith(prefix):
                return resp
        if "/messaging/" in request.path and request.method == "POST":
            return web.Response(status=201)
        if request.path.startswith("/rcs/"):
            return web.Response(status=202)
        return web.json_response({"errorCode": 0, "errorMessage": ""})


@pytest.fixture
async def recorder(aiohttp_server: Any) -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    server = await aiohttp_server(app)
    yield rec, str(server.make_url("")).rstrip("/")


async def client(base: str, dialect: str, **kw: Any) -> MaapClient:
    return MaapClient(aiohttp.ClientSession(), base, app_id="app-1", app_key="pass-1", dialect=dialect, **kw)


async def close(c: MaapClient) -> None:
    await c.close()
    await c.session.close()


# -- CT/CU -------------------------------------------------------------------------------------
async def test_csp_send_is_the_notes_example_and_goes_to_the_url_the_token_named(
    recorder: tuple[Recorder, str],
) -> None:
    rec, base = recorder
    c = await client(base, "csp")
    try:
        assert (await c.send(body(reply=True))).outcome == "ok"
    finally:
        await close(c)
    (m1, p1, _, b1), (m2, p2, h2, b2) = rec.requests
    assert (m1, p1) == ("POST", f"/bot/v1/{CHATBOT}/accessToken")
    assert json.loads(b1) == {"appId": "app-1", "appKey": "pass-1"}
    assert (m2, p2) == ("POST", f"/v2/bot/v1/{CHATBOT}/messages")  # the token answer's url
    assert h2["authorization"] == "accessToken tok-1" and parsedate_to_datetime(h2["date"])
    sent = json.loads(b2)
    required = (
        "messageId", "messageList", "destinationAddress", "senderAddress", "conversationId",
        "contributionId", "serviceCapability", "smsSupported", "storeSupported",
    )  # fmt: skip
    assert all(k in sent for k in required)
    assert sent["serviceCapability"] == [
        {"capabilityId": "ChatbotSA", "version": '+g.gsma.rcs.botversion="#=1"'}
    ]
    assert sent["destinationAddress"] == [USER] and sent["inReplyTo"] == "their-contribution"
    assert sent["smsSupported"] is True and sent["smsContent"] and sent["storeSupported"] is True
    assert set(sent["reportRequest"]) == {"sent", "delivered", "displayed", "failed", "deliveredToNetwork"}


async def test_csp_revoke_upload_and_capability(recorder: tuple[Recorder, str], tmp_path: Path) -> None:
    rec, base = recorder
    c = await client(base, "csp", upload_mode="temp")
    pic = tmp_path / "p.jpg"
    pic.write_bytes(b"\xff\xd8jpeg-bytes")
    rec.replies["/v2/bot/v1/" + CHATBOT + "/medias"] = web.json_response(
        {"fileInfo": [{"url": "https://maap.example/f/1", "contentType": "image/jpeg", "fileSize": 12,
                       "until": "2026-12-30T10:00:00Z"}], "errorCode": 0}
    )  # fmt: skip
    try:
        assert (await c.revoke(CHATBOT, "m-1", USER)).outcome == "ok"
        [entry] = await upload(c, CHATBOT, LocalFile(pic, "image/jpeg"), None)
        from chatbot.capability import lookup

        assert await lookup(c, CHATBOT, USER, "", 2.0) is True
    finally:
        await close(c)
    _, (m, p, h, b), (um, up, uh, ub), (cm, cp, _, _) = rec.requests
    assert (m, p) == ("POST", f"/v2/bot/v1/{CHATBOT}/revoke") and h["Authorization"] == "accessToken tok-1"
    assert json.loads(b) == {"messageId": "m-1", "destinationAddress": [USER], "status": "RevokeRequested"}
    assert (um, up) == ("POST", f"/v2/bot/v1/{CHATBOT}/medias/upload") and uh["uploadMode"] == "temp"
    assert (
        uh["Content-Type"].startswith("multipart/form-data") and b'name="file"' in ub and b"jpeg-bytes" in ub
    )
    assert entry.url == "https://maap.example/f/1" and entry.until == 1798624800.0
    assert (cm, cp.split("?")[0]) == ("GET", f"/v2/bot/v1/{CHATBOT}/contactCapabilities")
    assert cp.endswith("?userContact=tel%3A%2B8613912345678")


# -- China Mobile ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["password", "token"])
async def test_cm_send_is_oma_xml_with_the_headers_and_basic_credentials_of_the_notes(
    recorder: tuple[Recorder, str], variant: str
) -> None:
    rec, base = recorder
    key = "pass-1" if variant == "password" else base64.b64encode(b"csp-token-bytes").decode()
    c = MaapClient(
        aiohttp.ClientSession(), base, app_id="app-1", app_key=key, dialect="cm", cm_secret=variant
    )
    try:
        assert (await c.send(body())).outcome == "ok"
        assert (await c.send(body(reply=True))).outcome == "ok"
    finally:
        await close(c)
    (m1, p1, h1, b1), (_, p2, _, b2) = rec.requests
    enc = "sip%3A12520040000%40botplatform.rcs.chinamobile.com"
    assert (m1, p1) == ("POST", f"/messaging/group/v1/outbound/{enc}/requests")  # a card we start
    assert p2 == f"/messaging/interaction/v1/outbound/{enc}/requests"  # a reply
    # headers: Date (RFC 1123, GMT), Content-Type, Address, Authorization: Basic id:SHA256hex(secret + Date)
    date = h1["Date"]
    assert date.endswith(" GMT") and abs(parsedate_to_datetime(date).timestamp() - time.time()) < 5
    assert h1["Content-Type"].startswith("application/xml") and h1["Address"] == "+8613912345678"
    secret = hashlib.sha256(b"pass-1").hexdigest().encode() if variant == "password" else b"csp-token-bytes"
    digest = hashlib.sha256(secret + date.encode()).hexdigest()
    assert h1["Authorization"] == "Basic " + base64.b64encode(f"app-1:{digest}".encode()).decode()
    # body: msg:outboundMessageRequest with exactly the elements of the notes
    root = fromstring(b1, forbid_dtd=True)
    assert root.tag == NS + "outboundMessageRequest"
    assert [el.tag for el in root] == [
        "address", "destinationAddress", "senderAddress", "outboundIMMessage", "clientCorrelator"
    ]  # fmt: skip
    im = root.find("outboundIMMessage")
    assert im is not None
    assert [el.tag for el in im] == [
        "contentType", "bodyText", "conversationID", "contributionID", "serviceCapability",
        "storeSupported", "shortMessageSupported", "smsBodyText",
    ]  # fmt: skip
    assert root.findtext("address") == USER and root.findtext("senderAddress") == CHATBOT
    assert root.findtext("clientCorrelator") == body()["messageId"]
    assert im.findtext("conversationID") == "conv-1" and im.findtext("contributionID") == "contrib-1"
    assert im.findtext("serviceCapability/capabilityId") == "ChatbotSA"
    assert (
        im.findtext("shortMessageSupported") == "true" and im.findtext("smsBodyText") == body()["smsContent"]
    )
    assert b"<bodyText><![CDATA[" in b1
    # two parts → multipart/mixed in one bodyText, each part with its type and length
    assert im.findtext("contentType") == 'multipart/mixed; boundary="next"'
    text = im.findtext("bodyText") or ""
    assert f"Content-Type: {BOTMESSAGE}" in text and f"Content-Type: {BOTSUGGESTION}" in text
    card = json.dumps(CARD, ensure_ascii=False, separators=(",", ":"))
    assert f"Content-Length: {len(card.encode())}\n\n{card}" in text
    reply = fromstring(b2).find("outboundIMMessage")
    assert reply is not None and reply.findtext("inReplyToContributionID") == "their-contribution"


async def test_cm_revoke_upload_and_capability(recorder: tuple[Recorder, str], tmp_path: Path) -> None:
    rec, base = recorder
    c = MaapClient(
        aiohttp.ClientSession(),
        base,
        app_id="app-1",
        app_key="pass-1",
        dialect="cm",
        file_server=base + "/fs",
    )
    vid, thumb = tmp_path / "v.mp4", tmp_path / "t.jpg"
    vid.write_bytes(b"mp4-bytes")
    thumb.write_bytes(b"thumb-bytes")
    rec.replies["/fs/Content"] = web.Response(
        text=(
            '<?xml version="1.0"?><file xmlns="urn:gsma:params:xml:ns:rcs:rcs:fthttp">'
            '<file-info type="thumbnail"><file-size>11</file-size><content-type>image/jpeg</content-type>'
            '<data url="https://fs.example/t" until="2026-12-30T18:00:00+08:00"/></file-info>'
            '<file-info type="file"><file-size>9</file-size><file-name>v.mp4</file-name>'
            '<content-type>video/mp4</content-type><data url="https://fs.example/v" '
            'until="2026-12-30T18:00:00+08:00"/></file-info></file>'
        ),
        content_type="application/xml",
    )
    rec.replies["/messaging/v1/capabilities/"] = web.Response(
        text=f'<capabilities xmlns="{NS[1:-1]}"><capability>ChatbotSA</capability></capabilities>',
        content_type="application/xml",
    )
    try:
        assert (await c.revoke(CHATBOT, "m-1", USER)).outcome == "ok"
        entries = await upload(c, CHATBOT, LocalFile(vid, "video/mp4"), LocalFile(thumb, "image/jpeg"))
        from chatbot.capability import lookup

        assert await lookup(c, CHATBOT, USER, "", 2.0) is True
    finally:
        await close(c)
    (m, p, h, b), (um, up, uh, ub), (_, cp, ch, _) = rec.requests
    enc = "sip%3A12520040000%40botplatform.rcs.chinamobile.com"
    assert (m, p) == ("PUT", f"/messaging/v1/outbound/{enc}/requests/m-1/status")
    report = fromstring(b)
    assert report.tag == NS + "messageStatusReport"
    assert [(el.tag, el.text) for el in report] == [("status", "RevokeRequested"), ("address", USER)]
    assert h["Authorization"].startswith("Basic ") and h["Address"] == "+8613912345678"
    assert (um, up) == ("POST", "/fs/Content") and uh["tid"]
    assert uh["X-3GPP-Intended-Identity"] == CHATBOT and uh["User-Agent"] == f"SP/{CHATBOT}"
    assert uh["Terminal-type"] == "Chatbot" and uh["Authorization"].startswith("Basic ")
    assert b'name="File"' in ub and b'name="Thumbnail"' in ub
    assert {(e.kind, e.url) for e in entries} == {
        ("file", "https://fs.example/v"),
        ("thumbnail", "https://fs.example/t"),
    }
    assert entries[0].until == 1798624800.0
    assert cp.startswith(f"/messaging/v1/capabilities/{enc}/contactCapabilities?userContact=")
    assert ch["Authorization"].startswith("Basic ")


# -- GSMA --------------------------------------------------------------------------------------
async def test_gsma_send_revoke_and_capability(recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    c = await client(base, "gsma")
    try:
        assert (await c.send(body())).outcome == "ok"
        assert (await c.revoke(CHATBOT, "m-1", USER)).outcome == "ok"
        from chatbot.capability import lookup

        rec.replies["/rcs/bot/v1/" + CHATBOT + "/contactCapabilities"] = web.json_response(
            {"capabilities": []}
        )
        assert await lookup(c, CHATBOT, USER, "", 2.0) is False
    finally:
        await close(c)
    (_, tp, th, tb), (m, p, h, b), (rm, rp, _, rb), _ = rec.requests
    assert tp == "/oauth2/token" and th["Authorization"].startswith("Basic ") and b"client_credentials" in tb
    assert (m, p) == ("POST", f"/rcs/bot/v1/{CHATBOT}/messages") and h["Authorization"] == "Bearer bearer-1"
    sent = json.loads(b)
    assert sent["messageContact"] == {"userContact": USER, "chatId": "conv-1"}
    assert sent["RCSMessage"]["msgId"] == body()["messageId"]
    assert sent["RCSMessage"]["richcardMessage"] == CARD and sent["RCSMessage"]["suggestedChipList"] == CHIPS
    assert (rm, rp) == ("PUT", f"/rcs/bot/v1/{CHATBOT}/messages/m-1/status")
    assert json.loads(rb)["RCSMessage"] == {"status": "cancelled"}


def test_capability_answers_per_dialect() -> None:
    assert answer("csp", 200, b'{"errorCode": 0}') is True
    assert answer("csp", 200, b'{"errorCode": 2}') is False
    assert answer("csp", 404, b"") is False and answer("csp", 503, b"") is None
    assert answer("cm", 200, b"<capabilities><capability>ChatbotSA</capability></capabilities>") is True
    assert answer("cm", 200, b"<capabilities/>") is False
    assert answer("gsma", 200, b'{"capabilities": ["chatBotCommunication"]}') is True
    assert answer("gsma", 200, b'{"capabilities": []}') is False
