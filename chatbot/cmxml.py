"""China Mobile (OMA NetAPI style) XML callbacks → InboundEvent / status reports.

Parsed with defusedxml: no DTDs, no entity expansion, no external references (a billion-laughs
or XXE body is refused as malformed). Element names are matched by local name, so the
`urn:oma:xml:rest:netapi:messaging:1` namespace prefix may be anything (or absent). Problems
name the element path, e.g. `/inboundMessageNotification/inboundMessage/messageId`.

Real traffic carried `bodyText` as base64 even for text, with `contentEncoding` saying so: it
is decoded then. Taps may carry an extra `"type": "reply"` key, which is ignored. The reply
goes out through the send API of the chatbot's MaaP account (China Mobile XML for a `cm` one:
cmxml_out.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from infra import jsonio

from .events import FILE_TRANSFER, SUGGESTION_RESPONSE, BadEvent, InboundEvent, StatusReport, _tap, _text_kind

MAX_XML_BYTES = 256 * 1024
STATUS = {
    "MessageSent": "sent",
    "DeliveredToTerminal": "delivered",
    "DeliveryImpossible": "failed",
    "DeliveredToNetwork": "deliveredToNetwork",
    "MessageDisplayed": "displayed",
    # revoke results (MessageStatusNotification); spellings vary between sources
    "Revoked": "revokeOk",
    "RevokeOk": "revokeOk",
    "RevokeSuccess": "revokeOk",
    "RevokeFailed": "revokeFail",
    "RevokeFail": "revokeFail",
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].split(":")[-1]


def _bad(path: str, message: str) -> BadEvent:
    return BadEvent(message, [{"path": path, "message": message}])


def parse(raw: bytes) -> Element:
    if len(raw) > MAX_XML_BYTES:
        raise _bad("/", f"XML body larger than {MAX_XML_BYTES} bytes")
    try:
        return fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise _bad("/", f"refused XML construct: {type(exc).__name__}") from None
    except ParseError as exc:
        raise _bad("/", f"malformed XML: {exc}") from None


def _child(el: Element, name: str) -> Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: Element, name: str, path: str, required: bool = True) -> str:
    c = _child(el, name)
    if c is None or not (c.text or "").strip():
        if required:
            raise _bad(f"{path}/{name}", f"{name} is required")
        return ""
    return (c.text or "").strip()


def inbound(raw: bytes, chatbot: str) -> InboundEvent:
    root = parse(raw)
    path = f"/{_local(root.tag)}"
    if _local(root.tag) != "inboundMessageNotification":
        raise _bad(path, "root element must be inboundMessageNotification")
    msg = _child(root, "inboundMessage")
    if msg is None:
        raise _bad(f"{path}/inboundMessage", "inboundMessage is required")
    path += "/inboundMessage"
    ctype = _text(msg, "contentType", path, required=False).split(";")[0].strip().lower() or "text/plain"
    body = _text(msg, "bodyText", path, required=False)
    if _text(msg, "contentEncoding", path, required=False).lower() == "base64":
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _bad(
                f"{path}/bodyText", "contentEncoding is base64 but bodyText is not base64 UTF-8"
            ) from None
    dest = _text(msg, "destinationAddress", path, required=False) or chatbot
    common: dict[str, Any] = {
        "dialect": "csp",
        "message_id": _text(msg, "messageId", path),
        "user": _text(msg, "senderAddress", path),
        "chatbot": dest,
        "conversation_id": _text(msg, "conversationID", path, required=False),
        "contribution_id": _text(msg, "contributionID", path, required=False),
        "raw_type": ctype,
    }
    if ctype == SUGGESTION_RESPONSE:
        try:
            tap = jsonio.loads(body)
        except jsonio.JSONDecodeError:
            raise _bad(f"{path}/bodyText", "bodyText must be JSON for a suggestion response") from None
        data, shown = _tap(tap, f"{path}/bodyText")
        return InboundEvent(kind="postback", postback=data, display_text=shown, text=shown, **common)
    if ctype == FILE_TRANSFER:
        return InboundEvent(kind="file", files=({"raw": body},), **common)
    kind, lat, lon = _text_kind(body)
    return InboundEvent(kind=kind, text=body, latitude=lat, longitude=lon, **common)


def delivery(raw: bytes) -> list[StatusReport]:
    root = parse(raw)
    path = f"/{_local(root.tag)}"
    if _local(root.tag) not in ("deliveryInfoNotification", "messageStatusNotification"):
        raise _bad(path, "root element must be deliveryInfoNotification or messageStatusNotification")
    reports = []
    for i, info in enumerate(c for c in root if _local(c.tag) in ("deliveryInfo", "messageStatus")):
        p = f"{path}/{_local(info.tag)}[{i}]"
        status = _text(info, "deliveryStatus", p, required=False) or _text(info, "status", p)
        mid = _text(info, "messageId", p, required=False) or _text(root, "messageId", path)
        reports.append(
            StatusReport(mid, STATUS.get(status, status), _text(info, "description", p, required=False))
        )
    if not reports:
        raise _bad(f"{path}/deliveryInfo", "at least one deliveryInfo is required")
    return reports
