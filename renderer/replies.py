"""A legacy user's reply, parsed: "1", "回复２", "①", "一" or "TD" on a feature phone → the menu key
of the degraded card's numbered lines, and through the card's reply map its button's postback.
The same parser serves the chatbot (a numbered reply is a tap) and delivery (opt-outs, taps)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

OPT_OUT_KEY = "T"  # the 回T退订 convention for marketing messages

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
_REPLY_RE = re.compile(  # after NFKC: full-width digits and colons are ASCII already
    r"^(?:回复|回覆|回|复|reply)?[\s:#\-]*([0-9]{1,3}|[零〇一二两三四五六七八九十]{1,3}|td|t)$"
)
_REPLY_PUNCT = " \t\r\n\u3000。.!！?？,，、;；~～\"'“”‘’「」()（）[]【】"


def _cn_number(s: str) -> int | None:
    if len(s) == 1:
        return _CN_DIGITS[s]
    if s[0] == "十" and len(s) == 2:  # 十一..十九
        return 10 + _CN_DIGITS[s[1]]
    if len(s) == 2 and s[1] == "十":  # 二十..九十
        return _CN_DIGITS[s[0]] * 10
    if len(s) == 3 and s[1] == "十":  # 二十一..
        return _CN_DIGITS[s[0]] * 10 + _CN_DIGITS[s[2]]
    return None


def parse_reply(text: str) -> str | None:
    """A legacy user's reply → its menu key ("1", "12", "T"), or None if it is not a menu choice.

    Accepts "1", "１" (full-width), " 1 ", "01", "回复1", "回1", "回复：1", "①", "一", "T"/"TD"."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    s = unicodedata.normalize("NFKC", text).strip(_REPLY_PUNCT).lower()
    m = _REPLY_RE.match(s)
    if m is None:
        return None
    token = m.group(1)
    if token in ("t", "td"):
        return OPT_OUT_KEY
    if token.isdigit():
        n: int | None = int(token)
    else:
        n = _cn_number(token)
    if n is None or n <= 0:
        return None
    return str(n)


def resolve_reply(reply_map: Mapping[str, str], text: str) -> str | None:
    """The postback a legacy reply selects, or None."""
    key = parse_reply(text)
    return None if key is None else reply_map.get(key)
