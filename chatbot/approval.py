"""The carrier's review of what we host on its platform: the state a hosted record carries, the
decisions the platform calls back with, and the error a send meets when a file is not approved.

A hosted record (hosting.py) of a permanent file carries `review`:
  {"state": "waiting", "since": t}                       uploaded, no decision yet
  {"state": "approved", "at": t}                         usable until the record's `until`
  {"state": "refused", "at": t, "description": "…"}     never used; the platform deleted it
and `checks` {url: "pass" | "fail"}: a record is approved once every URL it names (the file and a
video's thumbnail) passed, refused as soon as one failed. A temporary file has no `review`: the
interface does not review temporary media. While a re-submission of an approved file waits, the
record keeps the approved copy in `previous` and sends use it until it expires.

Decisions arrive as the CT/CU `/check` callback (`type` media | chatbotInformation | message,
`result` pass | fail, `remark` naming the object) or China Mobile's audit notification (header
`tid` naming the upload, `Authstatus` 0 pass / 1 reject, `file-info[]` with the URL to use). Both
are parsed here into a `Decision`; applying one twice changes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .cmxml_out import parse_until
from .errors import BadEvent
from .events import StatusReport

log = logging.getLogger("mingpian.chatbot.approval")
CHINA = timezone(timedelta(hours=8))  # the platforms' wall-clock times are Beijing time
KINDS = ("media", "chatbotInformation", "message")
# A status report's errorCode that means the carrier refused a sent message's content (CT/CU).
CONTENT_REFUSED = {"3": "content not compliant", "6": "content not as required"}


class NotApproved(Exception):
    """A send would name something the carrier has not approved (or refused, or that expired)."""

    def __init__(self, platform: str, what: str, state: str, description: str = "") -> None:
        super().__init__(f"{platform}: {what} {state}" + (f" ({description})" if description else ""))
        self.platform = platform
        self.what = what
        self.state = state  # waiting | refused | expired | unsubmitted
        self.description = description

    @property
    def reason(self) -> str:
        """The stable English skip reason delivery records (the console translates its prefix)."""
        return f"not_approved: {self.platform}: {self.what} {self.state}"


class BadTime(BadEvent):
    """A callback's time is in neither format the interface uses."""

    def __init__(self, field: str, value: object) -> None:
        message = f"{field} must be 'YY-MM-DD HH:MM:SS' or ISO 8601, not {str(value)[:40]!r}"
        super().__init__(message, [{"path": field, "message": message}])


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str  # media | chatbotInformation | message
    passed: bool
    ref: str  # what it names: "url:<url>", "tid:<tid>", "chatbot:<id>", "message:<id>"
    at: float
    description: str = ""
    url: str = ""  # China Mobile: the URL to send from now on ("" : keep ours)
    until: float = 0.0  # its expiry when the decision says one


def parse_time(value: object, field: str = "time") -> float:
    """`YY-MM-DD HH:MM:SS` (also with a four-digit year; Beijing time) or ISO 8601; BadTime if
    neither. Absent: now."""
    if value is None or value == "":
        return time.time()
    if not isinstance(value, str):
        raise BadTime(field, value)
    text = value.strip()
    for fmt in ("%y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=CHINA).timestamp()
        except ValueError:
            pass
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadTime(field, value) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=CHINA)).timestamp()


def _ref_of(kind: str, remark: str) -> str:
    """`remark` → a ref: "url:http://…" (split at the first colon only: URLs have more),
    "chatbotId: sip:…", "messageId: …"."""
    name, _, value = remark.partition(":")
    value = value.strip()
    if kind == "media":
        return "url:" + value if name.strip().lower() == "url" else "url:" + remark.strip()
    if kind == "chatbotInformation":
        return "chatbot:" + value
    return "message:" + value


