"""A MaaP simulator: the platform side of the chatbot, for tests, benchmarks and the preview.

It plays both halves of a CT/CU CSP platform (and the GSMA and China Mobile send APIs; the
China Mobile XML side, uploads, files, revokes and capability lookups are in
maap_carrier.py):
- injects user messages into the bot's webhook, signed like the platform, retrying like one
  (at least once: a delivery is repeated until the bot answers 200);
- serves the send API: issues access tokens (`/bot/v1/{chatbotId}/accessToken`, OAuth2
  `/oauth2/token`), accepts `/bot/v1/{chatbotId}/messages` and `/rcs/bot/v1/{botId}/messages`,
  checks the required fields, and deduplicates on messageId as a real MaaP does;
- reviews permanent media like a carrier (review.py): passes it promptly by default, or holds
  each decision for a delay or for a command (`POST /control/review`), then calls the bot's
  `/check` (CT/CU) or China Mobile's audit notification, signed as the platform would;
- fails on command (`POST /control/fault`): HTTP 5xx, errorCode replies, timeouts, slowness,
  and late acknowledgements (accepted, but the answer arrives after the client gave up);
- counts what matters: replies, resends dropped by messageId, duplicate replies to one user
  message, and user messages the bot acknowledged but never answered (losses).

Run it alone: `python -m simulators.maap --port 9090 --webhook http://127.0.0.1:8080/maap/courier`.

One module of about 550 lines: a MaaP's send API, its webhook client and its fault injection
share the record of what was received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from chatbot.auth import csp_signature_headers, hmac_headers, username_header
from chatbot.events import SUGGESTION_RESPONSE
from renderer import BOTMESSAGE, BOTSUGGESTION

from .maap_carrier import Carrier

ALT = "/alt"  # with `token_url_alt`, the token answer's `url` points here and sends must come here

CSP_REQUIRED = (
    "messageId",
    "messageList",
    "destinationAddress",
    "senderAddress",
    "conversationId",
    "contributionId",
    "serviceCapability",
    "smsSupported",
    "storeSupported",
)


@dataclass
class Fault:
    mode: str = "ok"  # ok | error | errorcode | timeout | slow | lateack
    status: int = 503
    error_code: int = -1
    delay: float = 0.0
    remaining: int | None = None  # None: until cleared
    target: str = "send"  # send | upload | revoke | all: which requests fail


@dataclass
class Received:
    message_id: str
    user: str
    in_reply_to: str
    body: dict[str, Any]
    at: float

    @property
    def kind(self) -> str:
        part = self.body.get("messageList", [{}])[0]
        return "text" if part.get("contentType") == "text/plain" else "card"

    @property
    def text(self) -> str:
        """The text, or the card's title + description: what a test reads."""
        part = self.body.get("messageList", [{}])[0]
        content = part.get("contentText")
        if isinstance(content, str):
            return content
        card = content.get("message", {}).get("generalPurposeCard", {}).get("content", {})
        return f"{card.get('title', '')}\n{card.get('description', '')}".strip()

    @property
    def postbacks(self) -> list[str]:
        part = self.body.get("messageList", [{}])[0]
        content = part.get("contentText")
        if isinstance(content, str):
            return []
        card = content.get("message", {}).get("generalPurposeCard", {}).get("content", {})
        out = []
        for s in card.get("suggestions", []):
            tap = s.get("reply") or s.get("action") or {}
            out.append(tap.get("postback", {}).get("data", ""))
        return out


