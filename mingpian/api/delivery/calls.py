"""Call events in (`POST /api/calls`), what became of them, and replies from other channels."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from delivery.intake import call_key

from ...errors import ApiError
from ...httpjson import json_response
from . import validation
from .access import principal
from .ops import OK, WRITE_ERRORS, obj, op
from .state import delivery_key


async def post_call(request: web.Request) -> web.Response:
    p = await principal(request)
    body = await validation.body(request, "call")
    validation.number(body["caller"], "$.caller")
    validation.number(body["callee"], "$.callee")
    # UnknownLine and InProgress are answered through the domain-error table (mingpian/errors.py)
    status, out = await request.app[delivery_key].intake.accept(body, p.enterprise)
    return json_response(out, status=status)


async def get_call(request: web.Request) -> web.Response:
    p = await principal(request)
    store = request.app[delivery_key].store
    call_id = request.match_info["call_id"]
    ds = [d for d in await store.deliveries_of_call(call_id) if p.may_see(d.enterprise)]
    if p.enterprise is not None:  # and the events it posted itself, in its own space of call ids
        ds += await store.deliveries_of_call(call_key(call_id, p.enterprise))
    if not ds:
        raise ApiError(404, "not_found", f"no call {request.match_info['call_id']!r}")
    return json_response(
        {
            "call_id": request.match_info["call_id"],
            "deliveries": [
                {**d.to_json(), "attempts": [a.to_json() for a in await store.attempts(d.id)]} for d in ds
            ],
        }
    )


async def post_reply(request: web.Request) -> web.Response:
    """A reply received on another channel (the chatbot's 5G messages, a Kannel MO): opt-outs
    are honoured on every channel at once."""
    p = await principal(request)
    body = await validation.body(request, "reply")
    to = validation.number(body["to"], "$.to")
    validation.number(body["from"], "$.from")
    service = request.app[delivery_key]
    hit = await service.store.find("line", to)
    if hit is None or not p.may_see(hit[0]):
        raise ApiError(
            404,
            "unknown_line",
            f"{to} is not a line" + ("" if p.operator else " of this enterprise"),
            path="$.to",
        )
    opted = await service.replies.on_reply(
        body["from"], to, body["text"], body.get("channel", "rcs"), body.get("postback", "")
    )
    await service.store.durable()
    return json_response({"opt_out": opted})


def setup(app: web.Application) -> dict[str, Any]:
    app.router.add_post("/api/calls", post_call)
    app.router.add_get("/api/calls/{call_id}", get_call)
    app.router.add_post("/api/replies", post_reply)
    return {
        "/api/calls": {
            "post": op(
                "A call event; idempotent per call_id + phase; delivery runs in the background",
                {"202": obj("accepted"), "200": obj("duplicate: already accepted")},
                404,
                409,
                *WRITE_ERRORS,
                body="DeliveryCall",
            )
        },
        "/api/calls/{call_id}": {
            "get": op("Deliveries and attempts of a call", {"200": OK}, 404, params=("call_id",))
        },
        "/api/replies": {
            "post": op(
                "A reply received on another channel (opt-out words honoured)",
                {"200": OK},
                404,
                *WRITE_ERRORS,
                body="DeliveryReply",
            )
        },
    }
