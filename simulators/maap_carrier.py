"""The MaaP simulator's carrier side: China Mobile's XML send API, media uploads and the files
served back, revokes in every dialect, capability lookups in every dialect, China Mobile
XML callbacks (taps, status reports) towards the bot, the carrier's review of permanent
media (review.py), and the chatbot's information updates (maap_info.py).

Kept beside maap.py (which owns the record of what was received, the tokens and the
faults) because it is a second platform's worth of routes. Every request is checked against
its dialect's shape (cmxml_out.read_outbound for XML, the credentials of each dialect, the
upload limits) and refused the way the platform would: a refusal is counted in `rejected`.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from chatbot import cmxml_out
from chatbot.auth import username_header
from chatbot.cmxml_out import NS, FileInfo, XmlShapeError
from chatbot.errors import BadEvent

from .maap_info import InfoDesk
from .review import Reviewer

if TYPE_CHECKING:
    from .maap import Simulator

# Upload limits the simulator enforces (CT/CU V1.0.4): a bigger file is refused.
LIMITS = {"image": 2 * 1024 * 1024, "video": 10 * 1024 * 1024, "thumbnail": 200 * 1024}
FILE_DAYS = 30.0  # how long an uploaded file is kept ("until")


@dataclass
class Upload:
    dialect: str
    chatbot: str
    parts: dict[str, tuple[str, str, int]]  # part name → (file id, content type, size)
    mode: str
    at: float


@dataclass
class Revoke:
    dialect: str
    chatbot: str
    message_id: str
    user: str


class Carrier:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.files: dict[str, tuple[bytes, str]] = {}
        self.uploads: list[Upload] = []
        self.revokes: list[Revoke] = []
        self.asked: list[str] = []  # capability lookups: the contacts asked about
        self.reported: list[tuple[str, int, bytes]] = []  # XML status reports sent: (url, status, body)
        self.file_lifetime = FILE_DAYS * 86400
        self.review = Reviewer(sim)
        self.info = InfoDesk(sim)  # the chatbot's information updates (CT/CU)

    def clear(self) -> None:
        self.files.clear()
        self.uploads.clear()
        self.revokes.clear()
        self.asked.clear()
        self.reported.clear()
        self.review.clear()
        self.info.clear()

    def routes(self, app: web.Application, prefix: str = "") -> None:
        r = app.router
        r.add_post(prefix + "/messaging/{kind}/v1/outbound/{chatbot}/requests", self.h_cm_send)
        r.add_put(prefix + "/messaging/v1/outbound/{chatbot}/requests/{mid}/status", self.h_cm_revoke)
        r.add_post(prefix + "/Content", self.h_cm_upload)
        r.add_post(prefix + "/bot/v1/{chatbot}/medias/upload", self.h_csp_upload)
        r.add_post(prefix + "/bot/v1/{chatbot}/revoke", self.h_csp_revoke)
        r.add_put(prefix + "/rcs/bot/v1/{chatbot}/messages/{mid}/status", self.h_gsma_revoke)
        r.add_get(prefix + "/bot/v1/{chatbot}/contactCapabilities", self.h_capability)
        r.add_get(prefix + "/messaging/v1/capabilities/{chatbot}/contactCapabilities", self.h_capability)
        r.add_get(prefix + "/rcs/bot/v1/{chatbot}/contactCapabilities", self.h_capability)
        r.add_get(prefix + "/files/{id}", self.h_file)
        self.info.routes(app, prefix)

    # -- credentials --------------------------------------------------------------------------
    def cm_auth_ok(self, request: web.Request) -> str:
        """ "" when China Mobile's Basic credentials check out against the Date header sent."""
        date = request.headers.get("Date", "")
        try:
            skew = abs(time.time() - parsedate_to_datetime(date).timestamp())
        except (TypeError, ValueError):
            return "Date header missing or not RFC 1123"
        if skew > 300:
            return "Date header too far from now"
        try:
            secret = cmxml_out.secret_of(self.sim.app_key, self.sim.cm_secret)
        except ValueError as exc:
            return str(exc)
        expected = cmxml_out.basic_auth(self.sim.app_id, secret, date)
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
            return "Authorization does not match SHA256(secret + Date)"
        return ""

    def csp_token_ok(self, request: web.Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("accessToken ") and auth[12:] in self.sim.tokens

    def _refuse_xml(self, status: int, message: str) -> web.Response:
        self.sim.rejected += 1
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><requestError><serviceException>'
            f"<messageId>SVC0002</messageId><text>{escape(message)}</text>"
            "</serviceException></requestError>"
        )
        return web.Response(status=status, text=body, content_type="application/xml")

    # -- China Mobile send --------------------------------------------------------------------
    async def h_cm_send(self, request: web.Request) -> web.Response:
        why = self.cm_auth_ok(request)
        if why:
            return self._refuse_xml(401, why)
        if request.match_info["kind"] not in ("interaction", "group"):
            return self._refuse_xml(404, "unknown endpoint")
        if not request.headers.get("Content-Type", "").startswith("application/xml"):
            return self._refuse_xml(400, "Content-Type must be application/xml")
        faulted = await self.sim._faulted("send")
        if faulted is not None:
            return faulted
        raw = await request.read()
        try:
            body = cmxml_out.read_outbound(raw)
        except (XmlShapeError, BadEvent) as exc:
            return self._refuse_xml(400, str(exc))
        user = body["destinationAddress"][0]
        if request.headers.get("Address", "") != user.removeprefix("tel:"):
            return self._refuse_xml(400, "Address header must be the user's number")
        if body["senderAddress"] != request.match_info["chatbot"]:
            return self._refuse_xml(400, "senderAddress must be the chatbot of the path")
        if request.match_info["kind"] == "interaction" and "inReplyTo" not in body:
            return self._refuse_xml(400, "the interaction endpoint takes replies only")
        body["dialect"] = "cm"
        body["endpoint"] = request.match_info["kind"]
        body["xml"] = raw.decode("utf-8")
        self.sim._record(body["messageId"], user, body.get("inReplyTo", ""), body)
        if self.sim.reports and self.sim.webhook:
            self.sim._later(
                self.cm_report(body["senderAddress"], body["messageId"], user, "DeliveredToTerminal")
            )
        location = f"{request.url.origin()}{request.path}/{quote(body['messageId'], safe='')}"
        return web.Response(
            status=201,
            text=(
                f'<?xml version="1.0" encoding="UTF-8"?><msg:resourceReference xmlns:msg="{NS}">'
                f"<resourceURL>{escape(location)}</resourceURL></msg:resourceReference>"
            ),
            content_type="application/xml",
        )

    async def h_cm_revoke(self, request: web.Request) -> web.Response:
        why = self.cm_auth_ok(request)
        if why:
            return self._refuse_xml(401, why)
        faulted = await self.sim._faulted("revoke")
        if faulted is not None:
            return faulted
        try:
            status, user = cmxml_out.read_revoke(await request.read())
        except (XmlShapeError, BadEvent) as exc:
            return self._refuse_xml(400, str(exc))
        if status != "RevokeRequested":
            return self._refuse_xml(400, "status must be RevokeRequested")
        return self._revoked(
            "cm", request.match_info["chatbot"], request.match_info["mid"], user
        ) or web.Response(status=204)

    def _revoked(self, dialect: str, chatbot: str, mid: str, user: str) -> web.Response | None:
        """Record a revoke; a message never received cannot be revoked (404)."""
        if mid not in self.sim.seen_ids:
            self.sim.rejected += 1
            return web.json_response({"errorCode": 20002, "errorMessage": "unknown messageId"}, status=404)
        self.revokes.append(Revoke(dialect, chatbot, mid, user))
        if self.sim.reports and self.sim.webhook:
            if dialect == "cm":
                self.sim._later(
                    self.cm_report(chatbot, mid, user, "Revoked", root="messageStatusNotification")
                )
            else:
                self.sim._later(
                    self.sim._report(
                        {"messageId": mid, "destinationAddress": [user], "senderAddress": chatbot}, "revokeOk"
                    )
                )
        return None

    async def h_csp_revoke(self, request: web.Request) -> web.Response:
        if not self.csp_token_ok(request):
            self.sim.rejected += 1
            return web.json_response({"errorCode": 40014, "errorMessage": "invalid access token"})
        faulted = await self.sim._faulted("revoke")
        if faulted is not None:
            return faulted
        body = await request.json()
        if not isinstance(body, dict) or body.get("status") != "RevokeRequested" or not body.get("messageId"):
            self.sim.rejected += 1
            return web.json_response(
                {"errorCode": 20002, "errorMessage": "messageId and status=RevokeRequested"}
            )
        users = body.get("destinationAddress") or [""]
        refused = self._revoked("csp", request.match_info["chatbot"], body["messageId"], users[0])
        return refused or web.json_response({"errorCode": 0, "errorMessage": ""})

    async def h_gsma_revoke(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.sim.tokens:
            self.sim.rejected += 1
            return web.json_response({"error": "invalid token"}, status=401)
        body = await request.json()
        if body.get("RCSMessage", {}).get("status") != "cancelled":
            self.sim.rejected += 1
            return web.json_response({"error": "RCSMessage.status must be cancelled"}, status=400)
        user = body.get("messageContact", {}).get("userContact", "")
        refused = self._revoked("gsma", request.match_info["chatbot"], request.match_info["mid"], user)
        return refused or web.Response(status=204)

    # -- uploads and files --------------------------------------------------------------------
    async def _parts(
        self, request: web.Request, names: tuple[str, str]
    ) -> dict[str, tuple[bytes, str, str]] | str:
        if not request.content_type.startswith("multipart/"):
            return "body must be multipart/form-data"
        parts: dict[str, tuple[bytes, str, str]] = {}
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name not in names:
                return f"unexpected part {getattr(part, 'name', '?')!r}; expected {names}"
            data = await part.read(decode=False)
            parts[part.name] = (bytes(data), part.headers.get("Content-Type", ""), part.filename or "")
        if names[0] not in parts:
            return f"part {names[0]!r} is required"
        for name, (data, ctype, _) in parts.items():
            kind = "thumbnail" if name == names[1] else ("video" if ctype.startswith("video/") else "image")
            if len(data) > LIMITS[kind]:
                return f"{kind} is {len(data)} bytes; at most {LIMITS[kind]}"
        return parts

    def _store(self, request: web.Request, data: bytes, ctype: str, below: str) -> tuple[str, str]:
        """Keep a file; (id, URL) — under the prefix this simulator is mounted at (`below`: the
        part of the path that follows the prefix)."""
        fid = uuid.uuid4().hex
        self.files[fid] = (data, ctype)
        prefix = request.path[: request.path.index(below)]
        return fid, f"{request.url.origin()}{prefix}/files/{fid}"

    async def h_csp_upload(self, request: web.Request) -> web.Response:
        if not self.csp_token_ok(request):
            self.sim.rejected += 1
            return web.json_response({"errorCode": 40014, "errorMessage": "invalid access token"})
        mode = request.headers.get("uploadMode", "")
        if mode not in ("perm", "temp"):
            self.sim.rejected += 1
            return web.json_response({"errorCode": 20002, "errorMessage": "uploadMode must be perm or temp"})
        faulted = await self.sim._faulted("upload")
        if faulted is not None:
            return faulted
        parts = await self._parts(request, ("file", "thumbnail"))
        if isinstance(parts, str):
            self.sim.rejected += 1
            return web.json_response({"errorCode": 20002, "errorMessage": parts})
        until = time.time() + (self.file_lifetime if mode == "perm" else min(self.file_lifetime, 86400 * 3))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        info, record = [], {}
        for name, (data, ctype, fname) in parts.items():
            fid, url = self._store(request, data, ctype, "/bot/v1/")
            record[name] = (fid, ctype, len(data))
            entry = {
                "url": url,
                "fileName": fname,
                "contentType": ctype,
                "fileSize": len(data),
                "until": stamp,
            }
            info.append({**entry, "type": "thumbnail"} if name == "thumbnail" else entry)
        self.uploads.append(Upload("csp", request.match_info["chatbot"], record, mode, time.time()))
        if mode == "perm":  # permanent media waits for the carrier's review
            self.review.submit("csp", request.match_info["chatbot"], [e["url"] for e in info], "")
        return web.json_response({"fileInfo": info, "errorCode": 0, "errorMessage": ""})

    async def h_cm_upload(self, request: web.Request) -> web.Response:
        why = self.cm_auth_ok(request)
        if why:
            return self._refuse_xml(401, why)
        ident = request.headers.get("X-3GPP-Intended-Identity", "")
        if not request.headers.get("tid") or not ident.startswith("sip:"):
            return self._refuse_xml(400, "tid and X-3GPP-Intended-Identity headers are required")
        if request.headers.get("Terminal-type") != "Chatbot" or not request.headers.get(
            "User-Agent", ""
        ).startswith("SP/"):
            return self._refuse_xml(400, "User-Agent SP/<chatbotURI> and Terminal-type Chatbot are required")
        faulted = await self.sim._faulted("upload")
        if faulted is not None:
            return faulted
        parts = await self._parts(request, ("File", "Thumbnail"))
        if isinstance(parts, str):
            return self._refuse_xml(413 if "bytes" in parts else 400, parts)
        until = time.time() + self.file_lifetime
        entries, record = [], {}
        for name, (data, ctype, _) in parts.items():
            fid, url = self._store(request, data, ctype, "/Content")
            record[name] = (fid, ctype, len(data))
            entries.append(
                FileInfo("thumbnail" if name == "Thumbnail" else "file", url, until, ctype, len(data))
            )
        self.uploads.append(Upload("cm", ident, record, "perm", time.time()))
        self.review.submit("cm", ident, [e.url for e in entries], request.headers["tid"])
        return web.Response(body=cmxml_out.file_info_xml(entries), content_type="application/xml")

    async def h_file(self, request: web.Request) -> web.Response:
        got = self.files.get(request.match_info["id"])
        if got is None:
            return web.Response(status=404)
        return web.Response(body=got[0], content_type=got[1])

    # -- capability ---------------------------------------------------------------------------
    async def h_capability(self, request: web.Request) -> web.Response:
        contact = request.query.get("userContact", "")
        self.asked.append(contact)
        path = request.path
        dialect = "cm" if "/messaging/" in path else "gsma" if path.startswith("/rcs/") else "csp"
        if dialect == "cm":
            why = self.cm_auth_ok(request)
            if why:
                return self._refuse_xml(401, why)
        elif dialect == "csp" and not self.csp_token_ok(request):
            return web.json_response({"errorCode": 40001}, status=401)
        elif dialect == "gsma" and request.headers.get("Authorization", "")[7:] not in self.sim.tokens:
            return web.json_response({"error": "invalid token"}, status=401)
        capable = self.sim.capable is None or contact in self.sim.capable
        if not capable:
            if dialect == "cm":
                return self._refuse_xml(404, "not a 5G-message terminal")
            return web.json_response(
                {"errorCode": 2, "errorMessage": "not a 5G-message terminal"}, status=404
            )
        if dialect == "cm":
            return web.Response(
                text=(
                    f'<?xml version="1.0" encoding="UTF-8"?><capabilities xmlns="{NS}">'
                    f"<userContact>{escape(contact)}</userContact><capability>ChatbotSA</capability>"
                    "</capabilities>"
                ),
                content_type="application/xml",
            )
        if dialect == "gsma":
            return web.json_response({"capabilities": ["chatBotCommunication"]})
        return web.json_response({"errorCode": 0, "capabilities": ["ChatbotSA"]})

    # -- China Mobile callbacks towards the bot -----------------------------------------------
    def cm_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/xml", "traceUniqueID": secrets.token_hex(8)}
        if self.sim.username:
            headers.update(username_header(self.sim.username, self.sim.password))
        return headers

    def cm_message(
        self, user: str, *, postback: str | None = None, text: str | None = None
    ) -> tuple[str, bytes]:
        """(messageId, XML) of a user message as China Mobile sends it: bodyText in base64, a tap
        with the extra `"type": "reply"`."""
        mid = str(uuid.uuid4())
        if postback is not None:
            ctype = "application/vnd.gsma.botsuggestion.response.v1.0+json"
            tap = {
                "response": {
                    "reply": {"displayText": postback[:25], "postback": {"data": postback}, "type": "reply"}
                }
            }
            content = json.dumps(tap, ensure_ascii=False)
        else:
            ctype, content = "text/plain", text or ""
        encoded = base64.b64encode(content.encode()).decode()
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><msg:inboundMessageNotification xmlns:msg="{NS}">'
            f"<inboundMessage><messageId>{mid}</messageId><senderAddress>{escape(user)}</senderAddress>"
            f"<destinationAddress>{escape(self.sim.chatbot)}</destinationAddress>"
            f"<contentType>{ctype}</contentType><contentEncoding>base64</contentEncoding>"
            f"<bodyText>{encoded}</bodyText><conversationID>conv-{escape(user)}</conversationID>"
            f"<contributionID>c-{mid}</contributionID></inboundMessage></msg:inboundMessageNotification>"
        )
        return mid, xml.encode()

    async def cm_tap(self, user: str, postback: str) -> int:
        """A China Mobile user taps a button: the XML callback to the bot; its HTTP status."""
        mid, raw = self.cm_message(user, postback=postback)
        self.sim.injected[f"c-{mid}"] = mid
        url = f"{self.sim.webhook}/InboundMessageNotification/{quote(self.sim.chatbot, safe='')}"
        async with self.sim.session.post(url, data=raw, headers=self.cm_headers()) as resp:
            await resp.read()
        if resp.status == 204:
            self.sim.acked.add(mid)
        return resp.status

    async def cm_report(
        self, chatbot: str, mid: str, user: str, status: str, root: str = "deliveryInfoNotification"
    ) -> None:
        item = "deliveryInfo" if root == "deliveryInfoNotification" else "messageStatus"
        field = "deliveryStatus" if item == "deliveryInfo" else "status"
        raw = (
            f'<?xml version="1.0" encoding="UTF-8"?><msg:{root} xmlns:msg="{NS}"><{item}>'
            f"<messageId>{escape(mid)}</messageId><address>{escape(user)}</address>"
            f"<{field}>{status}</{field}></{item}></msg:{root}>"
        ).encode()
        kind = "DeliveryInfoNotification" if item == "deliveryInfo" else "MessageStatusNotification"
        url = f"{self.sim.webhook}/{kind}/{quote(chatbot, safe='')}"
        try:
            async with self.sim.session.post(url, data=raw, headers=self.cm_headers()) as resp:
                self.reported.append((url, resp.status, (await resp.read())[:300]))
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.reported.append((url, 0, repr(exc).encode()))
