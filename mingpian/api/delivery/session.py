"""Console sign-in: an enterprise key or the operator key exchanged for a session cookie.

The key is checked once and never kept by the browser. The session's token is random; the store
keeps its hash, the hash of the key it came from (revoking the key ends its sessions) and a CSRF
token the page sends back on every write (`X-CSRF-Token`), so a page on another origin cannot
write even where a browser would attach the cookie. The cookie is HttpOnly, SameSite=Strict,
Secure when the server is reached over HTTPS, and expires (`console_session_hours`). Sessions
are rows in the delivery store, so any worker of a fleet accepts them.

Wrong keys are limited twice: per key tried (its hash; a client retrying a key it mistyped or
that was revoked) and per client address (a spray of keys; the address behind trusted proxies,
mingpian/clientaddr.py). The same counts hold for a key sent on any API request (`Authorization:
Bearer`, `X-API-Key`; access.py), so one address has one allowance of wrong keys whichever door
it tries. Both count wrong keys only and are asked only once a key was found wrong, so a right
key always gets in: behind a proxy every user shares an address, and a limit that refused the
right key would let anyone lock everyone out. Keys are 32 random bytes, so the limits are
against noise and cost (a client stuck on a revoked key, a scanner) rather than guessing, and
generous: a script that mistypes its key a few times, or a dozen users behind one proxy who do,
never meet them. With the Redis counters (a fleet) the counts are shared by every worker;
otherwise each worker counts in its memory.
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
from redis.exceptions import RedisError

from delivery.keys import Principal, hash_key, principal_of
from delivery.metering import Counters
from delivery.metering.redis import RedisCounters

from ...clientaddr import client_address
from ...errors import ApiError
from ...httpjson import json_response, read_json_body
from ...keys import settings_key
from .ops import op
from .state import delivery_key

COOKIE = "mp_console"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_FAILURES = 5  # wrong tries of one key per window
ADDRESS_FAILURES = 30  # wrong keys from one client address per window
FAILURE_WINDOW = 60.0  # seconds
MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    expires: float


class SignInLimit:
    """Wrong keys per scope (a key's hash, a client address) in the last `window` seconds, in
    this worker's memory."""

    def __init__(self, window: float = FAILURE_WINDOW) -> None:
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    async def failed(self, scope: str, allowed: int, now: float) -> float:
        """Count a wrong key against `scope`: 0, or the seconds until it may try again once it
        has had `allowed` in the window (a refused try is not counted)."""
        seen = self._failures.get(scope)
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if seen and len(seen) >= allowed:
            return seen[0] + self.window - now
        if len(self._failures) > 100_000:  # bounded memory under a flood of addresses and keys
            self._failures.clear()
        self._failures.setdefault(scope, deque()).append(now)
        return 0.0


class SharedSignInLimit:
    """The same counts in the fleet's Redis (the counters' sliding-window cap), so a key or an
    address refused by one worker is refused by all; this worker's own count while Redis fails."""

    def __init__(self, counters: Counters, local: SignInLimit, window: float = FAILURE_WINDOW) -> None:
        self.counters, self.local, self.window = counters, local, window

    async def failed(self, scope: str, allowed: int, now: float) -> float:
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        try:
            ok = await self.counters.cap(f"signin:{scope}", allowed, self.window, member, now)
        except (OSError, RedisError):
            return await self.local.failed(scope, allowed, now)
        return 0.0 if ok else self.window


limit_key = web.AppKey("console_signin_limit", SignInLimit)


def _limits(request: web.Request) -> SignInLimit | SharedSignInLimit:
    counters = request.app[delivery_key].counters
    local = request.app[limit_key]
    return SharedSignInLimit(counters, local) if isinstance(counters, RedisCounters) else local


async def wrong_key(request: web.Request, key: str, path: str | None = None) -> ApiError:
    """A wrong key, at sign-in or on any API request (access.py): counted against itself and
    the client's address, the same counts for both doors; 401, or 429 past a limit. Asked only
    once a key was found wrong, so it never stands before a right one."""
    limits, now = _limits(request), time.time()
    wait = max(
        await limits.failed("key:" + hash_key(key), KEY_FAILURES, now),
        await limits.failed("address:" + client_address(request), ADDRESS_FAILURES, now),
    )
    if wait > 0:
        return ApiError(
            429, "too_many_requests", "too many wrong keys; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )  # fmt: skip
    return ApiError(401, "unauthorized", "unknown API key", path=path)


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
    if not _same_origin(request):
        raise ApiError(403, "csrf_failed", "sign in from this server's own pages")
    body = await read_json_body(request, 4)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ApiError(422, "invalid", "key: a non-empty string", path="$.key")
    store = request.app[delivery_key].store
    principal = await principal_of(store, key.strip())
    if principal is None:  # the limits are asked only now: they never stand before a right key
        raise await wrong_key(request, key.strip(), "$.key")
    if principal.enterprise is not None:
        ent = await store.get("enterprise", "", principal.enterprise)
        if ent is not None and ent.get("suspended"):
            raise ApiError(403, "forbidden", "the enterprise is suspended")
    session, token = await start_session(request, key.strip(), principal)
    return with_cookie(request, json_response(_describe(session), status=201), token)


async def start_session(request: web.Request, key: str, principal: Principal) -> tuple[Session, str]:
    """A new session of `key` (whose principal is `principal`), stored; and its cookie's token."""
    store = request.app[delivery_key].store
    settings = request.app[settings_key]
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    session = Session(principal, csrf, time.time() + settings.console_session_hours * 3600)
    await store.add_session(_token_hash(token), hash_key(key), principal.enterprise, csrf, session.expires)
    await store.durable()
    return session, token


def with_cookie(request: web.Request, resp: web.Response, token: str) -> web.Response:
    """`resp` setting the session cookie of `token` (start_session's)."""
    settings = request.app[settings_key]
    resp.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.console_session_hours * 3600),
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
                400,
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
