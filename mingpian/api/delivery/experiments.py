"""A card's experiments over HTTP: start one (2–5 reviewed versions with weights, a goal, a
minimum sample), list them, read one with its analysis (per variant the rate and its 95%
interval, per allocation period the counts, the stopping rule's verdict), change its weights
(kept in its history), stop it, or promote a variant (delivery/experiments.py). Reading the
analysis promotes a clear winner when the enterprise chose so.

Bad input is a 422 whose problems name the field's JSON path, its Chinese title and a Chinese
sentence with both; a state that forbids the change (one runs already, it has ended) a 409. Of
two starts, stops or promotions at once one does it; the other is that 409."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator, ValidationError

from delivery import experiments as ex
from infra.outage import log_failure
from renderer.jsonpath import json_path

from ...errors import ApiError
from ...httpjson import json_response, read_json_body
from ...keys import settings_key
from ...openapi import json_response as json_doc
from .access import enterprise, principal
from .ops import WRITE_ERRORS, op
from .preview import render_card
from .state import delivery_key

log = logging.getLogger("mingpian.delivery")

BASE = "/api/enterprises/{eid}/cards/{id}/experiments"
ITEM = BASE + "/{x}"

_VARIANT = {
    "type": "object",
    "title": "版本",
    "description": "One variant: an approved version of the card and the share of recipients it gets.",
    "required": ["name", "version"],
    "additionalProperties": False,
    "properties": {
        "name": {
            "type": "string", "title": "版本名", "minLength": 1, "maxLength": ex.NAME_CHARS,
            "description": "The variant's name, unique in the experiment (what the analysis and "
                           "`promote` name).",
        },
        "version": {
            "type": "integer", "title": "名片版本号", "minimum": 1,
            "description": "An approved (or superseded) version of the card, answering the same calls "
                           "(phase, line, group) as the card; each version at most once.",
        },
        "weight": {
            "type": "number", "title": "权重", "minimum": 0, "maximum": ex.MAX_WEIGHT, "default": 1,
            "description": "The variant's share of recipients relative to the others' (0: none for now); "
                           "not all zero.",
        },
    },
}  # fmt: skip
CREATE = {
    "type": "object",
    "title": "实验",
    "description": "A new experiment on the card; one may run per card at a time (409 otherwise).",
    "required": ["variants", "goal"],
    "additionalProperties": False,
    "properties": {
        "variants": {
            "type": "array", "title": "版本", "items": _VARIANT,
            "minItems": ex.MIN_VARIANTS, "maxItems": ex.MAX_VARIANTS,
            "description": f"{ex.MIN_VARIANTS}–{ex.MAX_VARIANTS} variants, distinct names and versions.",
        },
        "goal": {
            "type": "string", "title": "目标", "maxLength": 200,
            "description": "What counts as a success: `tap_rate` (a delivery with any tap), `open_rate` "
                           "(with a link opened), or `button:<text>` (a tap on that button, which every "
                           "variant's card must have).",
            "pattern": "^(tap_rate|open_rate|button:.*\\S.*)$",
        },
        "min_sample": {
            "type": "integer", "title": "每个版本的最小样本",
            "minimum": ex.MIN_SAMPLE_FLOOR, "maximum": ex.MAX_SAMPLE, "default": ex.DEFAULT_MIN_SAMPLE,
            "description": "Deliveries every active variant needs before the rule gives a verdict.",
        },
        "auto_promote": {
            "type": "boolean", "title": "自动提升胜出版本", "default": False,
            "description": "Promote the winner by itself once the rule declares one (audited).",
        },
    },
}  # fmt: skip
WEIGHTS = {
    "type": "object",
    "title": "权重",
    "description": "New weights of a running experiment; each change starts an allocation period.",
    "required": ["weights"],
    "additionalProperties": False,
    "properties": {
        "weights": {
            "type": "object",
            "title": "权重",
            "description": "Variant name → its new weight; a variant not named keeps its weight; "
            "not all zero.",
            "minProperties": 1,
            "maxProperties": ex.MAX_VARIANTS,
            "additionalProperties": {
                "type": "number",
                "title": "权重",
                "minimum": 0,
                "maximum": ex.MAX_WEIGHT,
            },
        }
    },
}
PROMOTE = {
    "type": "object",
    "title": "提升",
    "description": "The variant whose version the card sends from now on (whatever the verdict says).",
    "required": ["variant"],
    "additionalProperties": False,
    "properties": {
        "variant": {
            "type": "string", "title": "版本名", "minLength": 1, "maxLength": ex.NAME_CHARS,
            "description": "The name of one of the experiment's variants.",
        }
    },
}  # fmt: skip
_CHECK = {id(s): Draft202012Validator(s) for s in (CREATE, WEIGHTS, PROMOTE)}
GOAL_FORM = "：须为 tap_rate、open_rate 或 button:<按钮文字>"
_TYPES = {
    "object": "对象",
    "array": "列表",
    "string": "文字",
    "integer": "整数",
    "number": "数",
    "boolean": "true 或 false",
}


def _problem(e: ValidationError) -> dict[str, str]:
    """A schema error as (JSON path, the field's title, a Chinese sentence naming both)."""
    path = list(e.absolute_path)
    schema = e.schema if isinstance(e.schema, dict) else {}
    v, want = e.validator, e.validator_value
    if v in ("required", "additionalProperties") and isinstance(e.instance, dict):
        props = schema.get("properties") or {}
        if v == "required":
            name = next((r for r in want if r not in e.instance), "")
            title = props.get(name, {}).get("title", name)
            return {"path": json_path([*path, name]), "title": title, "message": f"缺少「{title}」"}
        extra = next((k for k in e.instance if k not in props), "")
        title = str(schema.get("title", "请求"))
        return {"path": json_path([*path, extra]), "title": title, "message": f"「{title}」没有字段 {extra}"}
    title = str(schema.get("title", "请求"))
    sentence = {
        "minimum": f"须不小于 {want}", "maximum": f"须不大于 {want}",
        "minItems": f"至少 {want} 个", "maxItems": f"至多 {want} 个",
        "minProperties": f"至少 {want} 项", "maxProperties": f"至多 {want} 项",
        "minLength": f"至少 {want} 个字符", "maxLength": f"至多 {want} 个字符",
        "type": f"须为{_TYPES.get(str(want), str(want))}",
        "pattern": "的格式不对" + (GOAL_FORM if title == "目标" else ""),
    }.get(str(v), "有误")  # fmt: skip
    return {"path": json_path(path), "title": title, "message": f"「{title}」{sentence}"}


def _not_finite(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where a number is NaN or infinite (what strict JSON has no room for)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _not_finite(v, (*path, k))
        if found is not None:
            return found
    return None


async def _read(request: web.Request) -> Any:
    """The JSON body; a NaN, Infinity or a number too large for a double (1e400) is named by its
    path and title (422), where a strict parser could only say the body is malformed."""
    try:
        return await read_json_body(request, request.app[settings_key].max_json_depth)
    except ApiError as err:
        if err.code != "invalid_json":
            raise
        try:  # the lenient parser reads NaN and Infinity, and 1e400 as infinity
            where = _not_finite(json.loads(await request.read()))
        except (ValueError, RecursionError):
            raise err from None
        if where is None:
            raise
        path = json_path(where)
        title = ex.title_of(path)
        message = f"「{title}」须为有限的数，不能是 NaN 或无穷大"
        problem = {"path": path, "title": title, "message": message}
        raise ApiError(422, "invalid", f"{message}（{path}）", problems=[problem]) from None


async def _body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    data = await _read(request)
    errors = sorted(
        _CHECK[id(schema)].iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        problems = [_problem(e) for e in errors[:20]]
        first = problems[0]
        raise ApiError(422, "invalid", f"{first['message']}（{first['path']}）", problems=problems)
    return data  # type: ignore[no-any-return]


def _invalid(err: ex.Invalid) -> ApiError:
    """422 for bad input, 409 when the experiment's state forbids it: the field's path and title."""
    status, code = (409, "conflict") if isinstance(err, ex.Conflict) else (422, "invalid")
    problem = {"path": err.path, "title": err.title, "message": str(err)}
    return ApiError(status, code, f"{err}（{err.path}）", problems=[problem])


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
        doc = await ex.create(store, ent["id"], card, body, who, buttons_of)
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
    try:
        doc = await ex.set_weights(store, ent["id"], doc, body["weights"], who)
    except ex.Invalid as err:
        raise _invalid(err) from None
    await store.durable()
    return json_response(doc)


async def stop(request: web.Request) -> web.Response:
    store, ent, doc, who = await _experiment(request)
    try:
        doc = await ex.end(store, ent["id"], doc, who, action="stop experiment")
    except ex.Invalid as err:
        raise _invalid(err) from None
    await store.durable()
    return json_response(doc)


async def promote(request: web.Request) -> web.Response:
    """A variant becomes the card's only version (all traffic), whatever the verdict says."""
    store, ent, doc, who = await _experiment(request)
    body = await _body(request, PROMOTE)
    try:
        if body["variant"] not in {v["name"] for v in doc["variants"]}:
            raise ex.Invalid("$.variant", f"「版本名」：实验没有版本「{body['variant']}」")
        doc = await ex.end(store, ent["id"], doc, who, body["variant"], "promote experiment variant")
    except ex.Invalid as err:
        raise _invalid(err) from None
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


_NAME_MAP = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "description": "variant name → weight",
}
_VARIANT_OUT = {
    "type": "object",
    "required": ["name", "version", "weight", "state"],
    "properties": {
        "name": {"type": "string", "description": "the variant's name"},
        "version": {"type": "integer", "minimum": 1, "description": "the card version it sends"},
        "weight": {"type": "number", "minimum": 0, "maximum": ex.MAX_WEIGHT, "description": "its share"},
        "state": {"enum": ["active", "retired"], "description": "retired: a promotion chose another"},
    },
}
EXPERIMENT = {
    "type": "object",
    "description": "An experiment as kept (every one is, ended ones too).",
    "required": [
        "id",
        "card",
        "state",
        "variants",
        "goal",
        "min_sample",
        "auto_promote",
        "started_at",
        "history",
    ],
    "properties": {
        "id": {"type": "string", "description": "`<card>~<n>`: the card's n-th experiment"},
        "card": {"type": "string", "description": "the card's id"},
        "state": {"enum": ["running", "stopped", "promoted"], "description": "promoted: ended with a winner"},
        "variants": {
            "type": "array",
            "items": _VARIANT_OUT,
            "minItems": ex.MIN_VARIANTS,
            "maxItems": ex.MAX_VARIANTS,
            "description": "the variants, in the order given",
        },
        "goal": {"type": "string", "description": "tap_rate, open_rate or button:<text>"},
        "min_sample": {
            "type": "integer",
            "minimum": ex.MIN_SAMPLE_FLOOR,
            "maximum": ex.MAX_SAMPLE,
            "description": "deliveries each active variant needs before a verdict",
        },
        "auto_promote": {"type": "boolean", "description": "whether a declared winner is promoted by itself"},
        "alpha": {"type": "number", "description": "the rule's false-positive bound (0.05)"},
        "tau": {"type": "number", "description": "the mixture's scale: the difference of rates it expects"},
        "started_at": {"type": "number", "description": "Unix seconds"},
        "started_by": {"type": "string", "description": "who started it"},
        "ended_at": {"type": ["number", "null"], "description": "Unix seconds; null while it runs"},
        "ended_by": {"type": "string", "description": "who (or `system`) ended it"},
        "winner": {"type": ["string", "null"], "description": "the promoted variant"},
        "history": {
            "type": "array",
            "description": "the weights at the start and after every change",
            "items": {
                "type": "object",
                "required": ["at", "by", "weights"],
                "properties": {
                    "at": {"type": "number", "description": "Unix seconds"},
                    "by": {"type": "string", "description": "who changed them"},
                    "weights": _NAME_MAP,
                },
            },
        },
    },
}
_COUNTED = {
    "type": "object",
    "required": ["sent", "goal", "rate"],
    "properties": {
        "sent": {"type": "integer", "minimum": 0, "description": "deliveries sent"},
        "goal": {"type": "integer", "minimum": 0, "description": "of them, those that reached the goal"},
        "rate": {"type": ["number", "null"], "description": "goal / sent; null with none sent"},
    },
}
ANALYSIS = {
    "type": "object",
    "description": "Counts from the event rollups, split at each weight change; the stopping rule's verdict.",
    "required": ["variants", "goal_kind", "verdict", "method", "periods", "weight_changes", "note"],
    "properties": {
        "variants": {"type": "array", "description": "per variant, over the whole experiment (to read; "
                     "the verdict compares within periods)", "items": {"allOf": [_VARIANT_OUT, _COUNTED, {
                         "properties": {"interval": {"type": "array", "items": {"type": "number"},
                                                     "minItems": 2, "maxItems": 2,
                                                     "description": "the rate's 95% Wilson interval"}}}]}},
        "goal_kind": {"type": "string", "description": "the event kind counted (`tapped`, `opened`, "
                      "`tapped:<button>`)"},
        "verdict": {"type": "object", "description": "the stopping rule's answer at this look",
                    "required": ["winner", "reason", "statistic", "threshold", "p_value"],
                    "properties": {
            "winner": {"type": ["string", "null"], "description": "the variant better than every other"},
            "reason": {"enum": ["min_sample", "no_difference", "winner"],
                       "description": "min_sample: a variant is short of its minimum sample"},
            "statistic": {"type": "number", "description": "the mixture likelihood ratio Λ (the winner's "
                          "smallest against another; else the largest seen)"},
            "threshold": {"type": "number", "description": "what Λ must reach: pairs / α"},
            "p_value": {"type": "number", "minimum": 0, "maximum": 1,
                        "description": "an always-valid p-value, min(1, 1/Λ)"}}},
        "method": {"enum": ["single", "stratified"], "description": "stratified: weights changed, the "
                   "evidence of each allocation period summed (docs/delivery.md)"},
        "periods": {"type": "array", "description": "each allocation period: its weights and counts",
                    "items": {"type": "object", "required": ["since", "until", "weights", "variants"],
                              "properties": {
            "since": {"type": "number", "description": "Unix seconds (a whole minute)"},
            "until": {"type": "number", "description": "Unix seconds; the last one reaches an hour past now"},
            "weights": _NAME_MAP,
            "variants": {"type": "object", "additionalProperties": _COUNTED,
                         "description": "variant name → its counts in the period"}}}},
        "weight_changes": {"type": "array", "items": {"type": "object"},
                           "description": "the history's entries after the start (a promotion's excluded)"},
        "note": {"type": "string", "description": "for a person, in Chinese: how the weight changes were "
                 "handled (empty without any)"},
    },
}  # fmt: skip
_PARAMS = {
    "eid": "the enterprise's id",
    "id": "the card's id",
    "x": "the experiment's id (`<card>~<n>`)",
}


def _described(ops: dict[str, Any]) -> dict[str, Any]:
    """The path parameters' descriptions, which `op` leaves out."""
    for o in ops.values():
        for p in o.get("parameters", []):
            p.setdefault("description", _PARAMS.get(p["name"], ""))
    return ops


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
    one = {"200": json_doc("the experiment", EXPERIMENT)}
    listed = json_doc(
        "every experiment of the card, newest first",
        {
            "type": "object",
            "required": ["experiments"],
            "properties": {
                "experiments": {"type": "array", "items": EXPERIMENT, "description": "newest first"}
            },
        },
    )
    analysed = json_doc(
        "the experiment and its analysis",
        {"allOf": [EXPERIMENT, {"required": ["analysis"], "properties": {"analysis": ANALYSIS}}]},
    )
    paths = {
        BASE: {
            "post": op(
                "Start an experiment on a card: 2–5 approved versions with weights, a goal (tap_rate, "
                "open_rate, button:<text>), a minimum sample per variant, whether to promote the winner. "
                "One runs per card: of two starts at once one wins, the other is a 409",
                {"201": json_doc("the experiment, running", EXPERIMENT)}, 404, 409, *WRITE_ERRORS,
                params=ids, body_schema=CREATE,
            ),
            "get": op("A card's experiments, newest first", {"200": listed}, 404, params=ids),
        },
        ITEM: {
            "get": op(
                "An experiment with its analysis: per variant sent, goal count, rate with a 95% Wilson "
                "interval; per allocation period (split at each weight change) the counts; the "
                "sequential rule's verdict, stratified by period; a Chinese note on the changes. "
                "Promotes a clear winner when the experiment says so (audited, once)",
                {"200": analysed}, 404, params=xs,
            )
        },
        f"{ITEM}/weights": {
            "put": op(
                "Change a running experiment's weights (kept in its history and the audit log; a new "
                "allocation period starts). 409 once it has ended",
                one, 404, 409, *WRITE_ERRORS, params=xs, body_schema=WEIGHTS,
            )
        },
        f"{ITEM}/stop": {"post": op("Stop a running experiment (409 once it has ended: of two stops at once "
                                    "one does it)", one, 404, 409, params=xs)},
        f"{ITEM}/promote": {
            "post": op(
                "Promote a variant: all traffic to its version, the others retired, the experiment ended "
                "(audited once; 409 once it has ended: of two promotions at once one does it)",
                one, 404, 409, *WRITE_ERRORS, params=xs, body_schema=PROMOTE,
            )
        },
    }  # fmt: skip
    return {path: _described(ops) for path, ops in paths.items()}
