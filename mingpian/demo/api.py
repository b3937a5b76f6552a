"""The demo's HTTP side, for the console's 模拟来电 page: its phones, what each received as the
simulators saw it (read back from them, never made up here), and a person's answer typed on a
phone, sent as the simulated network would carry it (a 5G tap or text through the MaaP, a
number through the SMSC as a mobile-originated SMS). Signed in only, like the rest of the API."""

from __future__ import annotations

import hmac
import re
from typing import Any

from aiohttp import web

from delivery.keys import principal_of
from mingpian.api.delivery.access import principal
from mingpian.api.delivery.session import start_session, with_cookie
from mingpian.api.delivery.state import delivery_key
from mingpian.errors import ApiError
from mingpian.httpjson import json_response, read_json_body

from .network import Network, demo_key, network_key
from .phones import ENTERPRISE, HOTLINE, LINE, PAGE, PHONES, DemoPhone

once_used_key = web.AppKey("demo_once_used", list)  # not empty once the link was followed


def _net(request: web.Request) -> Network:
    net = request.app.get(network_key)
    if net is None:
        raise ApiError(404, "not_found", "the demo is not running")
    return net


def _phone(number: str) -> DemoPhone:
    for p in PHONES:
        if p.number == number:
            return p
    raise ApiError(404, "not_found", f"no demo phone {number!r}", path="number")


async def get_demo(request: web.Request) -> web.Response:
    _net(request)
    p = await principal(request)
    if not p.may_see(ENTERPRISE):
        raise ApiError(404, "not_found", "the demo is not running")
    return json_response(
        {
            "enterprise": ENTERPRISE,
            "lines": [
                {"number": LINE, "name": "快递员李明的手机"},
                {"number": HOTLINE, "name": "客服热线"},
            ],
            "phones": [
                {"number": x.number, "name": x.name, "shows": x.shows, "kind": x.kind} for x in PHONES
            ],
        }
    )


def _texts(node: Any, out: list[str]) -> list[str]:
    """The words a vendor's card template shows (its text, titles and buttons), in order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("content", "title", "text", "description", "buttonText") and isinstance(value, str):
                out.append(value)
            else:
                _texts(value, out)
    elif isinstance(node, list):
        for item in node:
            _texts(item, out)
    return out


_PARAM = re.compile(r"\{\{(\w+)\}\}")


def _filled(text: str, params: dict[str, Any]) -> str:
    """A template's text with the person's values (the parse link's `dync_params`) in place."""
    return _PARAM.sub(lambda m: str(params.get(m.group(1), "")), text)


def inbox(net: Network, number: str) -> list[dict[str, Any]]:
    """What reached `number`, oldest first, on every channel, as each simulator recorded it."""
    national = number.removeprefix("+86")
    out: list[dict[str, Any]] = []
    for r in net.maap.received:
        if r.user == "tel:" + number:
            out.append(
                {"channel": "rcs", "at": r.at, "kind": r.kind, "messageList": r.body.get("messageList", [])}
            )
    drawn = {
        link.code: link for link in net.cardsms.links.values() if link.mobile == national and link.rendered
    }
    for s in net.smsc.submitted(destination=national):
        item = {"channel": s["channel"], "at": s["at"], "text": s["text"], "failed": s["action"] != "deliver"}
        if s["udh"].startswith(("050003", "060804")):  # a part of a long SMS: its reference
            item["concat"] = s["udh"][6:8] if s["udh"].startswith("05") else s["udh"][6:10]
        for code, link in drawn.items():
            if code in s["text"]:
                tpl = net.cardsms.templates.get(link.tpl_id)
                texts = [_filled(t, link.params) for t in _texts(tpl.body, [])] if tpl else []
                item["card_sms"] = {"template": link.tpl_id, "texts": [t for t in texts if t]}
        out.append(item)
    out.sort(key=lambda m: m["at"])
    return _joined(out)


def _joined(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of a long SMS (one concatenation reference in their UDH) as the one message a
    phone shows."""
    out: list[dict[str, Any]] = []
    parts: dict[str, dict[str, Any]] = {}
    for m in messages:
        ref = m.pop("concat", "")
        if ref and ref in parts:
            parts[ref]["text"] += m["text"]
            continue
        if ref:
            parts[ref] = m
        out.append(m)
    return out


async def get_inbox(request: web.Request) -> web.Response:
    net = _net(request)
    await principal(request)
    phone = _phone(request.match_info["number"])
    messages = inbox(net, phone.number)
    for r in net.maap.received:  # what the page shows, the phone displayed: the platform says so
        if r.user == "tel:" + phone.number and r.kind == "card" and r.message_id not in net.displayed:
            net.displayed.add(r.message_id)
            await net.maap.report(r.message_id, "displayed")
    return json_response({"number": phone.number, "messages": messages})


async def post_reply(request: web.Request) -> web.Response:
    """`{"postback": …}` (a 5G button) or `{"text": …, "line": …}` (a typed answer)."""
    net = _net(request)
    await principal(request)
    phone = _phone(request.match_info["number"])
    body = await read_json_body(request, 8)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "请求内容须为一个 JSON 对象", path="$")
    postback, text = body.get("postback"), body.get("text")
    if phone.kind == "rcs":
        user = "tel:" + phone.number
        if isinstance(postback, str) and postback:
            status = await net.maap.tap(user, postback)
        elif isinstance(text, str) and text.strip():
            status = await net.maap.say(user, text.strip())
        else:
            raise ApiError(422, "invalid", "回复：postback 或 text 必填", path="$.text")
        return json_response({"sent": status == 200, "via": "maap"})
    if not isinstance(text, str) or not text.strip():
        raise ApiError(422, "invalid", "回复内容（text）必填", path="$.text")
    line = str(body.get("line") or LINE).removeprefix("+86")
    net.smsc.send_mo(phone.number.removeprefix("+86"), line, text.strip())
    return json_response({"sent": True, "via": "smsc"})


async def sign_in_once(request: web.Request) -> web.Response:
    """The link printed at start: the operator signed in, once, and sent to 模拟来电; used or
    wrong, the console's sign-in form (the printed key still works)."""
    demo = request.app[demo_key]
    page = web.Response(status=303, headers={"Location": PAGE, "Cache-Control": "no-store"})
    used = request.app[once_used_key]
    if used or not hmac.compare_digest(request.match_info["once"].encode(), demo.once.encode()):
        return page
    used.append(True)
    principal = await principal_of(request.app[delivery_key].store, demo.operator_key)
    if principal is None:
        return page
    _, token = await start_session(request, demo.operator_key, principal)
    return with_cookie(request, page, token)


def routes(app: web.Application) -> None:
    app[once_used_key] = []
    app.router.add_get("/console/demo/{once}", sign_in_once)
    app.router.add_get("/api/demo", get_demo)
    app.router.add_get("/api/demo/phones/{number}", get_inbox)
    app.router.add_post("/api/demo/phones/{number}/reply", post_reply)
