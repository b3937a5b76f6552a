"""The delivery HTTP API: enterprises and their lines, staff, cards and packages (CRUD, JSON
Schema-validated, tenant-scoped), call events, replies, reports and estimates.

Every route needs an API key (auth.py). An enterprise key reaches only its own enterprise: any
other enterprise's ids answer 404 exactly like ids that do not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema_rs
import orjson
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

from chatbot.events import InboundEvent
from chatbot.maap import MaapClient
from renderer import RenderError
from renderer.legacy import degrade

from ..http_errors import raise_json, read_json_body, render_error_response
from ..jsonio import json_response
from ..keys import chatbot_listeners_key, settings_key, templates_key
from ..openapi import add_paths, error_response
from ..openapi import json_response as doc_json
from . import auth, reports_page
from .channels import Channel
from .channels.kannel import DLR_STATS, KannelChannel
from .channels.rcs import Capabilities, RcsChannel
from .channels.smpp import SmppChannel
from .dispatch import Dispatcher, InProgress
from .metering import Meter, RedisCounters, SqliteCounters, applicable, to_csv, units_for
from .model import CHANNELS, SCHEMAS, NumberError, normalize_number
from .smpp import SmppClient
from .store import DeliveryStore

store_key = web.AppKey("delivery_store", DeliveryStore)
dispatcher_key = web.AppKey("delivery_dispatcher", Dispatcher)
meter_key = web.AppKey("delivery_meter", Meter)
smpp_key = web.AppKey("delivery_smpp", SmppClient)
kannel_token_key = web.AppKey("delivery_kannel_token", str)

_VALIDATORS = {k: Draft202012Validator(v) for k, v in SCHEMAS.items()}
_FAST: dict[str, Any] = {}
# URL segment → (stored kind, id field, who may write)
KINDS: dict[str, tuple[str, str, str]] = {
    "lines": ("line", "number", "enterprise"),
    "staff": ("staff", "id", "enterprise"),
    "cards": ("card", "id", "enterprise"),
    "packages": ("package", "id", "operator"),
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def validate(kind: str, body: Any) -> dict[str, Any]:
    """The body if valid; else 422 naming each JSON path. Valid bodies are checked by the compiled
    (Rust) validator in about a microsecond; only an invalid one pays for the detailed report."""
    fast = _FAST.get(kind)
    if fast is None:
        fast = _FAST[kind] = jsonschema_rs.Draft202012Validator(_VALIDATORS[kind].schema)
    if fast.is_valid(body):
        return body  # type: ignore[no-any-return]
    errors = sorted(
        _VALIDATORS[kind].iter_errors(body), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        problems = [{"path": _path(e.absolute_path), "message": e.message[:300]} for e in errors[:20]]
        raise web.HTTPUnprocessableEntity(
            text=orjson.dumps(
                {
                    "error": "invalid",
                    "message": f"{kind}: {problems[0]['path']}: {problems[0]['message']}",
                    "problems": problems,
                }
            ).decode(),
            content_type="application/json",
        )
    return body


def _number(raw: str, path: str) -> str:
    try:
        return normalize_number(raw)
    except NumberError as exc:
        raise_json(422, "invalid_number", str(exc), path)


async def _body(request: web.Request) -> Any:
    return await read_json_body(request, request.app[settings_key].max_json_depth)


def _principal(request: web.Request) -> auth.Principal:
    return auth.authenticate(request, request.app[store_key])


def _enterprise(request: web.Request, p: auth.Principal) -> dict[str, Any]:
    eid = request.match_info["eid"]
    auth.require_enterprise(p, eid)
    ent = request.app[store_key].get("enterprise", "", eid)
    if ent is None:
        raise_json(404, "not_found", f"no enterprise {eid!r}")
    return ent


# -- enterprises ---------------------------------------------------------------------------------


async def list_enterprises(request: web.Request) -> web.Response:
    p = _principal(request)
    store = request.app[store_key]
    items = (
        store.list("enterprise", "")
        if p.operator
        else [e for e in [store.get("enterprise", "", p.enterprise or "")] if e]
    )
    return json_response({"enterprises": items})


async def create_enterprise(request: web.Request) -> web.Response:
    p = _principal(request)
    auth.require_operator(p)
    body = validate("enterprise", await _body(request))
    store = request.app[store_key]
    if store.get("enterprise", "", body["id"]) is not None:
        raise_json(409, "exists", f"enterprise {body['id']!r} exists", "$.id")
    with store.tx():
        store.put("enterprise", "", body["id"], body)
        store.audit(p.name, body["id"], body["id"], "create enterprise", {})
    await request.app[store_key].durable()
    return json_response(body, status=201)


async def get_enterprise(request: web.Request) -> web.Response:
    return json_response(_enterprise(request, _principal(request)))


async def put_enterprise(request: web.Request) -> web.Response:
    p = _principal(request)
    ent = _enterprise(request, p)
    body = validate("enterprise", await _body(request))
    if body["id"] != ent["id"]:
        raise_json(422, "id_mismatch", "id cannot change", "$.id")
    store = request.app[store_key]
    with store.tx():
        store.put("enterprise", "", ent["id"], body)
        store.audit(p.name, ent["id"], ent["id"], "update enterprise", {})
    await request.app[store_key].durable()
    return json_response(body)


async def delete_enterprise(request: web.Request) -> web.Response:
    p = _principal(request)
    auth.require_operator(p)
    ent = _enterprise(request, p)
    request.app[store_key].delete_enterprise(ent["id"])
    await request.app[store_key].durable()
    return web.Response(status=204)


async def issue_key(request: web.Request) -> web.Response:
    p = _principal(request)
    auth.require_operator(p)
    ent = _enterprise(request, p)
    store = request.app[store_key]
    key = auth.issue(store, ent["id"], "issued by operator")
    store.audit(p.name, ent["id"], ent["id"], "issue key", {})
    await request.app[store_key].durable()
    return json_response({"key": key, "enterprise": ent["id"]}, status=201)


async def get_audit(request: web.Request) -> web.Response:
    ent = _enterprise(request, _principal(request))
    return json_response({"audit": request.app[store_key].audit_log(ent["id"])})


# -- lines, staff, cards, packages ---------------------------------------------------------------


def _prepare(
    request: web.Request, seg: str, body: dict[str, Any], eid: str, old: dict[str, Any] | None
) -> dict[str, Any]:
    store = request.app[store_key]
    kind = KINDS[seg][0]
    body = validate(kind, body)
    if kind == "line":
        number = _number(body["number"], "$.number")
        hit = store.find("line", number)
        if hit is not None and hit[0] != eid:
            raise_json(409, "taken", f"{number} is a line of another enterprise", "$.number")
        body = {**body, "number": number, "verified": bool(old and old.get("verified"))}
        if body.get("staff") and store.get("staff", eid, body["staff"]) is None:
            raise_json(422, "unknown_staff", f"no staff member {body['staff']!r}", "$.staff")
    if kind == "card":
        if body.get("line"):
            body = {**body, "line": _number(body["line"], "$.line")}
        try:
            request.app[templates_key].get(body["template"])
        except RenderError as exc:
            raise_json(422, "unknown_template", str(exc).splitlines()[0][:200], "$.template")
    if kind == "package":
        if body["valid_to"] <= body["valid_from"]:
            raise_json(422, "invalid", "valid_to must be after valid_from", "$.valid_to")
        body = {**body, "lines": [_number(n, f"$.lines[{i}]") for i, n in enumerate(body.get("lines", []))]}
    return body


def _list(seg: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        ent = _enterprise(request, _principal(request))
        return json_response({seg: request.app[store_key].list(KINDS[seg][0], ent["id"])})

    return handler


def _writer(request: web.Request, seg: str) -> tuple[auth.Principal, dict[str, Any]]:
    """Who is writing and to which enterprise; operator-only kinds are checked here."""
    p = _principal(request)
    ent = _enterprise(request, p)
    if KINDS[seg][2] == "operator":
        auth.require_operator(p)
    return p, ent


def _create(seg: str) -> Handler:
    kind, idf, _ = KINDS[seg]

    async def handler(request: web.Request) -> web.Response:
        p, ent = _writer(request, seg)
        store = request.app[store_key]
        body = _prepare(request, seg, await _body(request), ent["id"], None)
        if store.get(kind, ent["id"], body[idf]) is not None:
            raise_json(409, "exists", f"{kind} {body[idf]!r} exists", f"$.{idf}")
        with store.tx():
            store.put(kind, ent["id"], body[idf], body)
            store.audit(p.name, ent["id"], f"{kind}:{body[idf]}", f"create {kind}", {})
        await store.durable()
        return json_response(body, status=201)

    return handler


def _item_id(seg: str, request: web.Request) -> str:
    raw = request.match_info["id"]
    if KINDS[seg][0] == "line":
        try:
            return normalize_number(raw)
        except NumberError:
            raise_json(404, "not_found", f"no line {raw!r}")
    return raw


def _get(seg: str) -> Handler:
    kind = KINDS[seg][0]

    async def handler(request: web.Request) -> web.Response:
        ent = _enterprise(request, _principal(request))
        item = request.app[store_key].get(kind, ent["id"], _item_id(seg, request))
        if item is None:
            raise_json(404, "not_found", f"no {kind} {request.match_info['id']!r}")
        return json_response(item)

    return handler


def _put(seg: str) -> Handler:
    kind, idf, _ = KINDS[seg]

    async def handler(request: web.Request) -> web.Response:
        p, ent = _writer(request, seg)
        store = request.app[store_key]
        item_id = _item_id(seg, request)
        old = store.get(kind, ent["id"], item_id)
        if old is None:
            raise_json(404, "not_found", f"no {kind} {request.match_info['id']!r}")
        body = _prepare(request, seg, await _body(request), ent["id"], old)
        if body[idf] != item_id:
            raise_json(422, "id_mismatch", f"{idf} cannot change", f"$.{idf}")
        with store.tx():
            store.put(kind, ent["id"], item_id, body)
            store.audit(p.name, ent["id"], f"{kind}:{item_id}", f"update {kind}", {})
        await store.durable()
        return json_response(body)

    return handler


def _delete(seg: str) -> Handler:
    kind = KINDS[seg][0]

    async def handler(request: web.Request) -> web.Response:
        p, ent = _writer(request, seg)
        store = request.app[store_key]
        item_id = _item_id(seg, request)
        with store.tx():
            if not store.delete(kind, ent["id"], item_id):
                raise_json(404, "not_found", f"no {kind} {request.match_info['id']!r}")
            store.audit(p.name, ent["id"], f"{kind}:{item_id}", f"delete {kind}", {})
        await store.durable()
        return web.Response(status=204)

    return handler


async def verify_line(request: web.Request) -> web.Response:
    """Only the operator marks a number verified (it then shows the brand); audited."""
    p = _principal(request)
    auth.require_operator(p)
    ent = _enterprise(request, p)
    store = request.app[store_key]
    number = _item_id("lines", request)
    line = store.get("line", ent["id"], number)
    if line is None:
        raise_json(404, "not_found", f"no line {request.match_info['id']!r}")
    body = validate("verify", await _body(request))
    line = {**line, "verified": body["verified"]}
    with store.tx():
        store.put("line", ent["id"], number, line)
        store.audit(
            p.name,
            ent["id"],
            f"line:{number}",
            "verify" if body["verified"] else "unverify",
            {"note": body.get("note", "")},
        )
    await request.app[store_key].durable()
    return json_response(line)


# -- calls, replies ------------------------------------------------------------------------------


async def post_call(request: web.Request) -> web.Response:
    p = _principal(request)
    body = validate("call", await _body(request))
    _number(body["caller"], "$.caller")
    _number(body["callee"], "$.callee")
    try:
        status, out = await request.app[dispatcher_key].accept(body, p.enterprise)
    except LookupError as exc:
        raise_json(422, "unknown_line", str(exc), "$.caller")
    except InProgress as exc:
        raise_json(409, "in_progress", str(exc))
    return json_response(out, status=status)


async def get_call(request: web.Request) -> web.Response:
    p = _principal(request)
    store = request.app[store_key]
    ds = [
        d
        for d in store.deliveries_of_call(request.match_info["call_id"])
        if p.operator or d.enterprise == p.enterprise
    ]
    if not ds:
        raise_json(404, "not_found", f"no call {request.match_info['call_id']!r}")
    return json_response(
        {
            "call_id": request.match_info["call_id"],
            "deliveries": [
                {**d.to_json(), "attempts": [a.to_json() for a in store.attempts(d.id)]} for d in ds
            ],
        }
    )


REPLY_SCHEMA = {
    "type": "object",
    "required": ["from", "to", "text"],
    "additionalProperties": False,
    "properties": {
        "from": {"type": "string", "maxLength": 32},
        "to": {"type": "string", "maxLength": 32},
        "text": {"type": "string", "maxLength": 1000},
        "channel": {"enum": list(CHANNELS)},
        "postback": {"type": "string", "maxLength": 2048, "description": "a 5G button's postback (a tap)"},
    },
}
_VALIDATORS["reply"] = Draft202012Validator(REPLY_SCHEMA)


async def post_reply(request: web.Request) -> web.Response:
    """A reply received on another channel (the chatbot's 5G messages, a Kannel MO): opt-outs
    are honoured on every channel at once."""
    p = _principal(request)
    body = validate("reply", await _body(request))
    to = _number(body["to"], "$.to")
    _number(body["from"], "$.from")
    hit = request.app[store_key].find("line", to)
    if hit is None or (not p.operator and hit[0] != p.enterprise):
        raise_json(
            422, "unknown_line", f"{to} is not a line" + ("" if p.operator else " of this enterprise"), "$.to"
        )
    opted = request.app[dispatcher_key].on_reply(
        body["from"], to, body["text"], body.get("channel", "rcs"), body.get("postback", "")
    )
    await request.app[store_key].durable()
    return json_response({"opt_out": opted})


async def on_chatbot_event(app: web.Application, bot: str, event: InboundEvent) -> None:
    """The chatbot accepted a user's text or tap (registered in `chatbot_listeners_key`): an
    opt-out word blocks the enterprises behind that chatbot on every channel, a tap on a card's
    button counts in their reports. Durable before the chatbot answers its webhook."""
    dispatcher = app.get(dispatcher_key)
    if dispatcher is None:
        return
    text = event.text if event.kind == "text" else ""
    postback = event.postback if event.kind == "postback" else ""
    dispatcher.on_chatbot(event.chatbot, event.user, text, postback, ref=f"chatbot:{bot}:{event.message_id}")
    await app[store_key].durable()


async def get_optouts(request: web.Request) -> web.Response:
    ent = _enterprise(request, _principal(request))
    return json_response({"optouts": request.app[store_key].optouts(ent["id"])})


# -- reports and estimates -----------------------------------------------------------------------


async def get_usage(request: web.Request) -> web.Response:
    ent = _enterprise(request, _principal(request))
    by = tuple(x.strip() for x in request.query.get("by", "day").split(",") if x.strip())
    bad = [x for x in by if x not in ("day", "line", "channel", "package")]
    if bad:
        raise_json(400, "invalid_query", f"cannot group by {bad[0]!r}; use day, line, channel, package", "by")
    rows = request.app[meter_key].usage(ent["id"], by)
    if request.query.get("format") == "csv":
        return web.Response(
            text=to_csv(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="usage-{ent["id"]}.csv"'},
        )
    return json_response({"enterprise": ent["id"], "by": list(by), "rows": rows})


async def get_report(request: web.Request) -> web.Response:
    ent = _enterprise(request, _principal(request))
    store = request.app[store_key]
    return json_response(
        {
            "enterprise": ent["id"],
            "attempts": store.delivery_stats(ent["id"]),
            "packages": await request.app[meter_key].balances(ent["id"]),
            "ads": store.impressions(ent["id"]),
            "taps": store.taps(ent["id"]),
        }
    )


ESTIMATE_SCHEMA = {
    "type": "object",
    "required": ["template", "data", "count"],
    "additionalProperties": False,
    "properties": {
        "template": {"type": "string", "maxLength": 100},
        "data": {"type": "object"},
        "count": {"type": "integer", "minimum": 1, "maximum": 100_000_000},
        "line": {"type": "string", "maxLength": 32},
    },
}
_VALIDATORS["estimate"] = Draft202012Validator(ESTIMATE_SCHEMA)


async def post_estimate(request: web.Request) -> web.Response:
    """What a campaign would cost per channel, before it is sent: units (SMS per segment) ×
    count, how much the packages cover, and the rest at the overage price."""
    ent = _enterprise(request, _principal(request))
    body = validate("estimate", await _body(request))
    try:
        msg = request.app[templates_key].get(body["template"]).render(body["data"])
    except RenderError as exc:
        return render_error_response(exc)
    store, meter = request.app[store_key], request.app[meter_key]
    line = _number(body["line"], "$.line") if body.get("line") else ""
    now = time.time()
    packages, _ = (
        applicable(store, ent["id"], line, now)
        if line
        else ([p for p in applicable(store, ent["id"], "", now)[0]], True)
    )
    docs = {d["id"]: d for d in store.list("package", ent["id"])}
    balances = {b["id"]: b for b in await meter.balances(ent["id"])}
    free = sum(balances[p.id]["remaining"] for p in packages if p.id in balances)
    out = []
    for ch in ("rcs", "ussd", "flash", "sms"):
        try:
            segs = len(degrade(msg, ch).segments) if ch != "rcs" else 1
        except RenderError as exc:
            out.append({"channel": ch, "error": str(exc)[:200]})
            continue
        first = docs.get(packages[0].id) if packages else None
        units = units_for(first, ch, segs) * body["count"]
        covered = min(units, free)
        over = units - covered
        over_p = next((p for p in packages if p.policy == "overage"), None)
        unit_price = packages[0].unit_price if packages else 0.0
        out.append(
            {
                "channel": ch,
                "segments": segs,
                "units": units,
                "covered_by_packages": covered,
                "beyond_packages": over,
                "sendable": over == 0 or over_p is not None,
                "cost": round(covered * unit_price + (over * over_p.overage_price if over_p else 0), 4),
            }
        )
    return json_response(
        {"enterprise": ent["id"], "template": body["template"], "count": body["count"], "channels": out}
    )


# -- Kannel callbacks ----------------------------------------------------------------------------


def _kannel_auth(request: web.Request) -> None:
    want = request.app.get(kannel_token_key)
    got = request.query.get("token", "")
    if not want or not hmac.compare_digest(want.encode(), got.encode()):
        raise_json(401, "unauthorized", "wrong or missing token", "token")


async def kannel_dlr(request: web.Request) -> web.Response:
    """Kannel's dlr-url callback: `?id=<our message id>&type=%d&token=…`."""
    _kannel_auth(request)
    try:
        kind = int(request.query.get("type", ""))
    except ValueError:
        raise_json(400, "invalid_query", "type must be Kannel's DLR type number", "type")
    stat = DLR_STATS.get(kind)
    mid = request.query.get("id", "")
    if not mid:
        raise_json(400, "invalid_query", "id is missing", "id")
    if stat is not None:  # 4 buffered, 8 accepted by the SMSC: not final
        request.app[dispatcher_key].on_receipt(mid, stat)
    await request.app[store_key].durable()
    return json_response({"id": mid, "stat": stat})


async def kannel_mo(request: web.Request) -> web.Response:
    """Kannel's MO callback (a sms-service get-url): `?from=%p&to=%P&text=%a&token=…`."""
    _kannel_auth(request)
    q = request.query
    if not q.get("from") or not q.get("to"):
        raise_json(400, "invalid_query", "from and to are required", "from")
    opted = request.app[dispatcher_key].on_reply(q["from"], q["to"], q.get("text", ""), "sms")
    await request.app[store_key].durable()
    return json_response({"opt_out": opted})


# -- seed, wiring --------------------------------------------------------------------------------


def load_seed(store: DeliveryStore, path: Path) -> None:
    """Enterprises (with lines, staff, cards, packages and plaintext keys to register) from YAML."""
    try:
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"{path}: cannot read the delivery seed: {exc}") from None
    with store.tx():
        for key in doc.get("operator_keys", []):
            store.add_key(auth.hash_key(str(key)), None, f"seed {path.name}")
        for i, e in enumerate(doc.get("enterprises", [])):
            e = dict(e)
            sub = {seg: e.pop(seg, []) for seg in KINDS}
            keys = e.pop("keys", [])
            _seed_check("enterprise", e, f"{path}: enterprises[{i}]")
            store.put("enterprise", "", e["id"], e)
            for key in keys:
                store.add_key(auth.hash_key(str(key)), e["id"], f"seed {path.name}")
            for seg in ("staff", "lines", "cards", "packages"):
                kind, idf, _ = KINDS[seg]
                for j, item in enumerate(sub[seg]):
                    item = dict(item)
                    verified = bool(item.pop("verified", False)) if kind == "line" else False
                    _seed_check(kind, item, f"{path}: enterprises[{i}].{seg}[{j}]")
                    if kind == "line":
                        item = {**item, "number": normalize_number(item["number"]), "verified": verified}
                    if kind == "card" and item.get("line"):
                        item["line"] = normalize_number(item["line"])
                    if kind == "package":
                        item["lines"] = [normalize_number(n) for n in item.get("lines", [])]
                    store.put(kind, e["id"], item[idf], item)


