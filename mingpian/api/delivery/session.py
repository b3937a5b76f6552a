"""Console sign-in: an enterprise key or the operator key exchanged for a session cookie.

The key is checked once and never kept by the browser. The session's token is random; the store
keeps its hash, the hash of the key it came from (revoking the key ends its sessions) and a CSRF
token the page sends back on every write (`X-CSRF-Token`), so a page on another origin cannot
write even where a browser would attach the cookie. The cookie is HttpOnly, SameSite=Strict,
Secure when the server is reached over HTTPS, and expires (`console_session_hours`). Sessions
are rows in the delivery store, so any worker of a fleet accepts them.

Failed sign-ins are limited per client address (in each worker's memory: a guess costs a
request, and keys are 32 random bytes; the limit is against noise and a locked-out user's
retries rather than brute force).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from delivery.keys import Principal, hash_key, principal_of

from ...errors import ApiError
from ...httpjson import json_response, read_json_body
from ...keys import settings_key
from .ops import op
from .state import delivery_key

COOKIE = "mp_console"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FAILURES_ALLOWED = 5  # wrong keys per address per window
FAILURE_WINDOW = 60.0  # seconds
MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    expires: float


class SignInLimit:
    """Wrong keys per client address in the last FAILURE_WINDOW seconds."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window: float = FAILURE_WINDOW) -> None:
        self.allowed, self.window = allowed, window
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, who: str, now: float) -> float:
        seen = self._failures.get(who)
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if not seen:
            self._failures.pop(who, None)
            return 0.0
        return seen[0] + self.window - now if len(seen) >= self.allowed else 0.0

    def failed(self, who: str, now: float) -> None:
        if len(self._failures) > 100_000:  # bounded memory under a flood of addresses
            self._failures.clear()
        self._failures.setdefault(who, deque()).append(now)


limit_key = web.AppKey("console_signin_limit", SignInLimit)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _same_origin(request: web.Request) -> bool:
    """A browser names the page that sent a write in Origin; it must be this server's."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-origin request (those always carry Origin)
    return origin == f"{request.scheme}://{request.host}" or origin == request.app[settings_key].base_url


async def from_cookie(request: web.Request) -> Session | None:
    """The request's console session, checked against the store (expiry, a key since revoked);
    a write must also carry the session's CSRF token and come from this origin."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    store = request.app[delivery_key].store
    row = await store.session(_token_hash(token))
    if row is None or await store.key(row.key_hash) is None:
        return None
    session = Session(Principal(row.enterprise), row.csrf, row.expires)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not _same_origin(request) or not hmac.compare_digest(sent.encode(), row.csrf.encode()):
            raise ApiError(403, "csrf_failed", f"a write needs this session's {CSRF_HEADER} from this origin")
    return session


def _describe(session: Session) -> dict[str, Any]:
    p = session.principal
    return {
        "operator": p.operator,
        "enterprise": p.enterprise,
        "csrf": session.csrf,
        "expires": session.expires,
    }


async def sign_in(request: web.Request) -> web.Response:
    limits = request.app[limit_key]
    who = request.remote or "?"
    now = time.time()
    wait = limits.retry_after(who, now)
    if wait > 0:
        raise ApiError(
            429, "too_many_requests", "too many wrong keys; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )  # fmt: skip
    if not _same_origin(request):
        raise ApiError(403, "csrf_failed", "sign in from this server's own pages")
    body = await read_json_body(request, 4)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ApiError(422, "invalid", "key: a non-empty string", path="$.key")
    store = request.app[delivery_key].store
    principal = await principal_of(store, key.strip())
    if principal is None:
        limits.failed(who, now)
        raise ApiError(401, "unauthorized", "unknown API key", path="$.key")
    if principal.enterprise is not None:
        ent = await store.get("enterprise", "", principal.enterprise)
        if ent is not None and ent.get("suspended"):
            raise ApiError(403, "forbidden", "the enterprise is suspended")
    settings = request.app[settings_key]
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    max_age = int(settings.console_session_hours * 3600)
    session = Session(principal, csrf, now + max_age)
    await store.add_session(
        _token_hash(token), hash_key(key.strip()), principal.enterprise, csrf, session.expires
    )
    await store.durable()
    resp = json_response(_describe(session), status=201)
    resp.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or settings.base_url.startswith("https://"),
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def current(request: web.Request) -> web.Response:
    session = await from_cookie(request)
    if session is None:
        raise ApiError(401, "unauthorized", "not signed in")
    resp = json_response(_describe(session))
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def sign_out(request: web.Request) -> web.Response:
    session = await from_cookie(request)  # a write: CSRF checked
    if session is not None:
        store = request.app[delivery_key].store
        await store.drop_session(_token_hash(request.cookies[COOKIE]))
        await store.durable()
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/")
    return resp


def setup(app: web.Application) -> dict[str, Any]:
    app[limit_key] = SignInLimit()
    app.router.add_post("/api/session", sign_in)
    app.router.add_get("/api/session", current)
    app.router.add_delete("/api/session", sign_out)
    session = {
        "description": "the session: operator or enterprise, its CSRF token, when it expires",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    return {
        "/api/session": {
            "post": op(
                'Sign in to the console: {"key"} → session cookie (HttpOnly, SameSite=Strict)',
                {"201": session},
                401,
                403,
                422,
                429,
                body_schema={
                    "type": "object",
                    "required": ["key"],
                    "properties": {"key": {"type": "string", "minLength": 1, "maxLength": MAX_KEY}},
                },
            ),
            "get": op("The console session of this cookie", {"200": session}, 401),
            "delete": op("Sign out (needs X-CSRF-Token)", {"204": {"description": "signed out"}}, 403),
        }
    }
