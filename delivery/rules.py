"""The rules people expect: opt-out replies, frequency caps, quiet hours for advertising and
marketing cards.

- Opt-out: a reply of TD / T / 退订 (any width, any case, with stray punctuation) on any channel
  blocks that enterprise for that number on every channel, at once (the chain checks it
  before each attempt) and durably (stored before the reply is acknowledged).
- Frequency cap: per enterprise + person + call phase, e.g. one hang-up card per 24 h.
- Quiet hours: advertising cards (an advertising line's rotation) and marketing cards (营销) are
  not sent between `start` and `end` (local time, UTC+8 by default); notification and identity
  cards are: a bank calling at 22:00 must still be recognisable.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

_STRIP = " \t\r\n\u3000。.!！?？,，、;；~～\"'“”‘’「」()（）[]【】"
OPT_OUT = frozenset({"TD", "T", "退订", "退定", "QXDY", "取消订阅", "回TD", "回T"})


def is_opt_out(text: str) -> bool:
    s = unicodedata.normalize("NFKC", text).strip(_STRIP).upper().replace(" ", "")
    return s in OPT_OUT


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def quiet_reason(kind: str | None, card_class: str | None) -> str:
    """Why quiet hours hold a card back ("" : they do not)."""
    if kind == "ad":
        return "quiet hours for advertising cards"
    if card_class == "marketing":
        return "quiet hours for marketing cards"
    return ""


def in_quiet_hours(policy: dict[str, Any], now: float) -> bool:
    q = policy.get("quiet_hours")
    if not q:
        return False
    local = datetime.fromtimestamp(now, UTC) + timedelta(hours=float(q.get("utc_offset", 8)))
    t = local.hour * 60 + local.minute
    start, end = _minutes(q["start"]), _minutes(q["end"])
    if start == end:
        return False
    return start <= t < end if start < end else (t >= start or t < end)  # e.g. 21:00–08:00


def cap_of(policy: dict[str, Any], phase: str) -> tuple[int, float] | None:
    cap = (policy.get("caps") or {}).get(phase)
    return (int(cap["max"]), float(cap["window"])) if cap else None
