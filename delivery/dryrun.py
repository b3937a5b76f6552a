"""A dry run: exactly what a call between one of the enterprise's lines and a number would send,
channel by channel, without sending, charging or recording anything.

It walks the same steps as a real call event (intake's card choice, the variant of a running
experiment the number is assigned to and its version, compose's data and brand, the chain's
channel order and skip reasons, the degraded legacy texts, the package units), so what the
console shows is what the gateways would get.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from renderer import RenderError
from renderer.legacy import LegacyText
from renderer.model import Message
from renderer.rcs import to_rcs

from . import rules
from .compose import Composer, choose_card
from .experiments import for_delivery
from .metering import Meter
from .metering.estimate import estimate
from .model import DEFAULT_CHAIN
from .records import Delivery
from .storage import DryRunStore

if TYPE_CHECKING:
    from chatbot.approval import NotApproved

LEGACY = ("ussd", "flash", "sms")
# (chatbot, a 5G body) → why the carrier would not take its media yet, or None
Approval = Callable[[str, dict[str, Any]], Awaitable["NotApproved | None"]]
# (enterprise, card, version, chatbot) → why its carrier refused that card ("" : it did not)
Refused = Callable[[str, str, int, str], Awaitable[str]]
# (delivery, enterprise, card) → the cardsms step explained (cardsms.py's `explain`)
CardSmsExplain = Callable[[Delivery, dict[str, Any], Message], Awaitable[dict[str, Any]]]


async def dry_run(
    store: DryRunStore,
    composer: Composer,
    meter: Meter,
    configured: set[str],
    enterprise: dict[str, Any],
    line: dict[str, Any],
    person: str,
    phase: str,
    approval: Approval | None = None,
    refused: Refused | None = None,
    cardsms: CardSmsExplain | None = None,
) -> dict[str, Any]:
    """`approval`: whether a 5G card would name a file its carrier has not approved (the chatbot
    runtime's; None: no MaaP); `refused`: whether its carrier refused the card itself after the
    fact (refusals.py)."""
    eid = enterprise["id"]
    now = time.time()
    call_id = "dry-run-" + secrets.token_hex(6)
    card = await choose_card(store, eid, line, phase, call_id)
    chain = list((enterprise.get("policy") or {}).get("chain") or DEFAULT_CHAIN)
    out: dict[str, Any] = {
        "line": line["number"],
        "to": person,
        "phase": phase,
        "verified": bool(line.get("verified")),
        "chain": chain,
        "card": None,
        "experiment": None,
        "blocked": "",
        "channels": [],
    }
    if card is None:
        out["blocked"] = f"no card for phase {phase}"
        return out
    # a running experiment: the variant this number always gets, and its version (as intake)
    card, variant = await for_delivery(store, eid, card, person)
    out["card"] = {k: card.get(k) for k in ("id", "template", "kind", "line", "group")}
    out["card"]["version"] = int(card.get("version", 1))
    if variant:
        out["experiment"] = {**variant, "version": out["card"]["version"]}
    if await store.opted_out(eid, person):
        out["blocked"] = "the number opted out"
    elif (quiet := rules.quiet_reason(card.get("kind"), card.get("class"))) and rules.in_quiet_hours(
        enterprise.get("policy") or {}, now
    ):
        out["blocked"] = quiet
    d = Delivery(
        call_id, call_id, phase, eid, line["number"], person, card["id"], card["template"],
        card.get("kind", "identity"),
        {
            "card_data": card.get("data") or {}, "call_fields": card.get("call_fields") or {},
            "staff": line.get("staff"), "caller": line["number"], "callee": person, "time": now,
            "verified": bool(line.get("verified")), "version": int(card.get("version", 1)),
            **variant,
        },
        chain, 0, "active", "", "", now, now, now,
    )  # fmt: skip
    try:
        msg = await composer.message(d, enterprise)
    except RenderError as exc:
        out["blocked"] = f"the card does not render: {str(exc).splitlines()[0][:300]}"
        return out
    finally:
        composer.forget(d.id)
    out["brand"] = {"signature": msg.brand.signature, "name": msg.brand.name}
    texts = partial(_text, composer, enterprise)  # as sent: with the enterprise's short links
    costs = {c["channel"]: c for c in await estimate(meter, eid, msg, line["number"], 1, texts)}
    for ch in chain:
        item: dict[str, Any] = {"channel": ch, "cost": costs.get(ch, {})}
        if ch not in configured:
            item["skipped"] = f"channel {ch} not configured"
        try:
            if ch == "cardsms":
                if not item.get("skipped") and cardsms is not None:
                    item |= await cardsms(d, enterprise, msg)
            elif ch == "rcs":
                item["messageList"] = to_rcs(msg).message_list()
                if not enterprise.get("chatbot"):
                    item["skipped"] = "the enterprise has no chatbot for 5G messages"
                elif not item.get("skipped"):
                    why = await _not_approved(enterprise["chatbot"], card, item, eid, approval, refused)
                    if why:
                        item["skipped"] = why
            else:
                text = composer.text(msg, ch, enterprise)  # type: ignore[arg-type]
                if text.links:  # each recipient's codes are minted at the send: shown as x…x
                    item["shortLinks"] = [{"key": s.key, "target": s.target} for s in text.links]
                    text = text.fill(["x" * text.link_width] * len(text.links))
                item["legacy"] = text.to_json()
        except RenderError as exc:
            item["error"] = str(exc).splitlines()[0][:300]
        out["channels"].append(item)
    return out


async def _not_approved(
    chatbot: str,
    card: dict[str, Any],
    item: dict[str, Any],
    eid: str,
    approval: Approval | None,
    refused: Refused | None,
) -> str:
    """Why the carrier would not take this 5G card ("" : it would): the card refused after the
    fact, or its media not approved."""
    if refused is not None:
        why = await refused(eid, card["id"], int(card.get("version", 1)), chatbot)
        if why:
            return why
    if approval is not None:
        not_approved = await approval(chatbot, {"senderAddress": chatbot, "messageList": item["messageList"]})
        if not_approved is not None:
            return not_approved.reason
    return ""


def _text(composer: Composer, enterprise: dict[str, Any], msg: Message, channel: str) -> LegacyText:
    return composer.text(msg, channel, enterprise)  # type: ignore[arg-type]
