"""What to do about each answer a MaaP gives: one table for every dialect's send, upload and revoke.

The CT/CU interface answers HTTP 200 with an `errorCode` in the body; China Mobile and GSMA
answer with HTTP statuses. Both are mapped here to one of:

- `ok`: done;
- `refresh`: the access token is expired or invalid: fetch a new one and try once more;
- `retry`: a passing fault (busy, a 5xx, a timeout): try again after the usual backoff;
- `backoff`: the platform says we are too fast: try again, no sooner than it asks;
- `wait`: a daily or monthly quota is used up: nothing goes out before the quota renews
  (the next day, or the first of the next month, China time), so wait until then;
- `blocked`: the content was refused (review, sensitive words): never resent, and reported;
- `fail`: a request the platform will never accept (bad parameters): never resent.

The CT/CU digest lists 30001–30004 as quota codes without saying which is which; here 30001
and 30003 are the daily quotas (of the chatbot, of one user) and 30002 and 30004 the monthly
ones. No send-time code for refused content is documented; the status reports' failure codes
3 and 6 are content refusals, and a send reply carrying one of them is treated the same way.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Literal

Action = Literal["ok", "refresh", "retry", "backoff", "wait", "blocked", "fail"]
CHINA = 8 * 3600  # quotas renew at midnight China time (UTC+8)


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    meaning: str
    renews: Literal["", "day", "month"] = ""


CSP_CODES: dict[int, Rule] = {
    0: Rule("ok", "accepted"),
    -1: Rule("retry", "platform busy"),
    3: Rule("blocked", "content refused"),
    6: Rule("blocked", "content refused"),
    20002: Rule("fail", "bad parameters"),
    30001: Rule("wait", "daily quota of the chatbot used up", "day"),
    30002: Rule("wait", "monthly quota of the chatbot used up", "month"),
    30003: Rule("wait", "daily quota for this user used up", "day"),
    30004: Rule("wait", "monthly quota for this user used up", "month"),
    40001: Rule("refresh", "access token invalid"),
    40014: Rule("refresh", "access token invalid"),
    41001: Rule("refresh", "access token missing"),
    42001: Rule("refresh", "access token expired"),
    45001: Rule("backoff", "rate limited"),
}

# Status reports' failure codes (CT/CU deliveryInfoList errorCode).
STATUS_CODES: dict[int, str] = {
    1: "no terminal",
    2: "not a 5G-message terminal",
    3: "content refused",
    4: "offline",
    5: "rejected",
    6: "content refused",
}


def csp_rule(status: int, code: int) -> Rule:
    """The rule for a CT/CU answer: its errorCode first, then the HTTP status."""
    if status == 401:
        return Rule("refresh", "HTTP 401")
    rule = CSP_CODES.get(code)
    if rule is not None and (status == 200 or rule.action != "ok"):
        return rule
    return http_rule(status) if code == 0 else Rule("fail", f"errorCode {code}")


def http_rule(status: int) -> Rule:
    """China Mobile and GSMA: the HTTP status says it all."""
    if 200 <= status < 300:
        return Rule("ok", f"HTTP {status}")
    if status == 401:
        return Rule("refresh", "HTTP 401: credentials refused")
    if status == 429:
        return Rule("backoff", "HTTP 429: rate limited")
    if status == 451:
        return Rule("blocked", "HTTP 451: content refused")
    if status >= 500 or status == 408:
        return Rule("retry", f"HTTP {status}")
    return Rule("fail", f"HTTP {status}")


def renewal_wait(renews: str, now: float | None = None) -> float:
    """Seconds until a daily (next midnight) or monthly (the 1st) quota renews, China time."""
    now = time.time() if now is None else now
    local = time.gmtime(now + CHINA)
    midnight = now - (local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec) + 86400
    if renews == "day":
        return midnight - now
    year, month = (local.tm_year + 1, 1) if local.tm_mon == 12 else (local.tm_year, local.tm_mon + 1)
    first = calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)) - CHINA
    return max(0.0, first - now)
