"""Client for the MaaP's send API: CT/CU CSP style (default) or GSMA MaaP style.

CSP: `POST {server}/bot/v1/{chatbotId}/accessToken` {"appId", "appKey"} → accessToken (7200 s);
then `POST {server}/bot/v1/{chatbotId}/messages` with `authorization: accessToken <token>`.
A new token cancels the old one and about 2000 token calls a day are allowed, so the token is
cached per chatbot and refreshed once, under a lock, shortly before it expires (or when the
MaaP says it is invalid: 40001/40014/41001/42001 or HTTP 401 → refresh and retry once).

GSMA: OAuth2 client credentials (`POST {token_url}`, grant_type=client_credentials, HTTP Basic
client id/secret) → Bearer token; `POST {server}/rcs/bot/v1/{botId}/messages` → 202.

`send` never raises for platform trouble: it classifies the outcome so the outbox worker can
decide (delivered / retry later / give up).
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

from infra import jsonio
from infra.http1 import Http1Client, HttpError
from renderer import BOTMESSAGE, BOTSUGGESTION

TOKEN_ERRORS = frozenset({40001, 40014, 41001, 42001})
RETRY_ERRORS = frozenset({-1, 45001, 30001, 30002, 30003, 30004})
REPORTS = ["sent", "delivered", "displayed", "failed", "deliveredToNetwork"]


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Literal["ok", "retry", "fail"]
    detail: str = ""
    retry_after: float | None = None


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class SharedTokens(Protocol):
    """Where several server processes keep one access token per chatbot (the Redis store).

    CT/CU: a new token cancels the old one, so processes refreshing on their own would cancel
    each other's tokens in turn (and burn the ~2000/day allowance): one refreshes under a lock,
    the others read what it stored."""

    async def get(self, chatbot: str) -> tuple[str, float] | None: ...
    async def put(self, chatbot: str, token: str, expires_at: float) -> None: ...
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
    ) -> None:
        if dialect not in ("csp", "gsma"):
            raise ValueError(f"MaaP dialect must be csp or gsma, not {dialect!r}")
        self.session = session  # token requests (rare)
        self.http = Http1Client()  # message sends (the hot path; see http1.py)
        self._date = (0, "")
        self.server = server.rstrip("/")
        self.app_id = app_id
        self.app_key = app_key
        self.dialect = dialect
        self.token_url = token_url or f"{self.server}/oauth2/token"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.bot_version = bot_version
        self._tokens: dict[str, _Token] = {}
        self.shared = shared
        self._locks: dict[str, asyncio.Lock] = {}
        self.token_requests = 0

    # -- tokens -------------------------------------------------------------------------------
    async def token(self, chatbot: str, *, stale: str | None = None) -> str:
        """A valid token; refreshes at most once at a time per chatbot. `stale` forces a refresh
        unless another task already replaced that token."""
        tok = self._tokens.get(chatbot)
        if tok and tok.value != stale and tok.expires_at > time.time():
            return tok.value
        lock = self._locks.setdefault(chatbot, asyncio.Lock())
        async with lock:
            tok = self._tokens.get(chatbot)
            if tok and tok.value != stale and tok.expires_at > time.time():
                return tok.value
            tok = await (self._fetch(chatbot) if self.shared is None else self._shared_token(chatbot, stale))
            self._tokens[chatbot] = tok
            return tok.value

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
                    await self.shared.put(chatbot, tok.value, tok.expires_at)
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
        return _Token(str(data["accessToken"]), self._expiry(data.get("expires", 7200)))

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

    # -- capability -------------------------------------------------------------------------
    async def capability(self, chatbot: str, contact: str, path: str, timeout: float = 0.5) -> bool | None:
        """Is `contact` (`tel:+86…`) a 5G-message terminal? The MaaP answers 200 (yes) or 404
        (no) at `path` (`{chatbot}` and `{contact}` filled in); None when it did not answer
        (a token failure, a timeout, a reset): a calling card cannot wait for it."""
        url = self.server + path.format(chatbot=quote(chatbot, safe=":@"), contact=quote(contact))
        try:
            token = await self.token(chatbot)
            auth = f"accessToken {token}" if self.dialect == "csp" else f"Bearer {token}"
            async with self.session.get(
                url, headers={"authorization": auth}, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                await resp.read()
        except (TokenError, TimeoutError, aiohttp.ClientError, OSError):
            return None
        return {200: True, 404: False}.get(resp.status)

    # -- sending ------------------------------------------------------------------------------
    async def send(self, body: dict[str, Any]) -> SendResult:
        chatbot = body["senderAddress"]
        stale: str | None = None
        for attempt in range(2):
            try:
                token = await self.token(chatbot, stale=stale)
                if self.dialect == "csp":
                    result, token_bad = await self._send_csp(chatbot, token, body)
                else:
                    result, token_bad = await self._send_gsma(chatbot, token, body)
            except TokenError as exc:
                return SendResult("retry", str(exc))
            except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError, HttpError) as exc:
                return SendResult("retry", f"{type(exc).__name__}: {exc}"[:300])
            if not token_bad:
                return result
            stale = token
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

    async def _send_csp(self, chatbot: str, token: str, body: dict[str, Any]) -> tuple[SendResult, bool]:
        url = f"{self.server}/bot/v1/{quote(chatbot, safe=':@')}/messages"
        headers = {
            "authorization": f"accessToken {token}",
            "date": self._http_date(),
            "Content-Type": "application/json; charset=utf-8",
        }
        data = jsonio.dumps(self.csp_body(body))
        status, rheaders, raw = await self.http.post(url, data, headers, self.timeout.total or 5.0)
        text = raw.decode("utf-8", "replace")
        retry_after = _retry_after(rheaders.get("retry-after"))
        try:
            reply = jsonio.loads(text) if text else {}
        except jsonio.JSONDecodeError:
            reply = {}
        code = reply.get("errorCode", 0) if isinstance(reply, dict) else 0
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = 0
        if status == 401 or code in TOKEN_ERRORS:
            return SendResult("retry", f"token rejected (HTTP {status}, errorCode {code})"), True
        if status == 200 and code == 0:
            return SendResult("ok"), False
        detail = f"HTTP {status}, errorCode {code}: {text[:200]}"
        if status >= 500 or status in (408, 429) or code in RETRY_ERRORS:
            return SendResult("retry", detail, retry_after), False
        return SendResult("fail", detail), False

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

    async def _send_gsma(self, chatbot: str, token: str, body: dict[str, Any]) -> tuple[SendResult, bool]:
        url = f"{self.server}/rcs/bot/v1/{quote(chatbot, safe=':@')}/messages"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"}
        status, rheaders, raw = await self.http.post(
            url, jsonio.dumps(self.gsma_body(body)), headers, self.timeout.total or 5.0
        )
        text = raw.decode("utf-8", "replace")
        retry_after = _retry_after(rheaders.get("retry-after"))
        if status == 401:
            return SendResult("retry", "bearer token rejected"), True
        if status in (200, 201, 202):
            return SendResult("ok"), False
        detail = f"HTTP {status}: {text[:200]}"
        if status >= 500 or status in (408, 429):
            return SendResult("retry", detail, retry_after), False
        return SendResult("fail", detail), False


class TokenError(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
