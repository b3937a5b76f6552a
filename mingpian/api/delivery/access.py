"""Who is asking: the API key on a delivery request (or the console session it was exchanged
for, session.py), and what it may reach.

A wrong key counts against the key and the client's address as at console sign-in
(session.py): past the limits it gets 429 with Retry-After, a right key never does.

An enterprise key reaches only its own enterprise: any other enterprise's ids answer 404
exactly like ids that do not exist, so a key cannot learn which enterprises exist.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from delivery.keys import Principal, principal_of

from ...errors import ApiError
from .session import from_cookie, wrong_key
from .state import delivery_key


def presented(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key")


async def principal(request: web.Request) -> Principal:
    key = presented(request)
    if not key:
        session = await from_cookie(request)  # the console: the same API, signed in
        if session is not None:
            await refuse_suspended(request, session.principal)
            return session.principal
        raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key>")
    who = await principal_of(request.app[delivery_key].store, key)
    if who is None:  # counted only now, as at sign-in: a right key is never held back
        raise await wrong_key(request, key)
    await refuse_suspended(request, who)
    return who


async def refuse_suspended(request: web.Request, p: Principal) -> None:
    """A suspended enterprise's keys and sessions are refused until the operator lifts it."""
    if p.enterprise is not None:
        ent = await request.app[delivery_key].store.get("enterprise", "", p.enterprise)
        if ent is not None and ent.get("suspended"):
            raise ApiError(403, "forbidden", "the enterprise is suspended")


def require_operator(p: Principal) -> None:
    if not p.operator:
        raise ApiError(403, "forbidden", "only the operator may do this")


async def enterprise(request: web.Request, p: Principal) -> dict[str, Any]:
    """The enterprise named in the path, if this principal may see it (404 otherwise)."""
    eid = request.match_info["eid"]
    ent = await request.app[delivery_key].store.get("enterprise", "", eid) if p.may_see(eid) else None
    if ent is None:
        raise ApiError(404, "not_found", f"no enterprise {eid!r}")
    return ent
