"""The delivery domain: enterprises, lines, staff members, cards per call phase, packages.

Resources are stored as validated JSON documents (one JSON Schema each, below), so the API,
the YAML seed, intake and compose read one shape. Numbers are normalised to E.164 on the way
in, so "138 0013 8000", "+86 13800138000" and "8613800138000" are one line.
"""

from __future__ import annotations

import re
from typing import Any

from . import stafflimits

PHASES = ("ringing", "answered", "ended")
# cardsms: card SMS through the handset vendors (delivery/cardsms.py); in a chain only by choice
CHANNELS = ("rcs", "ussd", "flash", "sms", "cardsms")
DEFAULT_CHAIN = ["rcs", "ussd", "flash", "sms"]
OPT_OUT_WORDS = frozenset({"TD", "T", "退订", "N", "QXDY"})  # replies that unsubscribe

_PUNCT = re.compile(r"[\s\-().]")


class NumberError(ValueError):
    pass


def normalize_number(raw: str, country: str = "86") -> str:
    """E.164 (`+8613800138000`) for mobile, fixed and 400/800 numbers; service short codes
    (95xxx, 10086, 12345) and SP codes (106…) have no E.164 form and stay as dialled digits."""
    s = _PUNCT.sub("", str(raw))
    if s.startswith("00"):
        s = "+" + s[2:]
    if s.startswith("+"):
        digits = s[1:]
        if not digits.isdigit() or not 7 <= len(digits) <= 15:
            raise NumberError(f"{raw!r} is not an E.164 number")
        return "+" + digits
    if not s.isdigit():
        raise NumberError(f"{raw!r} is not a phone number")
    if country == "86":
        if s.startswith("106") and 5 <= len(s) <= 20:  # SP service codes (no mobile starts 10)
            return s
        if len(s) == 13 and s.startswith("861"):
            return "+" + s
        if len(s) == 11 and s[0] == "1":
            return "+86" + s
        if len(s) == 10 and s[:3] in ("400", "800"):
            return "+86" + s
        if s.startswith("0") and 10 <= len(s) <= 12:  # 010-12345678, 0571-88888888
            return "+86" + s[1:]
        if 3 <= len(s) <= 6:  # 95555, 10086, 12345: service short codes
            return s
        raise NumberError(f"{raw!r} is not a Chinese mobile, fixed, 400/800 or service number")
    if 7 <= len(s) <= 15:
        return "+" + country + s.lstrip("0")
    raise NumberError(f"{raw!r} is not a phone number")


def national(number: str) -> str:
    """What a Chinese SMSC expects as an address: the number without +86."""
    return number[3:] if number.startswith("+86") else number.lstrip("+")


_COLOR = {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"}
_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
_TIMEOUTS = {
    "type": "object",
    "propertyNames": {"enum": list(CHANNELS)},
    "additionalProperties": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
}
# What a verified line shows of its enterprise (compose.py: signature, brand name, or the name
# when there is none, colour) and what it sends from (chatbot, the number of its texts): changed,
# once the enterprise has verified lines, only by the operator or through a brand change request
# it approves. The sender number is held tighter still (brand.py): always the operator's to approve.
BRAND_FIELDS = ("name", "signature", "brand_name", "color", "logo", "chatbot", "sms_sender")
_HHMM = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}