def _seed_check(kind: str, body: Any, where: str) -> None:
    err = next(iter(_VALIDATORS[kind].iter_errors(body)), None)
    if err is not None:
        raise SystemExit(f"{where}{_path(err.absolute_path)[1:]}: {err.message}")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    s = app[settings_key]
    store = DeliveryStore(s.data_dir / "delivery.sqlite3", s.sqlite_synchronous)
    store.open()
    counters = RedisCounters(s.redis_url) if s.delivery_counters == "redis" else SqliteCounters(store)
    meter = Meter(store, counters)
    if s.delivery_seed:
        load_seed(store, Path(s.delivery_seed))
    if s.delivery_operator_key:
        store.add_key(auth.hash_key(s.delivery_operator_key), None, "operator (settings)")
    channels: dict[str, Channel] = {}
    dispatcher = Dispatcher(
        store,
        meter,
        app[templates_key],
        channels,
        timeouts=dict(s.delivery_timeouts),
        ring_timeout=s.delivery_ring_timeout,
    )
    client: SmppClient | None = None
    if s.delivery_smpp:
        host, _, port = s.delivery_smpp.rpartition(":")
        client = SmppClient(
            host or "127.0.0.1",
            int(port),
            s.delivery_smpp_system_id,
            s.delivery_smpp_password,
            dispatcher.on_deliver,
        )
        client.start()
        for name in ("ussd", "flash", "sms"):
            channels[name] = SmppChannel(name, client, s.delivery_flash_gsm_dcs)
        app[smpp_key] = client
    session: aiohttp.ClientSession | None = None
    maap: MaapClient | None = None
    if s.maap_url:  # 5G messages through the chatbot's MaaP client and credentials
        session = aiohttp.ClientSession()
        maap = MaapClient(
            session,
            s.maap_url,
            app_id=s.maap_app_id,
            app_key=s.maap_app_key,
            dialect=s.maap_dialect,
            token_url=s.maap_token_url,
            timeout=s.maap_timeout,
        )
        channels["rcs"] = RcsChannel(maap)
        dispatcher.capability = Capabilities(
            maap, session, s.delivery_capability_path, "", ttl=s.delivery_capability_ttl
        )
    if s.delivery_kannel_url:  # flash / SMS through Kannel's HTTP sendsms instead of SMPP
        session = session or aiohttp.ClientSession()
        app[kannel_token_key] = token = s.delivery_kannel_token or secrets.token_urlsafe(24)
        for name in s.delivery_kannel_channels:
            channels[name] = KannelChannel(
                name,
                session,
                s.delivery_kannel_url,
                s.delivery_kannel_username,
                s.delivery_kannel_password,
                s.base_url,
                token,
            )
    app[store_key], app[meter_key], app[dispatcher_key] = store, meter, dispatcher
    store.start_batching()
    dispatcher.resume()
    forwarded: asyncio.Task[None] | None = None
    if isinstance(counters, RedisCounters):
        forwarded = asyncio.get_running_loop().create_task(
            counters.receipts(lambda mid, stat: dispatcher.on_receipt(mid, stat, forwarded=True))
        )
    yield
    if forwarded is not None:
        forwarded.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarded
    await dispatcher.close()
    if client is not None:
        await client.close()
    if maap is not None:
        await maap.close()
    if session is not None:
        await session.close()
    with contextlib.suppress(Exception):
        await counters.close()
    store.close()


