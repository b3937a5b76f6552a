"""The chatbot's HTTP side: MaaP webhooks in, the outbox worker out (see docs/chatbot.md).

Routes, per bot (`{bot}` = a folder under chatbots/):
  GET  /maap/{bot}/notifyPath                                  CT/CU URL check (echoStr, appId)
  POST /maap/{bot}/messageNotification/{chatbotId}/messages   CT/CU user message
  POST /maap/{bot}/deliveryNotification/{chatbotId}/status    CT/CU status of our messages
  POST /maap/{bot}/events                                      GSMA MaaP (FNW.11) webhook JSON
Every callback is authenticated on the raw body before it is parsed (401), then validated
against the JSON Schema of its dialect (400 naming the JSON path), then handled exactly once
(chatbot/engine.py) and acknowledged with the body the platform expects.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from chatbot import cmxml
from chatbot.auth import AuthError, WebhookAuth
from chatbot.engine import Busy, Engine
from chatbot.events import BadEvent, InboundEvent, from_csp_message, from_csp_status, from_gsma, schema_text
from chatbot.flows import FlowStore
from chatbot.maap import MaapClient, SendResult
from chatbot.outbox import OutboxWorker
from chatbot.store import CommitResult, Store, open_store

from . import jsonio
from .http_errors import json_error, raise_json
from .keys import chatbot_listeners_key, metrics_key, settings_key, templates_key
from .metrics import Counter
from .openapi import add_paths, error_response, json_response

log = logging.getLogger("mingpian.chatbot")


class Chatbot:
    """Everything the routes need, built at startup (cleanup_ctx) and torn down at shutdown."""

    def __init__(self, flows: FlowStore, auth: WebhookAuth, store: Store, engine: Engine,
                 worker: OutboxWorker, app_id: str) -> None:
        self.flows = flows
        self.auth = auth
        self.store = store
        self.engine = engine
        self.worker = worker
        self.app_id = app_id


chatbot_key = web.AppKey("chatbot", Chatbot)
flows_key = web.AppKey("chatbot_flows", FlowStore)
turns_key = web.AppKey("chatbot_turns", Counter)
sends_key = web.AppKey("chatbot_sends", Counter)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    s = app[settings_key]
    flows = app[flows_key]
    for bot, err in flows.errors.items():
        log.error("chatbot %s not loaded: %s", bot, err)
    try:
        store = open_store(s.store, sqlite_path=s.data_dir / "chatbot.sqlite3", redis_url=s.redis_url,
                           sync=s.sqlite_synchronous, dedupe_ttl=s.dedupe_ttl)
        await store.open()
    except (ValueError, OSError, ConnectionError) as exc:  # redis errors subclass ConnectionError
        raise SystemExit(f"chatbot store {s.store!r} cannot start: {exc}") from None
    if s.maap_dialect not in ("csp", "gsma"):
        raise SystemExit(f"MINGPIAN_MAAP_DIALECT={s.maap_dialect!r}: expected csp or gsma")
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max(8, s.outbox_concurrency)))
    shared = store.tokens() if hasattr(store, "tokens") else None  # one token for all processes
    maap = MaapClient(session, s.maap_url, app_id=s.maap_app_id, app_key=s.maap_app_key,
                      dialect=s.maap_dialect, token_url=s.maap_token_url, timeout=s.maap_timeout,
                      shared=shared) if s.maap_url else None

    async def send(body: dict[str, Any]) -> SendResult:
        if maap is None:
            return SendResult("retry", "no MaaP configured (MINGPIAN_MAAP_URL)", 60.0)
        return await maap.send(body)

    async def prune() -> None:
        await store.prune(time.time(), s.dedupe_ttl, 7 * 86400)

    sends = app[sends_key]

    async def counted(body: dict[str, Any]) -> SendResult:
        result = await send(body)
        sends.inc(result.outcome)
        return result

    worker = OutboxWorker(store, counted, concurrency=s.outbox_concurrency, lease=s.outbox_lease,
                          base_backoff=s.outbox_backoff, max_backoff=s.outbox_max_backoff, prune=prune)
    engine = Engine(flows, app[templates_key], store, worker.wake)
    auth = WebhookAuth(s.webhook_csp_token, s.webhook_username, s.webhook_password, s.webhook_bearer,
                       s.webhook_hmac_secret, s.webhook_replay_window)
    app[chatbot_key] = Chatbot(flows, auth, store, engine, worker, s.webhook_app_id)
    worker.start()
    try:
        yield
    finally:
        await worker.stop()
        if maap is not None:
            await maap.close()
        await session.close()
        await store.close()


async def _authenticated(request: web.Request) -> tuple[Chatbot, bytes]:
    """The raw body, once the caller proved who it is; 401 otherwise, 404 for unknown bots."""
    bot = request.app[chatbot_key]
    raw = await request.read()
    try:
        bot.auth.verify(request.headers, raw)
    except AuthError as exc:
        raise_json(401, "unauthorized", str(exc))
    if bot.flows.get(request.match_info["bot"]) is None:
        raise_json(404, "unknown_bot", f"no chatbot named {request.match_info['bot']!r}", "bot")
    return bot, raw


def _parse(raw: bytes) -> Any:
    """orjson: strict UTF-8, depth-limited (1024) by the parser itself, ~10x the stdlib's speed."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise_json(400, "invalid_json", f"malformed JSON: {exc}"[:300], "$")