@dataclass
class Simulator:
    webhook: str = ""  # the bot's webhook base, e.g. http://127.0.0.1:8080/maap/courier
    chatbot: str = "sip:106500@botplatform.rcs.chinaunicom.cn"
    app_id: str = "sim-app"
    app_key: str = "sim-key"
    csp_token: str = ""
    hmac_secret: str = ""
    username: str = ""
    password: str = ""
    bearer: str = ""
    token_lifetime: int = 7200
    single_token: bool = False  # a new token cancels the old one (the CT/CU rule)
    reports: bool = False  # POST delivery notifications back to the bot
    cm_secret: str = "password"  # China Mobile Basic credentials: password (A) or token (B)
    capable: set[str] | None = None  # contacts that are 5G terminals; None: everyone
    token_url_alt: bool = False  # the token answer names another base URL (ALT), which sends must use
    fault: Fault = field(default_factory=Fault)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    received: list[Received] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    resends_dropped: int = 0
    rejected: int = 0
    injected: dict[str, str] = field(default_factory=dict)  # contributionId → inbound messageId
    acked: set[str] = field(default_factory=set)  # inbound messageIds the bot answered 200
    replies_to: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _session: aiohttp.ClientSession | None = None
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _arrived: asyncio.Event | None = None
    _late: float = 0.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    carrier: Carrier = field(init=False)

    def __post_init__(self) -> None:
        self.carrier = Carrier(self)

    # -- app ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/bot/v1/{chatbot}/accessToken", self.h_token)
        app.router.add_post("/bot/v1/{chatbot}/messages", self.h_csp_send)
        app.router.add_post(ALT + "/bot/v1/{chatbot}/messages", self.h_csp_send)
        self.carrier.routes(app)
        self.carrier.routes(app, ALT)
        app.router.add_post("/oauth2/token", self.h_oauth)
        app.router.add_post("/rcs/bot/v1/{chatbot}/messages", self.h_gsma_send)
        app.router.add_post("/control/fault", self.h_fault)
        app.router.add_post("/control/inject", self.h_inject)
        app.router.add_get("/control/stats", self.h_stats)
        app.router.add_get("/control/messages", self.h_messages)
        app.router.add_post("/control/reset", self.h_reset)
        self.carrier.review.routes(app)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application | None = None) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        return self._session

    # -- send API -----------------------------------------------------------------------------
    def _new_token(self) -> str:
        self.token_requests += 1
        tok = secrets.token_urlsafe(24)
        if self.single_token:
            self.tokens.clear()
        self.tokens.add(tok)
        return tok

    async def h_token(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        if body.get("appId") != self.app_id or body.get("appKey") != self.app_key:
            return web.json_response({"errorCode": 40001, "errorMessage": "invalid appId/appKey"})
        return web.json_response(
            {
                "accessToken": self._new_token(),
                "expires": self.token_lifetime,
                # where this simulator is mounted (a sub-app under a prefix, as the studio does)
                "url": str(request.url.origin())
                + request.path[: request.path.index("/bot/v1/")]
                + (ALT if self.token_url_alt else ""),
                "errorCode": 0,
            }
        )

    async def h_oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        import base64

        expected = "Basic " + base64.b64encode(f"{self.app_id}:{self.app_key}".encode()).decode()
        if form.get("grant_type") != "client_credentials" or request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response(
            {"access_token": self._new_token(), "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _faulted(self, kind: str = "send") -> web.Response | None:
        f = self.fault
        if f.mode == "ok" or f.target not in (kind, "all"):
            return None
        if f.remaining is not None:
            if f.remaining <= 0:
                self.fault = Fault()
                return None
            f.remaining -= 1
        if f.mode == "slow":
            await asyncio.sleep(f.delay)
            return None
        if f.mode == "lateack":  # accepted (recorded by the caller), but the answer comes late
            self._late = f.delay
            return None
        if f.mode == "timeout":
            await asyncio.sleep(f.delay or 3600)
            return web.json_response({"errorCode": -1, "errorMessage": "late"}, status=504)
        if f.mode == "errorcode":
            return web.json_response({"errorCode": f.error_code, "errorMessage": "simulated"})
        return web.json_response({"errorCode": -1, "errorMessage": "simulated outage"}, status=f.status)

    def _record(self, mid: str, user: str, in_reply_to: str, body: dict[str, Any]) -> None:
        if mid in self.seen_ids:
            self.resends_dropped += 1
            return
        self.seen_ids.add(mid)
        self.carrier.review.sent(body)
        self.received.append(Received(mid, user, in_reply_to, body, time.time()))
        if in_reply_to:
            self.replies_to[in_reply_to].add(mid)
        if self._arrived is not None:
            self._arrived.set()

    async def h_csp_send(self, request: web.Request) -> web.Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("accessToken ") or auth[12:] not in self.tokens:
            self.rejected += 1
            return web.json_response({"errorCode": 40014, "errorMessage": "invalid access token"})
        if self.token_url_alt != request.path.startswith(ALT):
            self.rejected += 1
            return web.json_response({"errorCode": 20002, "errorMessage": "send to the url the token named"})
        faulted = await self._faulted()
        if faulted is not None:
            return faulted
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"errorCode": 20002, "errorMessage": "body is not JSON"})
        missing = [k for k in CSP_REQUIRED if k not in body]
        if body.get("smsSupported") and not body.get("smsContent"):
            missing.append("smsContent")
        if missing:
            self.rejected += 1
            return web.json_response({"errorCode": 20002, "errorMessage": f"missing {missing}"})
        self._record(body["messageId"], body["destinationAddress"][0], body.get("inReplyTo", ""), body)
        if self.reports and self.webhook:
            self._later(self._report(body))
        if self._late:
            late, self._late = self._late, 0.0
            await asyncio.sleep(late)
        return web.json_response({"messageId": body["messageId"], "errorCode": 0, "errorMessage": ""})

    async def h_gsma_send(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            self.rejected += 1
            return web.json_response({"error": "invalid token"}, status=401)
        faulted = await self._faulted()
        if faulted is not None:
            return faulted
        try:
            body = await request.json()
            msg, contact = body["RCSMessage"], body["messageContact"]
            mid, user = msg["msgId"], contact["userContact"]
        except (json.JSONDecodeError, KeyError, TypeError):
            self.rejected += 1
            return web.json_response(
                {"error": "RCSMessage.msgId and messageContact.userContact are required"}, status=400
            )
        # Recorded in the CSP shape too, so tests read both dialects the same way.
        parts = []
        if "richcardMessage" in msg:
            parts.append({"contentType": BOTMESSAGE, "contentText": msg["richcardMessage"]})
        if "textMessage" in msg:
            parts.append({"contentType": "text/plain", "contentText": msg["textMessage"]})
        if "suggestedChipList" in msg:
            parts.append({"contentType": BOTSUGGESTION, "contentText": msg["suggestedChipList"]})
        self._record(
            mid,
            user,
            "",
            {"messageId": mid, "destinationAddress": [user], "messageList": parts, "gsma": body},
        )
        return web.json_response({}, status=202)

    async def _report(self, body: dict[str, Any], status: str = "delivered") -> None:
        report = {
            "deliveryInfoList": [
                {
                    "messageId": body["messageId"],
                    "status": status,
                    "dateTime": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                    "senderAddress": body["destinationAddress"][0],
                    "destinationAddress": body["senderAddress"],
                }
            ]
        }
        raw = json.dumps(report).encode()
        url = f"{self.webhook}/deliveryNotification/{self.chatbot}/status"
        try:
            async with self.session.post(url, data=raw, headers=self.sign(raw)) as resp:
                await resp.read()
        except (TimeoutError, aiohttp.ClientError):
            pass

    async def report(self, message_id: str, status: str = "displayed") -> None:
        """A status report on a message it received (e.g. the phone displayed it), sent to the
        chatbot's webhook as the platform would."""
        r = next(r for r in self.received if r.message_id == message_id)
        sender = r.body.get("senderAddress", f"sip:{self.chatbot}@botplatform.rcs.chinamobile.com")
        await self._report(
            {"messageId": message_id, "destinationAddress": [r.user], "senderAddress": sender}, status
        )

    # -- injecting user messages --------------------------------------------------------------
    def sign(self, raw: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.csp_token:
            headers.update(csp_signature_headers(self.csp_token))
        elif self.hmac_secret:
            headers.update(hmac_headers(self.hmac_secret, raw))
        elif self.username:
            headers.update(username_header(self.username, self.password))
        elif self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        return headers

    def message(
        self,
        user: str,
        *,
        postback: str | None = None,
        text: str | None = None,
        display: str = "",
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A CSP messageNotification body for one user message."""
        mid = message_id or str(uuid.uuid4()).upper()
        if postback is not None:
            item = {
                "contentType": SUGGESTION_RESPONSE,
                "contentEncoding": "utf8",
                "contentText": json.dumps(
                    {
                        "response": {
                            "reply": {"displayText": display or postback[:25], "postback": {"data": postback}}
                        }
                    },
                    ensure_ascii=False,
                ),
            }
        else:
            item = {"contentType": "text/plain", "contentEncoding": "utf8", "contentText": text or ""}
        return {
            "messageId": mid,
            "dateTime": time.strftime("%Y-%m-%dT%H:%M:%S.000+08:00"),
            "senderAddress": user,
            "destinationAddress": self.chatbot,
            "conversationId": f"conv-{user}",
            "contributionId": f"c-{mid}",
            "messageList": [item],
        }

    async def deliver(
        self,
        body: dict[str, Any],
        *,
        webhook: str | None = None,
        retry_for: float = 0.0,
        timeout: float = 10.0,
    ) -> int:
        """POST one notification; with `retry_for`, repeat (as platforms do) until a 200 or the
        deadline. Returns the last HTTP status (0: no answer at all)."""
        self.injected[body["contributionId"]] = body["messageId"]
        raw = json.dumps(body, ensure_ascii=False).encode()
        url = f"{webhook or self.webhook}/messageNotification/{self.chatbot}/messages"
        deadline = time.monotonic() + retry_for
        delay = 0.05
        while True:
            status = 0
            try:
                async with self.session.post(
                    url, data=raw, headers=self.sign(raw), timeout=aiohttp.ClientTimeout(total=timeout)
                ) as resp:
                    await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            if status == 200:
                self.acked.add(body["messageId"])
                return status
            if time.monotonic() >= deadline:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def tap(self, user: str, postback: str, **kw: Any) -> int:
        return await self.deliver(self.message(user, postback=postback), **kw)

    async def say(self, user: str, text: str, **kw: Any) -> int:
        return await self.deliver(self.message(user, text=text), **kw)

    async def wait_for(self, count: int, timeout: float = 10.0, user: str | None = None) -> list[Received]:
        """Wait until `count` replies (to `user`, if given) have arrived; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.received if user is None or r.user == user]
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            self._arrived = self._arrived or asyncio.Event()
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max(0.01, deadline - time.monotonic()))

    def stats(self) -> dict[str, Any]:
        answered = {self.injected[c] for c in self.replies_to if c in self.injected}
        return {
            "replies": len(self.received),
            "resendsDropped": self.resends_dropped,
            "duplicateReplies": sum(len(ids) - 1 for ids in self.replies_to.values() if len(ids) > 1),
            "acked": len(self.acked),
            "lost": len(self.acked - answered),
            "rejected": self.rejected,
            "tokenRequests": self.token_requests,
            "uploads": len(self.carrier.uploads),
            "revokes": len(self.carrier.revokes),
            "unapprovedSends": self.carrier.review.unapproved_sends,
        }

    def reset(self) -> None:
        self.received.clear()
        self.seen_ids.clear()
        self.replies_to.clear()
        self.injected.clear()
        self.acked.clear()
        self.resends_dropped = self.rejected = 0
        self.fault = Fault()
        self.carrier.clear()

    # -- control API --------------------------------------------------------------------------
    async def h_fault(self, request: web.Request) -> web.Response:
        d = await request.json()
        self.fault = Fault(
            mode=d.get("mode", "ok"),
            status=int(d.get("status", 503)),
            error_code=int(d.get("errorCode", -1)),
            delay=float(d.get("delay", 0)),
            remaining=d.get("count"),
            target=d.get("target", "send"),
        )
        return web.json_response({"fault": self.fault.__dict__})

    async def h_inject(self, request: web.Request) -> web.Response:
        d = await request.json()
        body = self.message(
            d["user"], postback=d.get("postback"), text=d.get("text"), message_id=d.get("messageId")
        )
        statuses = [
            await self.deliver(body, retry_for=float(d.get("retryFor", 0)))
            for _ in range(int(d.get("repeat", 1)))
        ]
        return web.json_response({"messageId": body["messageId"], "statuses": statuses})

    async def h_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def h_messages(self, request: web.Request) -> web.Response:
        user = request.query.get("user")
        return web.json_response(
            {
                "messages": [
                    {
                        "messageId": r.message_id,
                        "user": r.user,
                        "inReplyTo": r.in_reply_to,
                        "text": r.text,
                        "body": r.body,
                    }
                    for r in self.received
                    if user is None or r.user == user
                ]
            },
            dumps=lambda o: json.dumps(o, ensure_ascii=False),
        )

    async def h_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators.maap", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9090)
    ap.add_argument("--webhook", default="http://127.0.0.1:8080/maap/courier")
    ap.add_argument("--chatbot", default="sip:106500@botplatform.rcs.chinaunicom.cn")
    ap.add_argument("--app-id", default="sim-app")
    ap.add_argument("--app-key", default="sim-key")
    ap.add_argument("--csp-token", default="", help="sign injected messages CT/CU style")
    ap.add_argument("--hmac-secret", default="", help="sign injected messages with HMAC-SHA256")
    ap.add_argument("--reports", action="store_true", help="send delivery notifications back")
    a = ap.parse_args(argv)
    sim = Simulator(
        webhook=a.webhook.rstrip("/"),
        chatbot=a.chatbot,
        app_id=a.app_id,
        app_key=a.app_key,
        csp_token=a.csp_token,
        hmac_secret=a.hmac_secret,
        reports=a.reports,
    )
    web.run_app(sim.app(), host=a.host, port=a.port, print=lambda *_: None)


if __name__ == "__main__":
    main()
