"""The chatbot's own information on its platform (description, persistent menu, contact
details): what an operator submits, what the carrier must pass before it is used, and the record
kept per (platform account, chatbot).

CT/CU take the optional information at `POST {url}/bot/v1/{chatbotId}/update/chatBotInfo/
optionals` and the persistent menu at `…/update/chatBotInfo/menu` (answer `{errorCode,
errorMessage}`), and every update is used only once the carrier passed it: the decision arrives
as a `/check` of type `chatbotInformation` naming the chatbot (approval.py). The record:

  {"current": {"information": {…}, "approvedAt": t} | absent,        what is in use
   "pending": {"id", "information": {…}, "parts": n, "passes": k,
               "state": "waiting" | "refused", "since": t,
               "decidedAt"?: t, "description"?: "…"} | absent}        what the carrier reviews

A decision names the chatbot, not the request, so an update of both the optionals and the menu
(two requests, two decisions) is in use once two passes arrived, and refused by the first fail.
A decision while nothing waits (a repeat, or an update submitted elsewhere) changes nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from jsonschema import Draft202012Validator

from renderer.jsonpath import json_path

# Our names for the interface's optional fields (the interface's own where they are plain).
OPTIONALS = {
    "description": "serviceDescription",
    "callBackNumber": "callBackNumber",
    "provider": "provider",
    "themeColour": "themeColour",
    "serviceWebsite": "serviceWebsite",
    "emailAddress": "emailAddress",
    "address": "address",
    "autograph": "autograph",
}
PARTS = ("optionals", "menu")
MAX_PROBLEMS = 20

_TEXT = {"type": "string", "minLength": 1, "maxLength": 25}
_POSTBACK = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "minLength": 1, "maxLength": 2048}},
    "additionalProperties": False,
}
_REPLY = {
    "type": "object",
    "required": ["reply"],
    "properties": {
        "reply": {
            "type": "object",
            "required": ["displayText", "postback"],
            "properties": {"displayText": _TEXT, "postback": _POSTBACK},
            "additionalProperties": False,
        }
    },
    "additionalProperties": False,
}
_ACTION = {
    "type": "object",
    "required": ["action"],
    "properties": {
        "action": {
            "type": "object",
            "required": ["displayText", "postback"],
            "properties": {"displayText": _TEXT, "postback": _POSTBACK},
            "minProperties": 3,  # and one of the suggested actions (dialerAction, urlAction, …)
        }
    },
    "additionalProperties": False,
}
_SUBMENU = {
    "type": "object",
    "required": ["menu"],
    "properties": {
        "menu": {
            "type": "object",
            "required": ["displayText", "entries"],
            "properties": {
                "displayText": _TEXT,
                "entries": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 5,
                    "items": {"oneOf": [_REPLY, _ACTION]},
                },
            },
            "additionalProperties": False,
        }
    },
    "additionalProperties": False,
}
MENU_SCHEMA = {
    "type": "object",
    "required": ["entries"],
    "description": "the persistent menu: up to 3 entries, each a reply, an action or a submenu of up to 5",
    "properties": {
        "entries": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {"oneOf": [_REPLY, _ACTION, _SUBMENU]},
        }
    },
    "additionalProperties": False,
}
# What an operator submits: any of the optional fields and the menu, at least one of them.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "properties": {
        "description": {"type": "string", "minLength": 1, "maxLength": 500},
        "callBackNumber": {"type": "string", "pattern": r"^\+?[0-9-]{3,21}$"},
        "provider": {"type": "string", "maxLength": 100},
        "themeColour": {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"},
        "serviceWebsite": {"type": "string", "pattern": "^https?://", "maxLength": 150},
        "emailAddress": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$", "maxLength": 50},
        "address": {"type": "string", "maxLength": 200},
        "autograph": {"type": "string", "maxLength": 50},
        "menu": MENU_SCHEMA,
    },
    "additionalProperties": False,
}
_VALIDATOR = Draft202012Validator(SCHEMA)


def problems(data: Any) -> list[dict[str, str]]:
    """Every way `data` fails the schema, each with its JSON path (none: valid)."""
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    return [{"path": json_path(e.absolute_path), "message": e.message[:300]} for e in errors[:MAX_PROBLEMS]]


def requests(info: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The update requests `info` makes: (part, body) for the optionals and the menu it has."""
    optionals = {OPTIONALS[k]: v for k, v in info.items() if k in OPTIONALS}
    out: list[tuple[str, dict[str, Any]]] = []
    if optionals:
        out.append(("optionals", optionals))
    if "menu" in info:
        out.append(("menu", {"menu": info["menu"]}))
    return out


def claim(record: dict[str, Any] | None, info: dict[str, Any], now: float) -> dict[str, Any] | None:
    """`record` with `info` waiting for the carrier; None while another update still waits."""
    record = dict(record or {})
    pending = record.get("pending")
    if isinstance(pending, dict) and pending.get("state") == "waiting":
        return None
    record["pending"] = {
        "id": secrets.token_hex(8),
        "information": info,
        "parts": len(requests(info)),
        "passes": 0,
        "state": "waiting",
        "since": now,
    }
    return record


def withdraw(
    record: dict[str, Any] | None, pending_id: str, before: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The record as it was before a claim the platform did not take (None: nothing to write)."""
    if record is None or (record.get("pending") or {}).get("id") != pending_id:
        return None
    out = dict(record)
    previous = (before or {}).get("pending")
    if previous is None:
        out.pop("pending", None)
    else:
        out["pending"] = previous
    return out


def waiting_since(record: dict[str, Any] | None) -> float | None:
    pending = (record or {}).get("pending")
    return (
        float(pending["since"]) if isinstance(pending, dict) and pending.get("state") == "waiting" else None
    )


def apply(record: dict[str, Any] | None, passed: bool, at: float, description: str) -> dict[str, Any] | None:
    """`record` with the carrier's decision applied; None when it changes nothing (nothing waits:
    a repeat, or a decision about an update we did not submit)."""
    if record is None or waiting_since(record) is None:
        return None
    pending = dict(record["pending"])
    out = dict(record)
    if not passed:
        out["pending"] = {
            **pending, "state": "refused", "decidedAt": at, "description": description or "未通过审核"
        }  # fmt: skip
        return out
    pending["passes"] = int(pending.get("passes", 0)) + 1
    if pending["passes"] < int(pending.get("parts", 1)):
        out["pending"] = pending
        return out
    current = dict((record.get("current") or {}).get("information") or {})
    current.update(pending["information"])  # an update changes what it names, keeps the rest
    out["current"] = {"information": current, "approvedAt": at}
    out.pop("pending", None)
    return out


def view(record: dict[str, Any] | None) -> dict[str, Any]:
    """What the API shows: the information in use and the update the carrier has (or refused)."""
    record = record or {}
    pending = record.get("pending")
    shown = None
    if isinstance(pending, dict):
        shown = {k: v for k, v in pending.items() if k not in ("parts", "passes")}
    return {"current": record.get("current"), "pending": shown}