def from_csp_check(body: Any) -> Decision:
    """The CT/CU `/check` body. Lenient where real platforms were seen to differ from the text:
    an undefined `fileInfo` object and `until: "null"` are read if usable, logged, never fatal."""
    if not isinstance(body, dict):
        raise BadEvent(
            "the check notification must be a JSON object", [{"path": "$", "message": "not an object"}]
        )
    problems = []
    kind, result, remark = body.get("type"), body.get("result"), body.get("remark")
    if kind not in KINDS:
        problems.append({"path": "type", "message": f"type must be one of {', '.join(KINDS)}"})
    if result not in ("pass", "fail"):
        problems.append({"path": "result", "message": "result must be pass or fail"})
    if not isinstance(remark, str) or not remark.strip():
        problems.append({"path": "remark", "message": "remark must name the object"})
    if problems:
        raise BadEvent("not a check notification: " + problems[0]["message"], problems)
    at = parse_time(body.get("time"))
    until = 0.0
    info = body.get("fileInfo")
    if isinstance(info, dict):
        log.info("check notification carries fileInfo %s", sorted(info)[:8])
        raw_until = info.get("until", body.get("until"))
        until = parse_until(raw_until) if isinstance(raw_until, str) and raw_until != "null" else 0.0
    description = body.get("description")
    return Decision(
        str(kind), result == "pass", _ref_of(str(kind), str(remark)), at,
        description if isinstance(description, str) else "", until=until,
    )  # fmt: skip


def from_cm_audit(tid: str, status: str, body: Any) -> Decision:
    """China Mobile's audit notification: header `tid` (the upload's), `Authstatus` 0 pass /
    1 reject, body `{"file-info": [{"type", "data": {"url", "until"}, …}]}` (the URL to send)."""
    if not tid:
        raise BadEvent("the tid header is required", [{"path": "tid", "message": "missing"}])
    if status not in ("0", "1"):
        raise BadEvent("Authstatus must be 0 or 1", [{"path": "Authstatus", "message": "must be 0 or 1"}])
    url, until = "", 0.0
    items = body.get("file-info") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and item.get("type", "file") == "file" and isinstance(data.get("url"), str):
            url = data["url"]
            raw = data.get("until")
            until = parse_until(raw) if isinstance(raw, str) and raw != "null" else 0.0
    return Decision("media", status == "0", "tid:" + tid, time.time(), "", url, until)


def from_report(r: StatusReport, at: float) -> Decision | None:
    """A failed status report whose errorCode says the content was refused, as the decision a
    `/check` of type message would carry (the carrier's text, else what the code means); None for
    any other report."""
    if r.status.lower() != "failed" or r.code not in CONTENT_REFUSED:
        return None
    text = r.error if r.error and r.error != r.code else CONTENT_REFUSED[r.code]
    return Decision("message", False, "message:" + r.message_id, at, f"errorCode {r.code}: {text}")


# ---- the state of a hosted record -------------------------------------------------------------


def waiting(record: dict[str, Any], now: float) -> dict[str, Any]:
    """A freshly uploaded permanent record: waiting for every URL it names."""
    record["review"] = {"state": "waiting", "since": now}
    record["checks"] = {}
    return record


def apply(record: dict[str, Any], d: Decision) -> dict[str, Any] | None:
    """`record` with the decision applied; None when it changes nothing (a repeat, or a decision
    about a record that has no review)."""
    review = record.get("review")
    if not isinstance(review, dict):
        return None
    checks = dict(record.get("checks") or {})
    verdict = "pass" if d.passed else "fail"
    key = d.ref
    if checks.get(key) == verdict and review["state"] != "waiting":
        return None
    checks[key] = verdict
    out = {**record, "checks": checks}
    if d.url and d.passed:  # China Mobile names the URL to send
        out["url"] = d.url
        if d.until:
            out["until"] = d.until
    refs = list(record.get("refs") or [])
    if "fail" in checks.values():
        bad = review if review["state"] == "refused" else {"state": "refused", "at": d.at}
        out["review"] = {**bad, "description": d.description or bad.get("description", "")}
    elif all(checks.get(r) == "pass" for r in refs):
        out["review"] = {"state": "approved", "at": review.get("at") or d.at}
        out.pop("previous", None)
    if out == record:
        return None
    return out


def usable(record: dict[str, Any], platform: str, what: str, now: float, margin: float) -> dict[str, Any]:
    """The fields a send may use (the record, or the approved copy it keeps while a re-submission
    waits), or NotApproved."""
    review = record.get("review")
    if not isinstance(review, dict):
        return record
    until = float(record.get("until") or 0)
    state = review.get("state")
    if state == "approved" and (not until or until - now > margin):
        return record
    previous = record.get("previous")
    if isinstance(previous, dict) and float(previous.get("until") or 0) - now > margin:
        return previous
    if state == "approved":
        raise NotApproved(platform, what, "expired")
    raise NotApproved(platform, what, str(state), str(review.get("description") or ""))