def _bad_event(exc: BadEvent) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json_error(400, "invalid_event", str(exc), exc.problems).text,
                              content_type="application/json")


async def _run(request: web.Request, bot: Chatbot, name: str, event: InboundEvent) -> CommitResult | None:
    if event.kind == "status":
        await bot.store.record_status(list(event.statuses), time.time())
        return None
    if event.kind == "other":
        request.app[turns_key].inc(name, "ignored")
        return None
    try:
        result = await bot.engine.handle(name, event)
        request.app[turns_key].inc(name, result.value)
    except Busy as exc:
        raise web.HTTPServiceUnavailable(
            text=jsonio.dumps({"error": "busy", "message": str(exc)}).decode(),
            content_type="application/json",
            headers={"Retry-After": "1"}) from None
    if event.kind in ("text", "postback"):
        await _tell_listeners(request.app, name, event)
    return result


async def _tell_listeners(app: web.Application, name: str, event: InboundEvent) -> None:
    """Other features hear the user's text or tap after the turn committed — a repeat too, so a
    listener that failed (or a crash before it ran) catches up on the platform's retry; they are
    idempotent per message ID. Awaited before the answer, so what they store (an opt-out) is
    durable before the platform is told. One listener's failure neither fails the webhook (the
    turn is committed) nor stops the others."""
    for listener in app.get(chatbot_listeners_key, ()):
        try:
            await listener(app, name, event)
        except Exception:
            log.exception("chatbot listener %r failed for %s", listener, event.message_id)


async def notify_path(request: web.Request) -> web.Response:
    bot, _ = await _authenticated(request)
    headers = {"echoStr": request.headers.get("echoStr", ""), "appId": bot.app_id}
    return jsonio.json_response({"errorCode": 0, "errorMessage": ""}, headers=headers)


async def csp_message(request: web.Request) -> web.Response:
    bot, raw = await _authenticated(request)
    body = _parse(raw)
    try:
        event = from_csp_message(body, request.match_info["chatbotId"])
    except BadEvent as exc:
        raise _bad_event(exc) from None
    await _run(request, bot, request.match_info["bot"], event)
    return jsonio.json_response({"messageId": event.message_id, "conversationId": event.conversation_id,
                  "contributionId": event.contribution_id, "errorCode": 0, "errorMessage": ""})


async def csp_status(request: web.Request) -> web.Response:
    bot, raw = await _authenticated(request)
    body = _parse(raw)
    try:
        reports = from_csp_status(body)
    except BadEvent as exc:
        raise _bad_event(exc) from None
    await bot.store.record_status(reports, time.time())
    return jsonio.json_response({"errorCode": 0, "errorMessage": ""})


async def gsma_event(request: web.Request) -> web.Response:
    bot, raw = await _authenticated(request)
    body = _parse(raw)
    name = request.match_info["bot"]
    try:
        event = from_gsma(body, bot.flows.flows[name].chatbot or name)
    except BadEvent as exc:
        raise _bad_event(exc) from None
    await _run(request, bot, name, event)
    return jsonio.json_response({"status": "ok"})