def _op(
    summary: str,
    ok: dict[str, Any],
    *codes: int,
    body: str | None = None,
    params: tuple[str, ...] = (),
    query: tuple[str, ...] = (),
) -> dict[str, Any]:
    responses: dict[str, Any] = {**ok}
    for c in (401, *codes):
        responses[str(c)] = error_response(
            {
                400: "bad request",
                401: "no or unknown API key",
                403: "operator only",
                404: "no such id (or another enterprise's)",
                409: "exists / taken",
                413: "body too large",
                415: "not JSON",
                422: "invalid (problems name the JSON path)",
            }[c]
        )
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["delivery"],
        "responses": responses,
        "security": [{"apiKey": []}],
    }
    params_doc = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in params]
    params_doc += [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in query]
    if params_doc:
        op["parameters"] = params_doc
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def _obj(desc: str) -> dict[str, Any]:
    return doc_json(desc, {"type": "object"})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_lifecycle)
    app.setdefault(chatbot_listeners_key, []).append(on_chatbot_event)  # 5G replies, in-process
    r = app.router
    e, ei = "/api/enterprises", "/api/enterprises/{eid}"
    r.add_get(e, list_enterprises)
    r.add_post(e, create_enterprise)
    r.add_get(ei, get_enterprise)
    r.add_put(ei, put_enterprise)
    r.add_delete(ei, delete_enterprise)
    r.add_post(ei + "/keys", issue_key)
    r.add_get(ei + "/audit", get_audit)
    r.add_get(ei + "/optouts", get_optouts)
    r.add_get(ei + "/usage", get_usage)
    r.add_get(ei + "/report", get_report)
    r.add_post(ei + "/estimate", post_estimate)
    r.add_post(ei + "/lines/{id}/verify", verify_line)
    r.add_post("/api/calls", post_call)
    r.add_get("/api/calls/{call_id}", get_call)
    r.add_post("/api/replies", post_reply)
    r.add_get("/api/gateway/kannel/dlr", kannel_dlr)
    r.add_get("/api/gateway/kannel/mo", kannel_mo)
    ok200, ok201, no = _obj("OK"), _obj("created"), {"description": "deleted"}
    E = ("eid",)
    paths: dict[str, dict[str, Any]] = {
        e: {
            "get": _op("List enterprises (an enterprise key sees its own)", {"200": ok200}),
            "post": _op(
                "Create an enterprise (operator)",
                {"201": ok201},
                400,
                403,
                409,
                413,
                415,
                422,
                body="DeliveryEnterprise",
            ),
        },
        ei: {
            "get": _op("Get an enterprise", {"200": ok200}, 404, params=E),
            "put": _op(
                "Replace an enterprise",
                {"200": ok200},
                400,
                404,
                413,
                415,
                422,
                params=E,
                body="DeliveryEnterprise",
            ),
            "delete": _op(
                "Delete an enterprise and everything of it (operator)", {"204": no}, 403, 404, params=E
            ),
        },
        ei + "/keys": {
            "post": _op(
                "Issue an API key for the enterprise (shown once; operator)",
                {"201": ok201},
                403,
                404,
                params=E,
            )
        },
        ei + "/audit": {
            "get": _op("Audit log (verification and every change)", {"200": ok200}, 404, params=E)
        },
        ei + "/optouts": {"get": _op("Numbers that opted out", {"200": ok200}, 404, params=E)},
        ei + "/usage": {
            "get": _op(
                "Usage and cost by day/line/channel/package (?by=, ?format=csv)",
                {
                    "200": {
                        "description": "rows",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    }
                },
                400,
                404,
                params=E,
                query=("by", "format"),
            )
        },
        ei + "/report": {
            "get": _op(
                "Deliveries per channel/outcome/day, package balances, ad impressions",
                {"200": ok200},
                404,
                params=E,
            )
        },
        ei + "/estimate": {
            "post": _op(
                "Cost estimate per channel before a campaign",
                {"200": ok200},
                400,
                404,
                413,
                415,
                422,
                params=E,
                body="DeliveryEstimate",
            )
        },
        ei + "/lines/{id}/verify": {
            "post": _op(
                "Mark a number verified or not (operator; audited)",
                {"200": ok200},
                400,
                403,
                404,
                413,
                415,
                422,
                params=("eid", "id"),
                body="DeliveryVerify",
            )
        },
        "/api/calls": {
            "post": _op(
                "A call event; idempotent per call_id + phase; delivery runs in the background",
                {"202": _obj("accepted"), "200": _obj("duplicate: already accepted")},
                400,
                409,
                413,
                415,
                422,
                body="DeliveryCall",
            )
        },
        "/api/calls/{call_id}": {
            "get": _op("Deliveries and attempts of a call", {"200": ok200}, 404, params=("call_id",))
        },
        "/api/gateway/kannel/dlr": {
            "get": {
                "summary": "Kannel dlr-url callback (authenticated by token=)",
                "tags": ["delivery"],
                "parameters": [
                    {"name": n, "in": "query", "required": n != "type", "schema": {"type": "string"}}
                    for n in ("id", "type", "token")
                ],
                "responses": {
                    "200": _obj("recorded"),
                    "400": error_response("bad query"),
                    "401": error_response("wrong token"),
                },
            }
        },
        "/api/gateway/kannel/mo": {
            "get": {
                "summary": "Kannel MO callback: a subscriber's SMS (opt-out words honoured)",
                "tags": ["delivery"],
                "parameters": [
                    {"name": n, "in": "query", "required": n != "text", "schema": {"type": "string"}}
                    for n in ("from", "to", "text", "token")
                ],
                "responses": {
                    "200": _obj("handled"),
                    "400": error_response("bad query"),
                    "401": error_response("wrong token"),
                },
            }
        },
        "/api/replies": {
            "post": _op(
                "A reply received on another channel (opt-out words honoured)",
                {"200": ok200},
                400,
                413,
                415,
                422,
                body="DeliveryReply",
            )
        },
    }
    schemas: dict[str, Any] = {
        "DeliveryEnterprise": SCHEMAS["enterprise"],
        "DeliveryCall": SCHEMAS["call"],
        "DeliveryVerify": SCHEMAS["verify"],
        "DeliveryReply": REPLY_SCHEMA,
        "DeliveryEstimate": ESTIMATE_SCHEMA,
    }
    for seg, (kind, _idf, writer) in KINDS.items():
        base, item = f"{ei}/{seg}", f"{ei}/{seg}/{{id}}"
        r.add_get(base, _list(seg))
        r.add_post(base, _create(seg))
        r.add_get(item, _get(seg))
        r.add_put(item, _put(seg))
        r.add_delete(item, _delete(seg))
        ref = "Delivery" + kind.capitalize()
        schemas[ref] = SCHEMAS[kind]
        extra = (403,) if writer == "operator" else ()
        paths[base] = {
            "get": _op(f"List {seg}", {"200": ok200}, 404, params=E),
            "post": _op(
                f"Create a {kind}", {"201": ok201}, 400, 404, 409, 413, 415, 422, *extra, params=E, body=ref
            ),
        }
        paths[item] = {
            "get": _op(f"Get a {kind}", {"200": ok200}, 404, params=("eid", "id")),
            "put": _op(
                f"Replace a {kind}",
                {"200": ok200},
                400,
                404,
                409,
                413,
                415,
                422,
                *extra,
                params=("eid", "id"),
                body=ref,
            ),
            "delete": _op(f"Delete a {kind}", {"204": no}, 404, *extra, params=("eid", "id")),
        }
    paths.update(reports_page.setup(app))
    add_paths(app, paths, schemas)
