"""Client for a MaaP's send API in one of three dialects, chosen per MaaP account.

`csp` (CT/CU): `POST {server}/bot/v1/{chatbotId}/accessToken` {"appId", "appKey"} →
accessToken (7200 s) and the `url` to send to (used instead of the configured one when given);
then `POST {url}/bot/v1/{chatbotId}/messages` with `authorization: accessToken <token>`.
A new token cancels the old one and about 2000 token calls a day are allowed, so the token is
cached per chatbot and refreshed once, under a lock, shortly before it expires (or when the
MaaP says it is expired or invalid → refresh and retry once; codes.py has the whole table).

`cm` (China Mobile): `msg:outboundMessageRequest` XML (cmxml_out.py) to
`{server}/messaging/interaction/v1/outbound/{chatbotURI}/requests` (a reply) or
`…/messaging/group/v1/outbound/…` (a message we start), with `Date`, `Address` and Basic
credentials derived from that Date; no token.

`gsma`: OAuth2 client credentials (`POST {token_url}`, grant_type=client_credentials, HTTP Basic
client id/secret) → Bearer token; `POST {server}/rcs/bot/v1/{botId}/messages` → 202.

`send` and `revoke` never raise for platform trouble: they classify the outcome so the caller
can decide (delivered / retry later / give up). Uploads (media hosted on the platform) are in
uploads.py, capability lookups in capability.py; both use this client's credentials. Sends and
revokes stay here, in one module of about 400 lines, because they share the per-account token
cache and credentials with every dialect's request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Literal, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from infra import jsonio
from infra.http1 import Http1Client, HttpError
from renderer import BOTMESSAGE, BOTSUGGESTION

from . import cmxml_out
from .codes import Rule, csp_rule, http_rule, renewal_wait

DIALECTS = ("csp", "cm", "gsma")
REPORTS = ["sent", "delivered", "displayed", "failed", "deliveredToNetwork"]


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Literal["ok", "retry", "fail"]
    detail: str = ""
    retry_after: float | None = None
    # a quota wait: `retry_after` is when the quota renews, honoured even past the usual cap
    hold: bool = False
    blocked: bool = False  # the platform refused the content (reported, never resent)


def result_of(rule: Rule, detail: str, retry_after: float | None = None) -> SendResult:
    """The table's action (codes.py) as what the caller does next."""
    if rule.action == "ok":
        return SendResult("ok", detail)
    if rule.action == "wait":
        return SendResult("retry", f"{rule.meaning}: {detail}", renewal_wait(rule.renews), hold=True)
    if rule.action in ("retry", "backoff", "refresh"):
        return SendResult("retry", f"{rule.meaning}: {detail}", retry_after)
    return SendResult("fail", f"{rule.meaning}: {detail}", blocked=rule.action == "blocked")


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float
    url: str = ""  # where the token answer says to send (CT/CU); "" → the configured server


class SharedTokens(Protocol):
    """Where several server processes keep one access token per chatbot (the Redis store).

    CT/CU: a new token cancels the old one, so processes refreshing on their own would cancel
    each other's tokens in turn (and burn the ~2000/day allowance): one refreshes under a lock,
    the others read what it stored."""

    async def get(self, chatbot: str) -> tuple[str, float, str] | None: ...
    async def put(self, chatbot: str, token: str, expires_at: float, url: str = "") -> None: ...
    async def lock(self, chatbot: str, ttl: float) -> str | None: ...
    async def unlock(self, chatbot: str, owner: str) -> None: ...


class MaapClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        server: str,
        *,
        app_id: str,
        app_key: str,
        dialect: str = "csp",
        token_url: str = "",
        timeout: float = 5.0,
        bot_version: str = '+g.gsma.rcs.botversion="#=1"',
        shared: SharedTokens | None = None,
        cm_secret: str = "password",
        file_server: str = "",
        upload_mode: str = "perm",
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"MaaP dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
        self.session = session  # token requests, uploads, revokes, capability (rare)
        self.http = Http1Client()  # message sends (the hot path; see http1.py)
        self._date = (0, "")
        self.server = server.rstrip("/")
        self.app_id = app_id
        self.app_key = app_key
        self.dialect = dialect
        self.token_url = token_url or f"{self.server}/oauth2/token"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.bot_version = bot_version
        self.cm_secret = cmxml_out.secret_of(app_key, cm_secret) if dialect == "cm" else b""
        self.file_server = (file_server or self.server).rstrip("/")
        self.upload_mode = upload_mode
        self._tokens: dict[str, _Token] = {}
        self.shared = shared
        self._locks: dict[str, asyncio.Lock] = {}
        self.token_requests = 0

    # -- tokens -------------------------------------------------------------------------------
    async def token(self, chatbot: str, *, stale: str | None = None) -> str:
        return (await self.token_info(chatbot, stale=stale)).value

    async def token_info(self, chatbot: str, *, stale: str | None = None) -> _Token:
        """A valid token; refreshes at most once at a time per chatbot. `stale` forces a refresh
        unless another task already replaced that token."""
        tok = self._tokens.get(chatbot)
        if tok and tok.value != stale and tok.expires_at > time.time():
            return tok
        lock = self._locks.setdefault(chatbot, asyncio.Lock())
        async with lock:
            tok = self._tokens.get(chatbot)
            if tok and tok.value != stale and tok.expires_at > time.time():
                return tok
            tok = await (self._fetch(chatbot) if self.shared is None else self._shared_token(chatbot, stale))
            self._tokens[chatbot] = tok
            return tok

    def base(self, tok: _Token | None) -> str:
        """Where requests go: the token answer's `url` when it gave one, else the server."""
        return tok.url.rstrip("/") if tok is not None and tok.url else self.server

    async def _fetch(self, chatbot: str) -> _Token:
        return await (self._csp_token(chatbot) if self.dialect == "csp" else self._oauth_token())

    async def _shared_token(self, chatbot: str, stale: str | None, wait: float = 10.0) -> _Token:
        assert self.shared is not None
        deadline = time.monotonic() + wait
        while True:
            got = await self.shared.get(chatbot)
            if got and got[0] != stale and got[1] > time.time():
                return _Token(*got)
            owner = await self.shared.lock(chatbot, self.timeout.total or 5.0)
            if owner is not None:
                try:
                    got = await self.shared.get(chatbot)  # someone may have refreshed meanwhile
                    if got and got[0] != stale and got[1] > time.time():
                        return _Token(*got)
                    tok = await self._fetch(chatbot)
                    await self.shared.put(chatbot, tok.value, tok.expires_at, tok.url)
                    return tok
                finally:
                    await self.shared.unlock(chatbot, owner)
            if time.monotonic() > deadline:
                raise TokenError("another process has been refreshing the access token for too long")
            await asyncio.sleep(0.05)

    def _expiry(self, seconds: Any) -> float:
        try:
            life = float(seconds)
        except (TypeError, ValueError):
            life = 7200.0
        # Refresh a little before the platform's expiry: 10% of the lifetime, at most 5 minutes.
        return time.time() + life - min(300.0, life * 0.1)

    async def _csp_token(self, chatbot: str) -> _Token:
        self.token_requests += 1
        url = f"{self.server}/bot/v1/{quote(chatbot, safe=':@')}/accessToken"
        async with self.session.post(
            url, json={"appId": self.app_id, "appKey": self.app_key}, timeout=self.timeout
        ) as resp:
            data = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(data, dict) or not data.get("accessToken"):
            raise TokenError(f"token request failed: HTTP {resp.status} {str(data)[:200]}")
        given = data.get("url")
        url_ok = isinstance(given, str) and given.startswith(("http://", "https://"))
        return _Token(
            str(data["accessToken"]), self._expiry(data.get("expires", 7200)), given if url_ok else ""
        )

    async def _oauth_token(self) -> _Token:
        self.token_requests += 1
        basic = base64.b64encode(f"{self.app_id}:{self.app_key}".encode()).decode()
        async with self.session.post(
            self.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
            timeout=self.timeout,
        ) as resp:
            data = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(data, dict) or not data.get("access_token"):
            raise TokenError(f"token request failed: HTTP {resp.status} {str(data)[:200]}")
        return _Token(str(data["access_token"]), self._expiry(data.get("expires_in", 3600)))

    # -- credentials per request --------------------------------------------------------------
    async def auth(self, chatbot: str, stale: str | None = None) -> tuple[dict[str, str], str, str]:
        """(headers, base URL, the token they carry) for one request of any dialect."""
        if self.dialect == "cm":
            date = self._http_date()
            return (
                {"Date": date, "Authorization": cmxml_out.basic_auth(self.app_id, self.cm_secret, date)},
                self.server,
                "",
            )
        tok = await self.token_info(chatbot, stale=stale)
        scheme = "accessToken" if self.dialect == "csp" else "Bearer"
        return (
            {"Authorization": f"{scheme} {tok.value}", "Date": self._http_date()},
            self.base(tok),
            tok.value,
        )

    def cm_file_headers(self, chatbot: str) -> dict[str, str]:
        """What China Mobile wants on file operations besides the credentials."""
        ident = (
            chatbot if chatbot.startswith("sip:") else f"sip:{self.app_id}@botplatform.rcs.chinamobile.com"
        )
        return {"X-3GPP-Intended-Identity": ident, "User-Agent": f"SP/{chatbot}", "Terminal-type": "Chatbot"}

    # -- sending ------------------------------------------------------------------------------
    async def send(self, body: dict[str, Any]) -> SendResult:
        chatbot = body["senderAddress"]
        stale: str | None = None
        for attempt in range(2):
            try:
                if self.dialect == "cm":
                    result, token_bad = await self._send_cm(chatbot, body)
                else:
                    tok = await self.token_info(chatbot, stale=stale)
                    if self.dialect == "csp":
                        result, token_bad = await self._send_csp(chatbot, tok, body)
                    else:
                        result, token_bad = await self._send_gsma(chatbot, tok, body)
            except TokenError as exc:
                return SendResult("retry", str(exc))
            except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, HttpError) as exc:
                return SendResult("retry", f"{type(exc).__name__}: {exc}"[:300])
            if not token_bad or self.dialect == "cm":
                return result
            stale = tok.value
            if attempt == 1:
                return result
        raise AssertionError("unreachable")

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    async def close(self) -> None:
        await self.http.close()

    def csp_body(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            **body,
            "serviceCapability": [{"capabilityId": "ChatbotSA", "version": self.bot_version}],
            "storeSupported": True,
            "reportRequest": REPORTS,
        }

    async def _send_csp(self, chatbot: str, tok: _Token, body: dict[str, Any]) -> tuple[SendResult, bool]:
        url = f"{self.base(tok)}/bot/v1/{quote(chatbot, safe=':@')}/messages"
        headers = {
            "authorization": f"accessToken {tok.value}",
            "date": self._http_date(),
            "Content-Type": "application/json; charset=utf-8",
        }
        data = jsonio.dumps(self.csp_body(body))
        status, rheaders, raw = await self.http.post(url, data, headers, self.timeout.total or 5.0)
        return csp_outcome(status, rheaders, raw)

    def cm_url(self, chatbot: str, body: dict[str, Any]) -> str:
        """Replies go to the interaction endpoint, messages we start (cards) to the group one."""
        kind = "interaction" if body.get("inReplyTo") else "group"
        return f"{self.server}/messaging/{kind}/v1/outbound/{quote(chatbot, safe='')}/requests"

    async def _send_cm(self, chatbot: str, body: dict[str, Any]) -> tuple[SendResult, bool]:
        headers, _, _ = await self.auth(chatbot)
        user = body["destinationAddress"][0]
        headers |= {"Content-Type": "application/xml; charset=utf-8", "Address": user.removeprefix("tel:")}
        status, rheaders, raw = await self.http.post(
            self.cm_url(chatbot, body),
            cmxml_out.outbound(body, self.bot_version),
            headers,
            self.timeout.total or 5.0,
        )
        detail = f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"
        return result_of(http_rule(status), detail, _retry_after(rheaders.get("retry-after"))), False

    def gsma_body(self, body: dict[str, Any]) -> dict[str, Any]:
        msg: dict[str, Any] = {"msgId": body["messageId"]}
        for part in body["messageList"]:
            if part["contentType"] == BOTMESSAGE:
                msg["richcardMessage"] = part["contentText"]
            elif part["contentType"] == BOTSUGGESTION:
                msg["suggestedChipList"] = part["contentText"]
            elif part["contentType"] == "text/plain":
                msg["textMessage"] = part["contentText"]
        return {
            "RCSMessage": msg,
            "messageContact": {
                "userContact": body["destinationAddress"][0],
                "chatId": body.get("conversationId", ""),
            },
        }

    async def _send_gsma(self, chatbot: str, tok: _Token, body: dict[str, Any]) -> tuple[SendResult, bool]:
        url = f"{self.server}/rcs/bot/v1/{quote(chatbot, safe=':@')}/messages"
        headers = {"Authorization": f"Bearer {tok.value}", "Content-Type": "application/json; charset=utf-8"}
        status, rheaders, raw = await self.http.post(
            url, jsonio.dumps(self.gsma_body(body)), headers, self.timeout.total or 5.0
        )
        rule = http_rule(status)
        detail = f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"
        return result_of(rule, detail, _retry_after(rheaders.get("retry-after"))), rule.action == "refresh"

    # -- revoke -------------------------------------------------------------------------------
    async def revoke(self, chatbot: str, message_id: str, user: str) -> SendResult:
        """Ask the platform to take back a message it accepted (CT/CU `…/revoke`, China Mobile a
        `RevokeRequested` status, GSMA a `cancelled` status). The outcome arrives later as a
        status report (revokeOk / revokeFail); this only says whether the request was taken."""
        stale: str | None = None
        for _ in range(2):
            try:
                headers, base, token = await self.auth(chatbot, stale)
                status, raw, rule = await self._revoke(chatbot, message_id, user, headers, base)
            except TokenError as exc:
                return SendResult("retry", str(exc))
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                return SendResult("retry", f"{type(exc).__name__}: {exc}"[:300])
            if rule.action != "refresh" or self.dialect == "cm":
                break
            stale = token
        return result_of(rule, f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}")

    async def _revoke(
        self, chatbot: str, mid: str, user: str, headers: dict[str, str], base: str
    ) -> tuple[int, bytes, Rule]:
        if self.dialect == "csp":
            url = f"{base}/bot/v1/{quote(chatbot, safe=':@')}/revoke"
            payload = {"messageId": mid, "destinationAddress": [user], "status": "RevokeRequested"}
            kwargs: dict[str, Any] = {"json": payload}
            method = "POST"
        elif self.dialect == "cm":
            where = f"{quote(chatbot, safe='')}/requests/{quote(mid, safe='')}"
            url = f"{base}/messaging/v1/outbound/{where}/status"
            headers = {
                **headers,
                "Content-Type": "application/xml; charset=utf-8",
                "Address": user.removeprefix("tel:"),
            }
            kwargs = {"data": cmxml_out.revoke(user)}
            method = "PUT"
        else:
            url = f"{base}/rcs/bot/v1/{quote(chatbot, safe=':@')}/messages/{quote(mid, safe='')}/status"
            kwargs = {
                "json": {"RCSMessage": {"status": "cancelled"}, "messageContact": {"userContact": user}}
            }
            method = "PUT"
        async with self.session.request(
            method, URL(url, encoded=True), headers=headers, timeout=self.timeout, **kwargs
        ) as resp:
            raw = await resp.read()
        if self.dialect != "csp":
            return resp.status, raw, http_rule(resp.status)
        return resp.status, raw, csp_rule(resp.status, _error_code(raw))


def csp_outcome(status: int, rheaders: dict[str, str], raw: bytes) -> tuple[SendResult, bool]:
    """A CT/CU answer as (what to do, whether the token was refused)."""
    code = _error_code(raw)
    rule = csp_rule(status, code)
    detail = f"HTTP {status}, errorCode {code}: {raw[:200].decode('utf-8', 'replace')}"
    return result_of(rule, detail, _retry_after(rheaders.get("retry-after"))), rule.action == "refresh"


def _error_code(raw: bytes) -> int:
    try:
        reply = jsonio.loads(raw) if raw else {}
    except (jsonio.JSONDecodeError, UnicodeDecodeError):
        return 0
    code = reply.get("errorCode", 0) if isinstance(reply, dict) else 0
    try:
        return int(code)
    except (TypeError, ValueError):
        return 0


class TokenError(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
