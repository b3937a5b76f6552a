"""Legacy formats of the render route: `?format=ussd|flash|sms` → degraded text, segments, reply map.

The card is rendered (and validated) by api/templates.py; this module only registers the three
format handlers and documents their response as the `LegacyRender` schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from renderer.gsm import CHANNELS, Channel
from renderer.legacy import degrade_template

from ..httpjson import json_response
from ..openapi import add_paths, extended_operation
from .templates import RenderRequest, formats_key

RENDER_PATH = "/api/templates/{name}/render"

SCHEMAS: dict[str, Any] = {
    "LegacySegment": {
        "type": "object",
        "required": ["seq", "text", "units", "capacity", "udhHex", "udl", "userDataHex"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "text": {"type": "string"},
            "units": {"type": "integer", "description": "septets (GSM-7) or UTF-16 units (UCS-2)"},
            "capacity": {"type": "integer", "description": "160/153 septets, 70/67 units; USSD 182/80"},
            "udhHex": {"type": "string", "description": "`050003` ref total seq; empty when single"},
            "udl": {
                "type": "integer",
                "description": "TP-UDL: septets incl. UDH + fill bit (GSM-7), octets (UCS-2)",
            },
            "userDataHex": {
                "type": "string",
                "description": "TP-UD: UDH + packed septets (GSM-7) or UTF-16BE octets",
            },
        },
    },
    "LegacyReply": {
        "type": "object",
        "required": ["key", "kind", "text", "postback", "shown"],
        "properties": {
            "key": {"type": "string", "description": 'what the user replies: "1", "2", …'},
            "kind": {"type": "string"},
            "text": {"type": "string"},
            "postback": {"type": "string"},
            "value": {"type": ["string", "null"], "description": "URL / phone shown as plain text"},
            "shown": {"type": "boolean"},
            "line": {"type": ["string", "null"]},
        },
    },
    "LegacyRender": {
        "type": "object",
        "description": "A card degraded for a legacy phone (`format=ussd|flash|sms`); see docs/legacy.md.",
        "required": [
            "template",
            "templateVersion",
            "profile",
            "format",
            "text",
            "encoding",
            "dcs",
            "units",
            "limit",
            "segmentCount",
            "remaining",
            "segments",
            "replyMap",
            "replies",
            "dropped",
            "override",
        ],
        "properties": {
            "template": {"type": "string"},
            "templateVersion": {"type": "string"},
            "profile": {"type": "string"},
            "format": {"enum": list(CHANNELS)},
            "text": {"type": "string", "description": "the whole text as the phone shows it"},
            "encoding": {"enum": ["GSM-7", "UCS-2"]},
            "dcs": {"type": "integer", "description": "data coding scheme (flash: 0x10/0x18)"},
            "dcsHex": {"type": "string"},
            "units": {"type": "integer"},
            "limit": {"type": "integer", "description": "units allowed on this channel"},
            "segmentCount": {"type": "integer", "minimum": 1},
            "remaining": {"type": "integer", "description": "units free in the last segment"},
            "segments": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/LegacySegment"},
            },
            "replyMap": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "reply key → postback of Message.all_suggestions[key-1]",
            },
            "replies": {"type": "array", "items": {"$ref": "#/components/schemas/LegacyReply"}},
            "dropped": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "text"],
                    "properties": {"key": {"type": "string"}, "text": {"type": "string"}},
                },
            },
            "shortened": {"type": "array", "items": {"type": "string"}},
            "override": {"type": "boolean", "description": "the manifest's legacy text was used"},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
    },
}
LEGACY_REF = {"$ref": "#/components/schemas/LegacyRender"}


def _handler(channel: Channel) -> Callable[[RenderRequest], Awaitable[web.StreamResponse]]:
    async def render_legacy(rr: RenderRequest) -> web.Response:
        lt = degrade_template(rr.template, rr.message, channel, rr.profile)
        body = {
            "template": rr.template.name,
            "templateVersion": rr.template.version,
            "profile": rr.profile.name,
            "format": channel,
            **lt.to_json(),
        }
        return json_response(body)

    return render_legacy


def _document(app: web.Application) -> None:
    """Add LegacyRender to the render route's 200 JSON response (a copy: PATHS is shared)."""
    post = extended_operation(
        app,
        RENDER_PATH,
        "post",
        "`format=ussd|flash|sms` returns the card degraded for legacy phones (LegacyRender: text, "
        "segments with DCS/UDH/user-data hex, reply map); see docs/legacy.md.",
    )
    if post is None:
        return
    content = post["responses"]["200"].setdefault("content", {}).setdefault("application/json", {})
    schema = content.get("schema")
    if schema is None:
        content["schema"] = LEGACY_REF
    elif "anyOf" in schema:
        if LEGACY_REF not in schema["anyOf"]:
            schema["anyOf"].append(LEGACY_REF)
    else:
        content["schema"] = {"anyOf": [schema, LEGACY_REF]}
    add_paths(app, {RENDER_PATH: {"post": post}}, SCHEMAS)


def setup(app: web.Application) -> None:
    """Register the legacy formats; call after templates.setup and docs.setup."""
    for channel in CHANNELS:
        app[formats_key][channel] = _handler(channel)
    _document(app)
