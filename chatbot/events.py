"""Inbound webhook bodies (CT/CU CSP JSON, GSMA MaaP JSON) → one `InboundEvent`.

Validation is schema-first (chatbot/schemas/*.json, compiled with jsonschema-rs): a body that
does not match gets `BadEvent` listing every problem with its JSON path, which the server turns
into a 400. Normalisation is lenient where real platforms vary (`dataTime` for `dateTime`, a
list for `destinationAddress`, base64 `contentText`, the tap under `reply` or `action`, a JSON
string or an object as the tap's `contentText`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema_rs

from infra import jsonio
from renderer.jsonpath import json_path

from .errors import BadEvent

EventKind = Literal["text", "postback", "location", "file", "status", "other"]

TEXT = "text/plain"
SUGGESTION_RESPONSE = "application/vnd.gsma.botsuggestion.response.v1.0+json"
FILE_TRANSFER = "application/vnd.gsma.rcs-ft-http"
SHARED_CLIENT_DATA = "application/vnd.gsma.botsharedclientdata.v1.0+json"
_GEO = re.compile(r"^geo:\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: str
    status: str
    error: str = ""
    code: str = ""  # the platform's errorCode as sent ("" : none)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """What a flow reacts to, whatever the dialect. `message_id` is the platform's dedupe key."""

    dialect: Literal["csp", "gsma"]
    message_id: str
    user: str
    chatbot: str
    kind: EventKind
    text: str = ""
    postback: str = ""
    display_text: str = ""
    latitude: float | None = None
    longitude: float | None = None
    files: tuple[dict[str, Any], ...] = ()
    conversation_id: str = ""
    contribution_id: str = ""
    statuses: tuple[StatusReport, ...] = ()
    raw_type: str = ""
    numbered: str = field(default="", compare=False)  # the legacy reply key that became the postback

    def for_flow(self) -> dict[str, Any]:
        """The event as flow expressions see it (`event.text`, `event.postback`, ...)."""
        return {
            "kind": self.kind,
            "text": self.text,
            "postback": self.postback,
            "displayText": self.display_text,
            "user": self.user,
            "chatbot": self.chatbot,
            "messageId": self.message_id,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "files": list(self.files),
            "numbered": self.numbered,
        }


