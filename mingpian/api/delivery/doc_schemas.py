"""The delivery schemas as the OpenAPI document states them: the JSON Schemas the server
validates with (delivery/model.py), plus what it checks beyond them, so that a client built
from the document sends what the server accepts.

The server is more lenient on numbers than the document says (it also takes spellings with
spaces, dashes and parentheses, and stores E.164); the document gives the canonical forms.
Template names are the templates that load now (a hook fills them in when the document is
built); a card's data must then fit that template's data schema.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from delivery.model import SCHEMAS
from renderer import RenderError

from ...keys import templates_key
from .ops import EXPOSED_SCHEMAS

# What normalize_number accepts, in the forms it stores: E.164 (+ and 7 to 15 digits), a Chinese
# mobile number (11 digits from 1) and service short codes (3 to 6 digits, not starting 00,
# which dials abroad: `000` is an international prefix with no number after it).
NUMBER = {
    "type": "string",
    "pattern": r"^(\+[0-9]{7,15}|1[0-9]{10}|0[1-9][0-9]{1,4}|[1-9][0-9]{2,5})$",
    "description": "a phone number: E.164 (+8613800138000), an 11-digit Chinese mobile number or a "
    "3-6 digit service code (95555); stored as E.164",
}
ID_NOTE = "; cannot change: a PUT must carry the id of its path"
LINE_NOTE = "a line of this enterprise (unknown numbers and other enterprises' answer alike)"


def documented() -> dict[str, Any]:
    """Component name → the schema the document shows."""
    out = {ref: copy.deepcopy(SCHEMAS[kind]) for kind, ref in EXPOSED_SCHEMAS.items()}
    props = {ref: schema["properties"] for ref, schema in out.items()}
    for ref in ("DeliveryEnterprise", "DeliveryStaff", "DeliveryCard", "DeliveryPackage"):
        props[ref]["id"]["description"] = "identifier" + ID_NOTE
    props["DeliveryLine"]["number"] = {**NUMBER, "description": NUMBER["description"] + ID_NOTE}
    props["DeliveryCard"]["line"] = {**NUMBER, "description": LINE_NOTE}
    props["DeliveryPackage"]["lines"]["items"] = {**NUMBER, "description": LINE_NOTE}
    props["DeliveryEstimate"]["line"] = {**NUMBER, "description": LINE_NOTE}
    props["DeliveryCall"]["caller"] = {**NUMBER, "description": "the calling number"}
    props["DeliveryCall"]["callee"] = {**NUMBER, "description": "the called number"}
    props["DeliveryReply"]["from"] = {**NUMBER, "description": "who replied"}
    props["DeliveryReply"]["to"] = {**NUMBER, "description": LINE_NOTE}
    out["DeliveryCall"]["description"] = "one of caller and callee must be a line of the enterprise"
    out["DeliveryPackage"]["description"] = "valid_to must be after valid_from"
    props["DeliveryPackage"]["valid_to"]["description"] = "Unix time, after valid_from"
    props["DeliveryLine"]["staff"]["description"] = "id of a staff member of this enterprise"
    props["DeliveryCard"]["data"]["description"] = (
        "must fit the template's dataSchema (GET /api/templates/{name}); required fields that "
        "call_fields or the line's staff member fill in may be left out"
    )
    props["DeliveryEnterprise"]["chatbot"]["description"] = (
        "MaaP chatbot address for rcs; belongs to one enterprise"
    )
    out["DeliveryEnterprise"]["description"] = (
        "once the enterprise has verified lines, name, signature, brand_name, color, logo and "
        "chatbot change only by the operator or through a brand change request"
    )
    return out


def complete(app: web.Application, doc: dict[str, Any]) -> None:
    """Template names that load now, as the enum of the fields that name a template."""
    store = app[templates_key]
    names = []
    for name in store.names():
        try:
            store.get(name)
        except RenderError:  # a broken template is refused by the server too
            continue
        names.append(name)
    schemas = doc["components"]["schemas"]
    for ref in ("DeliveryCard", "DeliveryEstimate"):
        if ref in schemas:
            schemas[ref]["properties"]["template"] = {
                "enum": names,
                "description": "a card template that loads (GET /api/templates)",
            }
