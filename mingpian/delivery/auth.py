"""API keys: stored as SHA-256 hashes, never in clear; an operator key sees every enterprise,
an enterprise key only its own.

Keys are 32 random bytes (urlsafe base64), so a plain SHA-256 is enough (no salt/stretching:
there is nothing to brute-force). The lookup is by hash, and the stored hash is compared with
hmac.compare_digest before it is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from ..http_errors import raise_json
from .store import DeliveryStore

PREFIX = "mpk_"


@dataclass(frozen=True, slots=True)
class Principal:
    enterprise: str | None  # None: the operator

    @property
    def operator(self) -> bool:
        return self.enterprise is None

    @property
    def name(self) -> str:
        return "operator" if self.enterprise is None else f"enterprise:{self.enterprise}"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def issue(store: DeliveryStore, enterprise: str | None, label: str) -> str:
    key = new_key()
    store.add_key(hash_key(key), enterprise, label)
    return key


def presented(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-API-Key")


def authenticate(request: web.Request, store: DeliveryStore) -> Principal:
    key = presented(request)
    if not key:
        raise_json(401, "unauthorized", "send an API key: Authorization: Bearer <key>")
    digest = hash_key(key)
    row = store.key(digest)
    if row is None or not hmac.compare_digest(row[0], digest):
        raise_json(401, "unauthorized", "unknown API key")
    return Principal(row[1])


def require_operator(p: Principal) -> None:
    if not p.operator:
        raise_json(403, "forbidden", "only the operator may do this")


def require_enterprise(p: Principal, enterprise: str) -> None:
    """An enterprise key for another enterprise gets 404, not 403: it must not learn which ids exist."""
    if not p.operator and p.enterprise != enterprise:
        raise_json(404, "not_found", f"no enterprise {enterprise!r}")