async def cm_inbound(request: web.Request) -> web.Response:
    """China Mobile XML user message; 204 as OMA NetAPI notification receivers answer."""
    bot, raw = await _authenticated(request)
    log.debug("CM inbound traceUniqueID=%s", request.headers.get("traceUniqueID", ""))
    try:
        event = cmxml.inbound(raw, request.match_info["chatbotURI"])
    except BadEvent as exc:
        raise _bad_event(exc) from None
    await _run(request, bot, request.match_info["bot"], event)
    return web.Response(status=204)


async def cm_status(request: web.Request) -> web.Response:
    bot, raw = await _authenticated(request)
    try:
        reports = cmxml.delivery(raw)
    except BadEvent as exc:
        raise _bad_event(exc) from None
    await bot.store.record_status(reports, time.time())
    return web.Response(status=204)


async def message_status(request: web.Request) -> web.Response:
    """Where one of our replies is: queued, sent, failed, and the platform's latest report."""
    info = await request.app[chatbot_key].store.message(request.match_info["messageId"])
    if info is None:
        raise_json(404, "unknown_message", "no outbound message with that ID", "messageId")
    # The conversation key embeds the user's number; this route has no per-user auth, so
    # the number is shown masked (138****8000), as support staff would see it.
    if isinstance(info.get("conversation"), str):
        info = {**info, "conversation": _PHONE.sub(_mask_digits, info["conversation"])}
    return jsonio.json_response(info)


_PHONE = re.compile(r"\+?\d{7,}")


def _mask_digits(m: re.Match[str]) -> str:
    digits = m.group(0)
    return digits[:-8] + "****" + digits[-4:]


async def list_bots(request: web.Request) -> web.Response:
    flows = request.app[flows_key]
    bots = [{"name": n, "title": f.title, "chatbot": f.chatbot, "nodes": list(f.nodes), "ok": True}
            for n, f in flows.flows.items()]
    bots += [{"name": n, "ok": False, "error": e.to_json()} for n, e in flows.errors.items()]
    return jsonio.json_response({"bots": bots, "store": request.app[settings_key].store})


# ---- OpenAPI -------------------------------------------------------------------------------

