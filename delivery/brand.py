"""Brand identity under the operator's control.

A verified line speaks with its enterprise's brand (compose.py), which the operator vouched for
when it verified the number. So once an enterprise has a verified line, the fields that brand
is made of (`model.BRAND_FIELDS`) change only by the operator, or through a brand change
request the operator approves; until then the lines keep the approved brand. A chatbot
address belongs to one enterprise (the store's `claim_chatbot`).

Requests are stored as documents of kind `brand_request` under their enterprise, so they go
with it when it is deleted and need nothing new of either store.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .model import BRAND_FIELDS
from .replies import bot_id
from .storage import DeliveryStore

KIND = "brand_request"
STATES = ("pending", "approved", "refused", "withdrawn")


def brand_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The brand fields `new` changes (an absent field and "" both mean none)."""
    return [f for f in BRAND_FIELDS if (old.get(f) or "") != (new.get(f) or "")]


async def has_verified_lines(store: DeliveryStore, enterprise: str) -> bool:
    return any(line.get("verified") for line in await store.list("line", enterprise))


def new_request(enterprise: str, changes: dict[str, Any], note: str, actor: str) -> dict[str, Any]:
    return {
        "id": f"br-{int(time.time())}-{secrets.token_hex(4)}",
        "enterprise": enterprise,
        "state": "pending",
        "changes": changes,
        "note": note,
        "filed_by": actor,
        "filed_at": time.time(),
    }


def applied(enterprise: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The enterprise with the request's changes; "" removes an optional field."""
    out = {**enterprise, **changes}
    for f, v in changes.items():
        if v == "" and f not in ("name", "signature"):
            out.pop(f, None)
    return out


def chatbot_of(enterprise: dict[str, Any]) -> str:
    return bot_id(enterprise.get("chatbot", ""))


async def pending_of(store: DeliveryStore, enterprise: str) -> dict[str, Any] | None:
    return next((r for r in await store.list(KIND, enterprise) if r["state"] == "pending"), None)
