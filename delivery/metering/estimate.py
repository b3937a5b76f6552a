"""What a campaign would cost per channel before it is sent: units (SMS per segment) × count,
how much of it the enterprise's packages cover, and the rest at the overage price."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from renderer import RenderError
from renderer.legacy import LegacyText, degrade
from renderer.model import Message

from . import Meter
from .packages import applicable, units_for

CHANNELS = ("rcs", "ussd", "flash", "sms", "cardsms")  # cardsms: one SMS, charged when drawn


async def estimate(
    meter: Meter,
    enterprise: str,
    msg: Message,
    line: str,
    count: int,
    text: Callable[[Message, str], LegacyText] | None = None,
) -> list[dict[str, Any]]:
    """`text(msg, channel)`: the text a channel would send (with the enterprise's short links,
    compose.Composer.text); plain `degrade` without it."""
    text = text or (lambda m, ch: degrade(m, ch))  # type: ignore[arg-type]
    store = meter.store
    packages, _ = await applicable(store, enterprise, line, time.time())
    docs = {d["id"]: d for d in await store.list("package", enterprise)}
    balances = {b["id"]: b for b in await meter.balances(enterprise)}
    free = sum(balances[p.id]["remaining"] for p in packages if p.id in balances)
    out: list[dict[str, Any]] = []
    for ch in CHANNELS:
        try:
            segs = len(text(msg, ch).segments) if ch not in ("rcs", "cardsms") else 1
        except RenderError as exc:
            out.append({"channel": ch, "error": str(exc)[:200]})
            continue
        first = docs.get(packages[0].id) if packages else None
        units = units_for(first, ch, segs) * count
        covered = min(units, free)
        over = units - covered
        over_p = next((p for p in packages if p.policy == "overage"), None)
        unit_price = packages[0].unit_price if packages else 0.0
        out.append(
            {
                "channel": ch,
                "segments": segs,
                "units": units,
                "covered_by_packages": covered,
                "beyond_packages": over,
                "sendable": over == 0 or over_p is not None,
                "has_package": bool(packages),  # not sendable for want of any package, not a spent one
                "cost": round(covered * unit_price + (over * over_p.overage_price if over_p else 0), 4),
            }
        )
    return out
