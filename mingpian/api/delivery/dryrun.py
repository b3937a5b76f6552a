"""`POST …/{eid}/dry-run`: what a call between a line and a number would send, channel by
channel, with nothing sent, charged or recorded (delivery/dryrun.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from delivery.dryrun import dry_run
from delivery.model import PHASES

from ...errors import ApiError
from ...httpjson import json_response, read_json_body
from ...keys import settings_key
from . import validation
from .access import enterprise, principal
from .ops import EID, OK, WRITE_ERRORS, op
from .state import delivery_key

SCHEMA = {
    "type": "object",
    "required": ["line", "to", "phase"],
    "additionalProperties": False,
    "properties": {
        "line": {"type": "string", "maxLength": 32, "description": "one of the enterprise's lines"},
        "to": {"type": "string", "maxLength": 32, "description": "the other party's number"},
        "phase": {"enum": list(PHASES)},
    },
}


async def post_dry_run(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    body = await read_json_body(request, request.app[settings_key].max_json_depth)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "a JSON object is expected", path="$")
    for name in ("line", "to", "phase"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(422, "invalid", f"{name} is required", path=f"$.{name}")
    if body["phase"] not in PHASES:
        raise ApiError(422, "invalid", f"phase is one of {', '.join(PHASES)}", path="$.phase")
    number = validation.number(body["line"], "$.line")
    to = validation.number(body["to"], "$.to")
    service = request.app[delivery_key]
    line = await service.store.get("line", ent["id"], number)
    if line is None:
        raise ApiError(404, "not_found", f"no line {body['line']!r}", path="$.line")
    out = await dry_run(
        service.store,
        service.composer,
        service.meter,
        set(service.channels),
        ent,
        line,
        to,
        body["phase"],
        service.approval,
        service.refusals.reason if "rcs" in service.channels else None,
        service.cardsms.explain if service.cardsms is not None else None,
    )
    return json_response(out)


def setup(app: web.Application) -> dict[str, Any]:
    path = "/api/enterprises/{eid}/dry-run"
    app.router.add_post(path, post_dry_run)
    return {
        path: {
            "post": op(
                "What a call between a line and a number would send, channel by channel (nothing is sent)",
                {"200": OK},
                404,
                *WRITE_ERRORS,
                params=EID,
                body_schema=SCHEMA,
            )
        }
    }