@cache
def validator(name: str) -> jsonschema_rs.Validator:
    text = resources.files("chatbot.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return jsonschema_rs.Draft202012Validator(json.loads(text), validate_formats=True, offline=True)


def schema_text(name: str) -> dict[str, Any]:
    return json.loads(resources.files("chatbot.schemas").joinpath(f"{name}.schema.json").read_text("utf-8"))


def check(name: str, body: Any) -> None:
    v = validator(name)
    if v.is_valid(body):
        return
    problems = []
    for err in v.iter_errors(body):
        path = list(err.instance_path)
        prop = getattr(err.kind, "property", None) if type(err.kind).__name__ == "Required" else None
        if isinstance(prop, str):
            path.append(prop)
        problems.append({"path": json_path(path), "message": err.message[:240]})
        if len(problems) >= 20:
            break
    problems.sort(key=lambda p: p["path"])
    raise BadEvent(f"body is not a valid {name} event ({len(problems)} problem(s))", problems)


def _bad(path: str, message: str) -> BadEvent:
    return BadEvent(message, [{"path": path, "message": message}])


def _decode(item: dict[str, Any], path: str) -> Any:
    text = item["contentText"]
    if isinstance(text, str) and item.get("contentEncoding") == "base64":
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _bad(
                f"{path}.contentText",
                "contentEncoding is base64 but contentText is not valid base64 of UTF-8 text",
            ) from None
    return text


def _json_part(text: Any, path: str) -> Any:
    if isinstance(text, str):
        try:
            return jsonio.loads(text)
        except jsonio.JSONDecodeError:
            raise _bad(f"{path}.contentText", "contentText must be JSON for this contentType") from None
    return text


def _tap(resp: Any, path: str) -> tuple[str, str]:
    """(postback data, display text) of a suggestion response, or BadEvent."""
    if isinstance(resp, dict) and "response" in resp:
        resp = resp["response"]
        path += ".response"
    if not isinstance(resp, dict):
        raise _bad(path, "suggestion response must be an object")
    for key in ("reply", "action"):
        tap = resp.get(key)
        if isinstance(tap, dict):
            pb = tap.get("postback")
            data = pb.get("data") if isinstance(pb, dict) else None
            if not isinstance(data, str):
                raise _bad(f"{path}.{key}.postback.data", "postback data must be a string")
            shown = tap.get("displayText", "")
            return data, shown if isinstance(shown, str) else ""
    raise _bad(path, "suggestion response has neither reply nor action")


def _text_kind(text: str) -> tuple[EventKind, float | None, float | None]:
    m = _GEO.match(text)
    if m:
        return "location", float(m.group(1)), float(m.group(2))
    return "text", None, None


def from_csp_message(body: Any, chatbot: str) -> InboundEvent:
    check("csp-message", body)
    dest = body.get("destinationAddress", chatbot)
    if isinstance(dest, list):
        dest = dest[0] if dest else chatbot
    common: dict[str, Any] = {
        "dialect": "csp",
        "message_id": body["messageId"],
        "user": body["senderAddress"],
        "chatbot": dest or chatbot,
        "conversation_id": body.get("conversationId", ""),
        "contribution_id": body.get("contributionId", ""),
    }
    fallback: InboundEvent | None = None
    for i, item in enumerate(body["messageList"]):
        path = f"$.messageList[{i}]"
        ctype = item["contentType"].split(";")[0].strip().lower()
        if ctype == SUGGESTION_RESPONSE:
            data, shown = _tap(_json_part(_decode(item, path), path), f"{path}.contentText")
            return InboundEvent(
                kind="postback", postback=data, display_text=shown, text=shown, raw_type=ctype, **common
            )
        if ctype == FILE_TRANSFER:
            files = _json_part(_decode(item, path), path)
            if isinstance(files, dict):
                files = [files]
            if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
                raise _bad(f"{path}.contentText", "file transfer info must be a list of objects")
            return InboundEvent(kind="file", files=tuple(files), raw_type=ctype, **common)
        if ctype == TEXT and fallback is None:
            text = _decode(item, path)
            if not isinstance(text, str):
                raise _bad(f"{path}.contentText", "text/plain contentText must be a string")
            kind, lat, lon = _text_kind(text)
            fallback = InboundEvent(
                kind=kind, text=text, latitude=lat, longitude=lon, raw_type=ctype, **common
            )
    if fallback is not None:
        return fallback
    return InboundEvent(kind="other", raw_type=body["messageList"][0]["contentType"], **common)


def from_csp_status(body: Any) -> list[StatusReport]:
    check("csp-status", body)
    return [
        StatusReport(
            d["messageId"],
            d["status"],
            str(d.get("errorMessage") or d.get("errorCode") or ""),
            str(d.get("errorCode") if d.get("errorCode") is not None else ""),
        )
        for d in body["deliveryInfoList"]
    ]


_GSMA_STATUS = {
    "delivered": "delivered",
    "displayed": "displayed",
    "failed": "failed",
    "sent": "sent",
    "cancelled": "revokeOk",  # a revoke that took
    "revoked": "revokeOk",
}


def from_gsma(body: Any, chatbot: str) -> InboundEvent:
    check("gsma-event", body)
    msg = body["RCSMessage"]
    contact = body["messageContact"]
    common: dict[str, Any] = {
        "dialect": "gsma",
        "message_id": msg["msgId"],
        "user": contact["userContact"],
        "chatbot": chatbot,
        "conversation_id": contact.get("chatId", ""),
        "contribution_id": msg["msgId"],
        "raw_type": body["event"],
    }
    event = body["event"]
    if event in ("messageStatus", "fileStatus"):
        status = str(msg.get("status", "")).lower()
        return InboundEvent(
            kind="status", statuses=(StatusReport(msg["msgId"], _GSMA_STATUS.get(status, status)),), **common
        )
    if "suggestedResponse" in msg:
        data, shown = _tap(msg["suggestedResponse"], "$.RCSMessage.suggestedResponse")
        return InboundEvent(kind="postback", postback=data, display_text=shown, text=shown, **common)
    if "geolocationPushMessage" in msg:
        m = _GEO.match("geo:" + msg["geolocationPushMessage"]["pos"].replace(" ", ","))
        if not m:
            raise _bad("$.RCSMessage.geolocationPushMessage.pos", "pos must be 'latitude longitude'")
        return InboundEvent(
            kind="location", latitude=float(m.group(1)), longitude=float(m.group(2)), **common
        )
    if "fileMessage" in msg:
        return InboundEvent(kind="file", files=(msg["fileMessage"],), **common)
    if "textMessage" in msg:
        kind, lat, lon = _text_kind(msg["textMessage"])
        return InboundEvent(kind=kind, text=msg["textMessage"], latitude=lat, longitude=lon, **common)
    return InboundEvent(kind="other", **common)