def _p(name: str, desc: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": desc}


BOT = _p("bot", "chatbot folder name under chatbots/")
CHATBOT_ID = _p("chatbotId", "the platform's chatbot URI, e.g. sip:106500@botplatform.rcs.chinaunicom.cn")
CM_URI = _p("chatbotURI", "the chatbot URI, URL-encoded, as China Mobile sends it")
XML_BODY = {"required": True, "content": {"application/xml": {"schema": {
    "type": "string", "description": "msg:inboundMessageNotification / msg:deliveryInfoNotification "
    "(urn:oma:xml:rest:netapi:messaging:1); see docs/chatbot.md"}}}}
AUTH_401 = error_response("credentials missing or wrong (checked before the body is read as JSON)")
ACK = {"type": "object", "required": ["errorCode", "errorMessage"],
       "properties": {"messageId": {"type": "string"}, "conversationId": {"type": "string"},
                      "contributionId": {"type": "string"}, "errorCode": {"type": "integer"},
                      "errorMessage": {"type": "string"}}}


def _document(app: web.Application) -> None:
    def body(schema: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}}

    common = {"401": AUTH_401, "404": error_response("unknown bot"),
              "400": error_response("not JSON, or not a valid event: problems name the JSON path")}
    paths: dict[str, dict[str, Any]] = {
        "/maap/{bot}/notifyPath": {"get": {
            "summary": "CT/CU notify URL check: echoes the echoStr header, returns the appId header",
            "parameters": [BOT], "responses": {"200": json_response("URL verified", ACK), "401": AUTH_401,
                                               "404": error_response("unknown bot")}}},
        "/maap/{bot}/messageNotification/{chatbotId}/messages": {"post": {
            "summary": "CT/CU user message (text, tap with postback, location, file)",
            "parameters": [BOT, CHATBOT_ID], "requestBody": body("CspMessageNotification"),
            "responses": {"200": json_response("handled (or recognised as a repeat) and committed", ACK),
                          "503": error_response("conversation too contended; retry"), **common}}},
        "/maap/{bot}/deliveryNotification/{chatbotId}/status": {"post": {
            "summary": "CT/CU delivery/read status of the chatbot's messages",
            "parameters": [BOT, CHATBOT_ID], "requestBody": body("CspDeliveryNotification"),
            "responses": {"200": json_response("recorded", ACK), **common}}},
        "/maap/{bot}/events": {"post": {
            "summary": "GSMA MaaP (FNW.11) webhook event: message, response, messageStatus, ...",
            "parameters": [BOT], "requestBody": body("GsmaEvent"),
            "responses": {"200": json_response("handled", {"type": "object"}),
                          "503": error_response("conversation too contended; retry"), **common}}},
        "/maap/{bot}/InboundMessageNotification/{chatbotURI}": {"post": {
            "summary": "China Mobile (OMA NetAPI) XML user message; parsed without DTDs or entities",
            "parameters": [BOT, CM_URI], "requestBody": XML_BODY,
            "responses": {"204": {"description": "handled (or recognised as a repeat) and committed"},
                          "503": error_response("conversation too contended; retry"), **common}}},
        "/maap/{bot}/DeliveryInfoNotification/{chatbotURI}": {"post": {
            "summary": "China Mobile XML delivery status of the chatbot's messages",
            "parameters": [BOT, CM_URI], "requestBody": XML_BODY,
            "responses": {"204": {"description": "recorded"}, **common}}},
        "/maap/{bot}/MessageStatusNotification/{chatbotURI}": {"post": {
            "summary": "China Mobile XML message status (e.g. revoke results)",
            "parameters": [BOT, CM_URI], "requestBody": XML_BODY,
            "responses": {"204": {"description": "recorded"}, **common}}},
        "/api/chatbot/bots": {"get": {
            "summary": "Loaded chatbot flows (and flows that failed to load, with file:line)",
            "responses": {"200": json_response("bots", {"type": "object", "required": ["bots"]})}}},
        "/api/chatbot/messages/{messageId}": {"get": {
            "summary": "Delivery state of one outbound message (queued/sent/failed, platform status)",
            "parameters": [_p("messageId", "our stable outbound message ID")],
            "responses": {"200": json_response("message", {"type": "object", "required": ["messageId"]}),
                          "404": error_response("no such message")}}},
    }
    schemas = {}
    for name, file in (("CspMessageNotification", "csp-message"), ("CspDeliveryNotification", "csp-status"),
                       ("GsmaEvent", "gsma-event")):
        sch = schema_text(file)
        sch.pop("$schema", None)
        sch.pop("$id", None)
        if "$defs" in sch:  # make local refs resolvable inside components
            defs = sch.pop("$defs")
            text = json.dumps(sch).replace('"#/$defs/', f'"#/components/schemas/{name}Defs/')
            sch = json.loads(text)
            schemas[f"{name}Defs"] = defs
        schemas[name] = sch
    add_paths(app, paths, schemas)


def setup(app: web.Application) -> None:
    settings = app[settings_key]
    app[flows_key] = FlowStore(settings.chatbot_dir)
    app[turns_key] = Counter("mingpian_chatbot_events_total",
                             "Webhook events by bot and result (ok, duplicate, ignored)", ("bot", "result"))
    app[sends_key] = Counter("mingpian_chatbot_sends_total",
                             "Attempts to deliver a reply to the MaaP, by outcome (ok, retry, fail)",
                             ("outcome",))
    app[metrics_key].register(app[turns_key])
    app[metrics_key].register(app[sends_key])
    app.setdefault(chatbot_listeners_key, [])
    r = app.router
    r.add_get("/maap/{bot}/notifyPath", notify_path, name="maap-notify-path")
    r.add_post("/maap/{bot}/messageNotification/{chatbotId}/messages", csp_message, name="maap-csp-message")
    r.add_post("/maap/{bot}/deliveryNotification/{chatbotId}/status", csp_status, name="maap-csp-status")
    r.add_post("/maap/{bot}/events", gsma_event, name="maap-gsma-event")
    r.add_post("/maap/{bot}/InboundMessageNotification/{chatbotURI}", cm_inbound, name="maap-cm-inbound")
    r.add_post("/maap/{bot}/DeliveryInfoNotification/{chatbotURI}", cm_status, name="maap-cm-delivery")
    r.add_post("/maap/{bot}/MessageStatusNotification/{chatbotURI}", cm_status, name="maap-cm-status")
    r.add_get("/api/chatbot/bots", list_bots, name="chatbot-bots")
    r.add_get("/api/chatbot/messages/{messageId}", message_status, name="chatbot-message")
    app.cleanup_ctx.append(_lifecycle)
    _document(app)
