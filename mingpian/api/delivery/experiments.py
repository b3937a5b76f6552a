"""A card's experiments over HTTP: start one (2–5 reviewed versions with weights, a goal, a
minimum sample), list them, read one with its analysis (per variant the rate and its 95%
interval, the stopping rule's verdict), change its weights (kept in its history), stop it, or
promote a variant (delivery/experiments.py). Reading the analysis promotes a clear winner when
the enterprise chose so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from delivery import experiments as ex
from infra.outage import log_failure
from renderer.jsonpath import json_path

from ...errors import ApiError
from ...httpjson import json_response, read_json_body
from ...keys import settings_key
from .access import enterprise, principal
from .ops import OK, WRITE_ERRORS, op
from .preview import render_card
from .state import delivery_key

log = logging.getLogger("mingpian.delivery")

BASE = "/api/enterprises/{eid}/cards/{id}/experiments"
ITEM = BASE + "/{x}"

_VARIANT = {
    "type": "object",
    "title": "版本",
    "required": ["name", "version"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "title": "版本名", "minLength": 1, "maxLength": ex.NAME_CHARS},
        "version": {"type": "integer", "title": "名片版本号", "minimum": 1},
        "weight": {"type": "number", "title": "权重", "minimum": 0, "default": 1},
    },
}
CREATE = {
    "type": "object",
    "title": "实验",
    "required": ["variants", "goal"],
    "additionalProperties": False,
    "properties": {
        "variants": {
            "type": "array",
            "title": "版本",
            "items": _VARIANT,
            "minItems": ex.MIN_VARIANTS,
            "maxItems": ex.MAX_VARIANTS,
        },
        "goal": {
            "type": "string",
            "title": "目标",
            "description": "tap_rate, open_rate or button:<text> (a button every variant has)",
            "pattern": "^(tap_rate|open_rate|button:.*\\S.*)$",
        },
        "min_sample": {
            "type": "integer",
            "title": "每个版本的最小样本",
            "minimum": ex.MIN_SAMPLE_FLOOR,
            "maximum": 10_000_000,
            "default": ex.DEFAULT_MIN_SAMPLE,
        },
        "auto_promote": {"type": "boolean", "title": "自动提升胜出版本", "default": False},
    },
}
WEIGHTS = {
    "type": "object",
    "title": "权重",
    "required": ["weights"],
    "additionalProperties": False,
    "properties": {
        "weights": {
            "type": "object",
            "title": "各版本的权重",
            "additionalProperties": {"type": "number", "minimum": 0},
        }
    },
}
PROMOTE = {
    "type": "object",
    "title": "提升",
    "required": ["variant"],
    "additionalProperties": False,
    "properties": {"variant": {"type": "string", "title": "版本名"}},
}
_CHECK = {id(s): Draft202012Validator(s) for s in (CREATE, WEIGHTS, PROMOTE)}


async def _body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    data = await read_json_body(request, request.app[settings_key].max_json_depth)
    errors = sorted(
        _CHECK[id(schema)].iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        problems = [{"path": json_path(e.absolute_path), "message": e.message[:300]} for e in errors[:20]]
        title = errors[0].schema.get("title") if isinstance(errors[0].schema, dict) else None
        lead = f"「{title}」有误：" if title else ""
        raise ApiError(
            422, "invalid", f"{lead}{problems[0]['path']}: {problems[0]['message']}", problems=problems
        )
    return data  # type: ignore[no-any-return]


def _invalid(err: ex.Invalid) -> ApiError:
    status, code = (409, "conflict") if err.path == "$" else (422, "invalid")
    return ApiError(status, code, f"{err.path}: {err}", path=err.path)


async def _card(request: web.Request) -> tuple[Any, dict[str, Any], str, str]:
    p = await principal(request)
    ent = await enterprise(request, p)
    store = request.app[delivery_key].store
    card = request.match_info["id"]
    if await store.get("card", ent["id"], card) is None:
        raise ApiError(404, "not_found", f"没有名片 {card!r}", path="id")
    return store, ent, card, p.name


async def _experiment(request: web.Request) -> tuple[Any, dict[str, Any], dict[str, Any], str]:
    """The experiment named in the path (its card may have been deleted since: it can still be
    read and stopped)."""
    p = await principal(request)
    ent = await enterprise(request, p)
    store, who, card = request.app[delivery_key].store, p.name, request.match_info["id"]
    doc = await ex.get(store, ent["id"], request.match_info["x"])
    if doc is None or doc.get("card") != card:
        raise ApiError(404, "not_found", f"没有实验 {request.match_info['x']!r}", path="x")
    return store, ent, doc, who


async def counts_of(request: web.Request) -> ex.CountsOf:
    """The event rollups' counts per variant (an empty count where the service keeps none)."""
    events = getattr(request.app[delivery_key], "events", None)

    async def none(*_: Any) -> ex.Counts:
        return {}

    return events.counts if events is not None else none  # type: ignore[no-any-return]


async def create(request: web.Request) -> web.Response:
    store, ent, card, who = await _card(request)
    body = await _body(request, CREATE)

    async def buttons_of(version: dict[str, Any]) -> set[str]:
        _, _, message = await render_card(request, ent, version)
        return {s.text for s in message.all_suggestions}

    try:
        async with store.tx():
            doc = await ex.create(store, ent["id"], card, body, who, buttons_of)
            await store.audit(who, ent["id"], f"card:{card}", "start experiment", {"experiment": doc["id"]})
    except ex.Invalid as err:
        raise _invalid(err) from None
    await store.durable()
    return json_response(doc, status=201)


