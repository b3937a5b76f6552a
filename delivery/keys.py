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

from .storage import DocumentStore

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

    def may_see(self, enterprise: str) -> bool:
        return self.operator or self.enterprise == enterprise


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


async def issue(store: DocumentStore, enterprise: str | None, label: str) -> str:
    key = new_key()
    await store.add_key(hash_key(key), enterprise, label)
    return key


async def principal_of(store: DocumentStore, key: str) -> Principal | None:
    """Whose key this is, or None for a key we never issued."""
    digest = hash_key(key)
    row = await store.key(digest)
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    return Principal(row[1])
