"""Brand identity under the operator's control.

A verified line speaks with its enterprise's brand (compose.py), which the operator vouched for
when it verified the number. So once an enterprise has a verified line, the fields that brand
is made of (`model.BRAND_FIELDS`) change only by the operator, or through a brand change
request the operator approves; until then the lines keep the approved brand. A chatbot
address belongs to one enterprise (the store's `claim_chatbot`).

The number texts are sent from (`sms_sender`) is what the recipient's phone shows as the sender,
so it is held tighter, whether or not the enterprise has verified lines: it is sent from only
while it equals `sms_sender_approved`, which the server keeps. The operator setting or changing
the sender, naming the approval in its write, or approving a request sets it; an enterprise may
name one of its own verified lines itself, and that approval ends when the line stops being
verified or is deleted. A value stored before the number was part of the brand has no approval,
so the line is sent from instead (an operator saving the document for something else, such as a
suspension, does not approve it by the way).

Requests are stored as documents of kind `brand_request` under their enterprise, so they go
with it when it is deleted and need nothing new of either store.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .model import BRAND_FIELDS, NumberError, normalize_number
from .replies import bot_id
from .storage import DocumentStore

KIND = "brand_request"
STATES = ("pending", "approved", "refused", "withdrawn")
SENDER, APPROVED = "sms_sender", "sms_sender_approved"


def brand_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The brand fields `new` changes (an absent field and "" both mean none)."""
    return [f for f in BRAND_FIELDS if (old.get(f) or "") != (new.get(f) or "")]


async def has_verified_lines(store: DocumentStore, enterprise: str) -> bool:
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
    """The enterprise with the request's changes, which the operator approved; "" removes an
    optional field."""
    out = {**enterprise, **changes}
    for f, v in changes.items():
        if v == "" and f not in ("name", "signature"):
            out.pop(f, None)
    return with_approval(out, out.get(SENDER)) if SENDER in changes else out


def with_approval(enterprise: dict[str, Any], approved: str | None) -> dict[str, Any]:
    """The enterprise with `approved` as its approved sender, kept only when it is the sender."""
    out = {k: v for k, v in enterprise.items() if k != APPROVED}
    if approved and approved == out.get(SENDER):
        out[APPROVED] = approved
    return out


def sender_address(value: str) -> str:
    """A sender as the gateways take it: a phone number in E.164 (so SMPP numbers it as one),
    a service code as dialled, a name as it is."""
    if not value.isdigit():
        return value
    try:
        return normalize_number(value)
    except NumberError:
        return value


def sender_of(enterprise: dict[str, Any]) -> str:
    """What the enterprise's texts are sent from instead of their line: its sender, if approved."""
    value = enterprise.get(SENDER) or ""
    return sender_address(value) if value and enterprise.get(APPROVED) == value else ""


def source_of(enterprise: dict[str, Any], line: str, verified: bool, platform_sender: str) -> str:
    """The number a text goes out from: the enterprise's approved sender; else the line, once
    the operator verified it; else the platform's own sender ("": the SMSC account's default).
    An unverified line may be anyone's number (a bank's 95566 added by someone else), so the
    recipient's phone never shows it as the sender."""
    return sender_of(enterprise) or (line if verified else platform_sender)


async def own_verified_line(store: DocumentStore, enterprise: str, value: str) -> bool:
    """Whether the sender `value` is a verified line of the enterprise (it may take it itself)."""
    if not value.isdigit():
        return False
    line = await store.get("line", enterprise, sender_address(value))
    return bool(line and line.get("verified"))


async def line_no_longer_vouched(store: DocumentStore, enterprise: str, number: str) -> None:
    """Inside a transaction: the line `number` was unverified or deleted, so it is no longer an
    approved sender of the enterprise."""
    ent = await store.get("enterprise", "", enterprise)
    if ent is not None and ent.get(APPROVED) and sender_address(ent[APPROVED]) == number:
        await store.put("enterprise", "", enterprise, with_approval(ent, None))


def chatbot_of(enterprise: dict[str, Any]) -> str:
    return bot_id(enterprise.get("chatbot", ""))


async def pending_of(store: DocumentStore, enterprise: str) -> dict[str, Any] | None:
    return next((r for r in await store.list(KIND, enterprise) if r["state"] == "pending"), None)