async def list_(request: web.Request) -> web.Response:
    store, ent, card, _ = await _card(request)
    return json_response({"experiments": await ex.of_card(store, ent["id"], card)})


async def read(request: web.Request) -> web.Response:
    store, ent, doc, _ = await _experiment(request)
    doc, analysis = await ex.analysis(store, ent["id"], doc, await counts_of(request))
    return json_response({**doc, "analysis": analysis})


async def weights(request: web.Request) -> web.Response:
    store, ent, doc, who = await _experiment(request)
    body = await _body(request, WEIGHTS)
    if doc["state"] != "running":
        raise ApiError(409, "conflict", "实验已结束，不能再调整权重", path="x")
    try:
        async with store.tx():
            doc = await ex.set_weights(store, ent["id"], doc, body["weights"], who)
            await store.audit(
                who, ent["id"], f"card:{doc['card']}", "change experiment weights",
                {"experiment": doc["id"], "weights": doc["history"][-1]["weights"]},
            )  # fmt: skip
    except ex.Invalid as err:
        raise _invalid(err) from None
    await store.durable()
    return json_response(doc)


async def stop(request: web.Request) -> web.Response:
    store, ent, doc, who = await _experiment(request)
    if doc["state"] != "running":
        raise ApiError(409, "conflict", "实验已结束", path="x")
    async with store.tx():
        doc = await ex.end(store, ent["id"], doc, who)
        await store.audit(who, ent["id"], f"card:{doc['card']}", "stop experiment", {"experiment": doc["id"]})
    await store.durable()
    return json_response(doc)


async def promote(request: web.Request) -> web.Response:
    """A variant becomes the card's only version (all traffic), whatever the verdict says."""
    store, ent, doc, who = await _experiment(request)
    body = await _body(request, PROMOTE)
    if body["variant"] not in {v["name"] for v in doc["variants"]}:
        raise ApiError(422, "invalid", f"$.variant: 实验没有版本「{body['variant']}」", path="$.variant")
    if doc["state"] != "running":
        raise ApiError(409, "conflict", "实验已结束", path="x")
    async with store.tx():
        doc = await ex.end(store, ent["id"], doc, who, body["variant"])
        await store.audit(
            who, ent["id"], f"card:{doc['card']}", "promote experiment variant",
            {"experiment": doc["id"], "winner": body["variant"]},
        )  # fmt: skip
    await store.durable()
    return json_response(doc)


CHECK_EVERY = 60.0  # s between checks for winners to promote (a count query per such experiment)


async def _checks(app: web.Application) -> AsyncIterator[None]:
    """Promote clear winners now and then, not only when someone reads the analysis."""

    async def loop() -> None:
        down = False  # one log line per outage
        while True:
            await asyncio.sleep(CHECK_EVERY)
            service = app[delivery_key]
            events = getattr(service, "events", None)
            if events is None:
                continue
            try:
                await ex.check_all(service.store, events.counts)
                down = False
            except Exception as exc:  # the store away: the next round tries again
                if not down:  # an outage is the outage's one line (infra/outage.py)
                    log_failure(
                        log,
                        exc,
                        "experiments: the check for winners failed; retried every %.0f s",
                        CHECK_EVERY,
                    )
                down = True

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> dict[str, Any]:
    app.cleanup_ctx.append(_checks)
    r = app.router
    r.add_post(BASE, create)
    r.add_get(BASE, list_)
    r.add_get(ITEM, read)
    r.add_put(f"{ITEM}/weights", weights)
    r.add_post(f"{ITEM}/stop", stop)
    r.add_post(f"{ITEM}/promote", promote)
    ids, xs = ("eid", "id"), ("eid", "id", "x")
    return {
        BASE: {
            "post": op(
                "Start an experiment on a card: 2–5 approved versions with weights, a goal (tap_rate, "
                "open_rate, button:<text>), a minimum sample per variant, whether to promote the winner",
                {"201": OK}, 404, 409, *WRITE_ERRORS, params=ids, body_schema=CREATE,
            ),
            "get": op("A card's experiments, newest first", {"200": OK}, 404, params=ids),
        },
        ITEM: {
            "get": op(
                "An experiment with its analysis: per variant sent, goal count, rate with a 95% Wilson "
                "interval; the sequential rule's verdict; weight changes. Promotes a clear winner when "
                "the experiment says so (audited)",
                {"200": OK}, 404, params=xs,
            )
        },
        f"{ITEM}/weights": {
            "put": op(
                "Change a running experiment's weights (kept in its history and the audit log)",
                {"200": OK}, 404, 409, *WRITE_ERRORS, params=xs, body_schema=WEIGHTS,
            )
        },
        f"{ITEM}/stop": {"post": op("Stop a running experiment", {"200": OK}, 404, 409, params=xs)},
        f"{ITEM}/promote": {
            "post": op(
                "Promote a variant: all traffic to its version, the others retired, the experiment ended",
                {"200": OK}, 404, 409, *WRITE_ERRORS, params=xs, body_schema=PROMOTE,
            )
        },
    }  # fmt: skip