# The operator's decision on what an enterprise asked for (a brand change, a card version).
DECISION: dict[str, Any] = {
    "type": "object",
    "required": ["approve"],
    "additionalProperties": False,
    "properties": {
        "approve": {"type": "boolean", "description": "true approves, false refuses"},
        "note": {
            "type": "string",
            "maxLength": 500,
            "description": "the operator's note to the enterprise (required when refusing a card version)",
        },
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "enterprise": {
        "type": "object",
        "required": ["id", "name", "signature"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "signature": {
                "type": "string",
                "minLength": 1,
                "maxLength": 20,
                "description": "sender signature without brackets, e.g. 顺丰速运",
            },
            "brand_name": {"type": "string", "maxLength": 100},
            "suspended": {
                "type": "boolean",
                "description": "set by the operator: no cards are sent and the enterprise's keys are refused",
            },
            "notification_trusted": {
                "type": "boolean",
                "description": "set by the operator: the enterprise's notification cards are approved as "
                "they are made (each version still recorded); marketing cards are always reviewed",
            },
            "color": _COLOR,
            "logo": {"type": "string", "maxLength": 1000},
            "chatbot": {"type": "string", "maxLength": 200, "description": "MaaP chatbot id for rcs"},
            "photo_hosts": {
                "type": "array",
                "maxItems": 20,
                "uniqueItems": True,
                "items": {
                    "type": "string",
                    "maxLength": 253,
                    "pattern": "^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[1-9][0-9]{0,4})?$",
                },
                "description": "HTTPS hosts the server may fetch photo URLs of this enterprise's cards "
                "from: `name` (port 443) or `name:port` (that port only)",
            },
            "sms_sender": {
                "type": "string",
                "maxLength": 20,
                "pattern": "^([0-9]{3,20}|[A-Za-z0-9 ._-]*[A-Za-z][A-Za-z0-9 ._-]*)$",
                "description": "source of USSD/flash/SMS instead of the line: a service code "
                "(106…, 95555), one of the enterprise's verified lines or an alphanumeric name of at "
                "most 11 characters; sent from only once the operator approved it",
            },
            "sms_sender_approved": {
                "type": "string",
                "maxLength": 20,
                "description": "kept by the server (what a request sends is ignored): the sender number "
                "the operator approved, or the verified line it is; `sms_sender` is sent from only "
                "while the two are equal",
            },
            "policy": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "chain": {
                        "type": "array",
                        "items": {"enum": list(CHANNELS)},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                    "timeouts": _TIMEOUTS,
                    "revoke": {
                        "type": "boolean",
                        "description": "take back a pre-call 5G card the MaaP accepted when the call is "
                        "answered or ended first (default true)",
                    },
                    "caps": {
                        "type": "object",
                        "propertyNames": {"enum": list(PHASES)},
                        "additionalProperties": {
                            "type": "object",
                            "required": ["max", "window"],
                            "additionalProperties": False,
                            "properties": {
                                "max": {"type": "integer", "minimum": 0},
                                "window": {"type": "number", "exclusiveMinimum": 0},
                            },
                        },
                    },
                    "quiet_hours": {
                        "type": "object",
                        "required": ["start", "end"],
                        "additionalProperties": False,
                        "properties": {
                            "start": _HHMM,
                            "end": _HHMM,
                            "utc_offset": {"type": "number", "minimum": -14, "maximum": 14},
                        },
                    },
                    "links": {
                        "type": "object",
                        "additionalProperties": False,
                        "description": "short links in SMS, flash and USSD texts (docs/delivery.md)",
                        "properties": {
                            "shorten": {
                                "enum": ["auto", "always", "never"],
                                "description": "auto (default): when it saves an SMS segment or keeps "
                                "more of the card on USSD/flash, or when opens are counted",
                            },
                            "count_opens": {
                                "type": "boolean",
                                "description": "count who opens the links (default false)",
                            },
                            "ttl_days": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 365,
                                "description": "days a link keeps working (default 30)",
                            },
                            "card_page": {
                                "type": "boolean",
                                "description": "SMS text carries a short link to the card's H5 page "
                                "(default: on when the chain contains cardsms)",
                            },
                        },
                    },
                },
            },
        },
    },
    "line": {
        "type": "object",
        "required": ["number"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "string", "minLength": 3, "maxLength": 32},
            "kind": {"enum": ["mobile", "hotline", "fixed", "short"]},
            "group": {"type": "string", "maxLength": 64},
            "staff": {"type": "string", "maxLength": 64},
            "label": {"type": "string", "maxLength": 100},
            "ad": {"type": "boolean", "description": "an advertising line: rotates cards by weight"},
            "evidence": {
                "type": "string",
                "maxLength": 500,
                "description": "what shows the enterprise holds the number (for the operator's check)",
            },
        },
    },
    "staff": {
        "type": "object",
        "required": ["id", "name"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "data": stafflimits.data_schema(),
        },
    },
    "card": {
        "type": "object",
        "required": ["id", "phase", "template"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "phase": {"enum": list(PHASES)},
            "template": {"type": "string", "minLength": 1, "maxLength": 100},
            "line": {"type": "string", "maxLength": 32, "description": "a line number; else group; else all"},
            "group": {"type": "string", "maxLength": 64},
            "data": {"type": "object"},
            "call_fields": {
                "type": "object",
                "additionalProperties": {"enum": ["caller", "callee", "line", "recipient", "time"]},
                "description": "template field ← call field",
            },
            "kind": {"enum": ["identity", "ad"]},
            "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
            "class": {
                "enum": ["notification", "marketing"],
                "description": "通知 (notification, the default) or 营销 (marketing): marketing cards are "
                "always reviewed by the operator and keep the enterprise's quiet hours",
            },
            "version": {
                "type": "integer",
                "description": "kept by the server (what a request sends is ignored): this version's number",
            },
            "review": {
                "type": "object",
                "description": "kept by the server (what a request sends is ignored): where the card's "
                "versions stand: which one calls get, the latest one's state and the operator's note",
            },
        },
    },
    "package": {
        "type": "object",
        "required": ["id", "units", "valid_from", "valid_to"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "kind": {"enum": ["line", "pool"]},
            "lines": {
                "type": "array",
                "items": {"type": "string", "maxLength": 32},
                "maxItems": 10000,
                "description": "numbers covered; empty = every line of the enterprise",
            },
            "units": {"type": "integer", "minimum": 0},
            "price": {"type": "number", "minimum": 0, "description": "package price (元)"},
            "valid_from": {"type": "number", "description": "Unix time"},
            "valid_to": {"type": "number", "description": "Unix time"},
            "policy": {"enum": ["stop", "overage"]},
            "overage_price": {
                "type": "number",
                "minimum": 0,
                "description": "元 per unit beyond the package",
            },
            "unit_cost": {
                "type": "object",
                "propertyNames": {"enum": list(CHANNELS)},
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
                "description": "units per delivered message (SMS: per segment)",
            },
        },
    },
    "call": {
        "type": "object",
        "required": ["call_id", "caller", "callee", "phase"],
        "additionalProperties": False,
        "properties": {
            "call_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "caller": {"type": "string", "minLength": 3, "maxLength": 32},
            "callee": {"type": "string", "minLength": 3, "maxLength": 32},
            "phase": {"enum": list(PHASES)},
            "time": {"type": "number", "description": "Unix time of the event (default: now)"},
        },
    },
    "brand_request": {
        "type": "object",
        "required": ["changes"],
        "additionalProperties": False,
        "properties": {
            "changes": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "description": "the brand fields to change, with their new values",
                "properties": {},  # filled below from the enterprise schema
            },
            "note": {"type": "string", "maxLength": 500, "description": "why (shown to the operator)"},
        },
    },
    "brand_decision": DECISION,
    "card_decision": DECISION,
    "verify": {
        "type": "object",
        "required": ["verified"],
        "additionalProperties": False,
        "properties": {"verified": {"type": "boolean"}, "note": {"type": "string", "maxLength": 500}},
    },
    "reply": {
        "type": "object",
        "required": ["from", "to", "text"],
        "additionalProperties": False,
        "properties": {
            "from": {"type": "string", "maxLength": 32},
            "to": {"type": "string", "maxLength": 32},
            "text": {"type": "string", "maxLength": 1000},
            "channel": {"enum": list(CHANNELS)},
            "postback": {
                "type": "string",
                "maxLength": 2048,
                "description": "a 5G button's postback (a tap)",
            },
        },
    },
    "estimate": {
        "type": "object",
        "required": ["template", "data", "count"],
        "additionalProperties": False,
        "properties": {
            "template": {"type": "string", "maxLength": 100},
            "data": {"type": "object"},
            "count": {"type": "integer", "minimum": 1, "maximum": 100_000_000},
            "line": {"type": "string", "maxLength": 32},
        },
    },
}

SCHEMAS["brand_request"]["properties"]["changes"]["properties"] = {
    f: SCHEMAS["enterprise"]["properties"][f] for f in BRAND_FIELDS
}
