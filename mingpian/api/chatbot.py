"""The chatbot's HTTP side: MaaP webhooks into the chatbot runtime (chatbot/runtime.py; docs/chatbot.md).

Routes, per bot (`{bot}` = a folder under chatbots/):
  GET  /maap/{bot}/notifyPath                                  CT/CU URL check (echoStr, appId)
  POST /maap/{bot}/messageNotification/{chatbotId}/messages   CT/CU user message
  POST /maap/{bot}/deliveryNotification/{chatbotId}/status    CT/CU status of our messages
  POST /maap/{bot}/notifyInfoNotification/{chatbotId}/check   CT/CU review of media, info, messages
  POST /maap/{bot}/auditnotification                          China Mobile's media audit result
  POST /maap/{bot}/events                                      GSMA MaaP (FNW.11) webhook JSON
  GET  /api/chatbot/bots/{bot}/information                     the bot's information: in use, under review
  POST /api/chatbot/bots/{bot}/information                     submit an update to the carrier (operator)
Every callback is authenticated on the raw body before it is parsed (401), then validated
against the JSON Schema of its dialect (400 naming the JSON path), then handled exactly once
and acknowledged with the body the platform expects — all by the runtime's `inbound`; this
module only maps HTTP to it and its refusals to JSON errors.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from aiohttp import web

from chatbot import botinfo
from chatbot.events import schema_text
from chatbot.flows import FlowStore
from chatbot.hosting import Resolver
from chatbot.runtime import ChatbotRuntime, Dialect, RuntimeConfig
from chatbot.settings import ChatbotSettings
from infra.settingrow import config_from

from ..clientaddr import client_address
from ..errors import ApiError
from ..httpjson import json_response, read_json_body
from ..keys import flows_key, metrics_key, settings_key, templates_key
from ..metrics import Counter
from ..openapi import add_paths, error_response
from ..openapi import json_response as doc_json
from ..settings import Settings
from .delivery.access import principal, require_operator
from .delivery.ops import op

log = logging.getLogger("mingpian.chatbot")

runtime_key = web.AppKey("chatbot_runtime", ChatbotRuntime)
turns_key = web.AppKey("chatbot_turns", Counter)
sends_key = web.AppKey("chatbot_sends", Counter)


def runtime_config(s: Settings, media: Resolver | None = None) -> RuntimeConfig:
    """The chatbot's rows read by name; its files kept in the data folder; `media` finds the
    files behind our own media URLs (for uploads to the MaaP)."""
    return RuntimeConfig.of(
        config_from(ChatbotSettings, s),
        s.data_dir / "chatbot.sqlite3",
        media=media,
        media_dir=s.data_dir / "hosted",
    )


async def _lifecycle(
    app: web.Application, media: Callable[[web.Application], Resolver] | None
) -> AsyncIterator[None]:
    s = app[settings_key]
    flows = app[flows_key]
    for bot, err in flows.errors.items():
        log.error("chatbot %s not loaded: %s", bot, err)
    turns, sends = app[turns_key], app[sends_key]
    try:
        runtime = ChatbotRuntime(
            flows,
            app[templates_key],
            runtime_config(s, media(app) if media is not None else None),
            on_turn=lambda bot, result: turns.inc(bot, result),
            on_send=sends.inc,
        )
        await runtime.start()
    except (ValueError, OSError, ConnectionError) as exc:  # redis errors subclass ConnectionError
        raise SystemExit(f"chatbot store {s.store!r} cannot start: {exc}") from None
    app[runtime_key] = runtime
    try:
        yield
    finally:
        await runtime.close()


def _handler(dialect: Dialect) -> Any:
    """One handler per dialect: the raw body to the runtime's inbound door, its Ack back."""

    async def handle(request: web.Request) -> web.Response:
        runtime = request.app[runtime_key]
        raw = await request.read()
        # Its refusals (AuthError, UnknownBot, MalformedBody, BadEvent, Busy) are answered
        # through the domain-error table of mingpian/errors.py.
        ack = await runtime.inbound(
            dialect,
            request.match_info["bot"],
            request.headers,
            raw,
            request.match_info,
            client_address(request),
        )
        if ack.body is None:
            return web.Response(status=ack.status, headers=ack.headers)
        return json_response(ack.body, status=ack.status, headers=ack.headers or None)

    return handle


notify_path = _handler("csp-notify")
csp_message = _handler("csp-message")
csp_status = _handler("csp-status")
gsma_event = _handler("gsma")
cm_inbound = _handler("cm-message")
cm_status = _handler("cm-status")
csp_check = _handler("csp-check")
cm_audit = _handler("cm-audit")


async def message_status(request: web.Request) -> web.Response:
    """Where one of our replies is: queued, sent, failed, and the platform's latest report.
    Support's view of every bot's messages: it needs the operator's API key."""
    require_operator(await principal(request))
    info = await request.app[runtime_key].message(request.match_info["messageId"])
    if info is None:
        raise ApiError(404, "unknown_message", "no outbound message with that ID", path="messageId")
    # The conversation key embeds the user's number; shown masked (138****8000), as support
    # staff would see it.
    if isinstance(info.get("conversation"), str):
        info = {**info, "conversation": _PHONE.sub(_mask_digits, info["conversation"])}
    return json_response(info)


_PHONE = re.compile(r"\+?\d{7,}")


def _mask_digits(m: re.Match[str]) -> str:
    digits = m.group(0)
    return digits[:-8] + "****" + digits[-4:]


def _chatbot_of(request: web.Request) -> str:
    """The platform's chatbot URI of the `{bot}` folder (404 for no such bot)."""
    bot = request.match_info["bot"]
    flow = request.app[flows_key].get(bot)
    if flow is None:
        raise ApiError(404, "unknown_bot", f"no chatbot named {bot!r}", path="bot")
    return flow.chatbot or bot


async def bot_information(request: web.Request) -> web.Response:
    """What the carrier passed (in use) and the update it reviews or refused, with its reason."""
    require_operator(await principal(request))
    chatbot = _chatbot_of(request)
    view = await request.app[runtime_key].information(chatbot)
    return json_response({"bot": request.match_info["bot"], "chatbot": chatbot, **view})


async def submit_information(request: web.Request) -> web.Response:
    """Send an update of the bot's description or menu to its platform; it waits for the
    carrier, and is used only once passed."""
    require_operator(await principal(request))
    chatbot = _chatbot_of(request)
    data = await read_json_body(request, request.app[settings_key].max_json_depth)
    problems = botinfo.problems(data)
    if problems:
        first = problems[0]
        raise ApiError(422, "invalid", f"information: {first['path']}: {first['message']}", problems=problems)
    view = await request.app[runtime_key].submit_information(chatbot, data)
    return json_response({"bot": request.match_info["bot"], "chatbot": chatbot, **view}, status=202)


async def list_bots(request: web.Request) -> web.Response:
    flows = request.app[flows_key]
    bots = [
        {"name": n, "title": f.title, "chatbot": f.chatbot, "nodes": list(f.nodes), "ok": True}
        for n, f in flows.flows.items()
    ]
    bots += [{"name": n, "ok": False, "error": e.to_json()} for n, e in flows.errors.items()]
    return json_response({"bots": bots, "store": request.app[settings_key].store})


# ---- OpenAPI -------------------------------------------------------------------------------


def _p(name: str, desc: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": desc}


BOT = _p("bot", "chatbot folder name under chatbots/")
CHATBOT_ID = _p("chatbotId", "the platform's chatbot URI, e.g. sip:106500@botplatform.rcs.chinaunicom.cn")
CM_URI = _p("chatbotURI", "the chatbot URI, URL-encoded, as China Mobile sends it")
XML_BODY = {
    "required": True,
    "content": {
        "application/xml": {
            "schema": {
                "type": "string",
                "description": "msg:inboundMessageNotification / msg:deliveryInfoNotification "
                "(urn:oma:xml:rest:netapi:messaging:1); see docs/chatbot.md",
            }
        }
    },
}
# The schemes each dialect's routes take by default (webhook_*_schemes settings change them).
CSP_SECURITY = [{"cspSignature": []}, {"hmacSignature": []}]
GSMA_SECURITY = [{"maapBearer": []}, {"hmacSignature": []}]
CM_SECURITY = [{"cmUsernamePassword": []}, {"hmacSignature": []}]
FORBIDDEN_403 = error_response("the caller's address is outside the networks allowed for this dialect")
AUTH_401 = error_response("credentials missing or wrong (checked before the body is read as JSON)")
ACK = {
    "type": "object",
    "required": ["errorCode", "errorMessage"],
    "properties": {
        "messageId": {"type": "string"},
        "conversationId": {"type": "string"},
        "contributionId": {"type": "string"},
        "errorCode": {"type": "integer"},
        "errorMessage": {"type": "string"},
    },
}


CHECK = {
    "type": "object",
    "required": ["type", "result", "remark"],
    "properties": {
        "type": {"enum": ["media", "chatbotInformation", "message"]},
        "result": {"enum": ["pass", "fail"]},
        "time": {"type": "string", "description": "'YY-MM-DD HH:MM:SS' (Beijing time) or ISO 8601"},
        "description": {"type": "string"},
        "remark": {"type": "string", "description": "url:<file url> | chatbotId: sip:… | messageId: …"},
        "fileInfo": {"type": "object", "description": "seen from real platforms; read leniently"},
    },
}
_UPDATE = {
    "type": ["object", "null"],
    "required": ["id", "information", "state", "since"],
    "properties": {
        "id": {"type": "string"},
        "information": {"type": "object"},
        "state": {"enum": ["waiting", "refused"]},
        "since": {"type": "number", "description": "Unix time it was submitted"},
        "decidedAt": {"type": "number"},
        "description": {"type": "string", "description": "the carrier's reason for refusing it"},
    },
}
INFORMATION = {
    "type": "object",
    "required": ["bot", "chatbot", "current", "pending"],
    "properties": {
        "bot": {"type": "string"},
        "chatbot": {"type": "string"},
        "current": {
            "type": ["object", "null"],
            "description": "the information in use: every update the carrier passed, merged",
            "properties": {"information": {"type": "object"}, "approvedAt": {"type": "number"}},
        },
        "pending": _UPDATE,
    },
}
AUDIT = {
    "type": "object",
    "properties": {
        "file-info": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "data": {
                        "type": "object",
                        "properties": {"url": {"type": "string"}, "until": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def _document(app: web.Application) -> None:
    def body(schema: str) -> dict[str, Any]:
        return {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }

    common = {
        "401": AUTH_401,
        "403": FORBIDDEN_403,
        "404": error_response("unknown bot"),
        "400": error_response("not JSON, or not a valid event: problems name the JSON path"),
    }
    paths: dict[str, dict[str, Any]] = {
        "/maap/{bot}/notifyPath": {
            "get": {
                "security": CSP_SECURITY,
                "summary": "CT/CU notify URL check: echoes the echoStr header, returns the appId header",
                "parameters": [BOT],
                "responses": {
                    "200": doc_json("URL verified", ACK),
                    "401": AUTH_401,
                    "403": FORBIDDEN_403,
                    "404": error_response("unknown bot"),
                },
            }
        },
        "/maap/{bot}/messageNotification/{chatbotId}/messages": {
            "post": {
                "security": CSP_SECURITY,
                "summary": "CT/CU user message (text, tap with postback, location, file)",
                "parameters": [BOT, CHATBOT_ID],
                "requestBody": body("CspMessageNotification"),
                "responses": {
                    "200": doc_json("handled (or recognised as a repeat) and committed", ACK),
                    "503": error_response(
                        "conversation too contended, or its store (Redis, PostgreSQL) away; retry"
                    ),
                    **common,
                },
            }
        },
        "/maap/{bot}/deliveryNotification/{chatbotId}/status": {
            "post": {
                "security": CSP_SECURITY,
                "summary": "CT/CU delivery/read status of the chatbot's messages",
                "parameters": [BOT, CHATBOT_ID],
                "requestBody": body("CspDeliveryNotification"),
                "responses": {"200": doc_json("recorded", ACK), **common},
            }
        },
        "/maap/{bot}/notifyInfoNotification/{chatbotId}/check": {
            "post": {
                "security": CSP_SECURITY,
                "summary": "CT/CU review result of uploaded media, chatbot information or a message; "
                "a decision about nothing we know is acknowledged and changes nothing",
                "parameters": [BOT, CHATBOT_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": CHECK}}},
                "responses": {
                    "200": doc_json("applied (a repeat changes nothing)", ACK),
                    **common,
                    "400": error_response(
                        "not a check notification (problems name the field); `invalid_time`: time "
                        "in neither 'YY-MM-DD HH:MM:SS' nor ISO 8601"
                    ),
                },
            }
        },
        "/maap/{bot}/auditnotification": {
            "post": {
                "security": CM_SECURITY,
                "summary": "China Mobile media audit result: headers tid (the upload's) and Authstatus "
                "(0 pass, 1 reject); the body's file-info names the URL to send",
                "parameters": [
                    BOT,
                    {"name": "tid", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "Authstatus", "in": "header", "required": True, "schema": {"enum": ["0", "1"]}},
                ],
                "requestBody": {"required": False, "content": {"application/json": {"schema": AUDIT}}},
                "responses": {"204": {"description": "applied (a repeat changes nothing)"}, **common},
            }
        },
        "/maap/{bot}/events": {
            "post": {
                "security": GSMA_SECURITY,
                "summary": "GSMA MaaP (FNW.11) webhook event: message, response, messageStatus, ...",
                "parameters": [BOT],
                "requestBody": body("GsmaEvent"),
                "responses": {
                    "200": doc_json("handled", {"type": "object"}),
                    "503": error_response(
                        "conversation too contended, or its store (Redis, PostgreSQL) away; retry"
                    ),
                    **common,
                },
            }
        },
        "/maap/{bot}/InboundMessageNotification/{chatbotURI}": {
            "post": {
                "security": CM_SECURITY,
                "summary": "China Mobile (OMA NetAPI) XML user message; parsed without DTDs or entities",
                "parameters": [BOT, CM_URI],
                "requestBody": XML_BODY,
                "responses": {
                    "204": {"description": "handled (or recognised as a repeat) and committed"},
                    "503": error_response(
                        "conversation too contended, or its store (Redis, PostgreSQL) away; retry"
                    ),
                    **common,
                },
            }
        },
        "/maap/{bot}/DeliveryInfoNotification/{chatbotURI}": {
            "post": {
                "security": CM_SECURITY,
                "summary": "China Mobile XML delivery status of the chatbot's messages",
                "parameters": [BOT, CM_URI],
                "requestBody": XML_BODY,
                "responses": {"204": {"description": "recorded"}, **common},
            }
        },
        "/maap/{bot}/MessageStatusNotification/{chatbotURI}": {
            "post": {
                "security": CM_SECURITY,
                "summary": "China Mobile XML message status (e.g. revoke results)",
                "parameters": [BOT, CM_URI],
                "requestBody": XML_BODY,
                "responses": {"204": {"description": "recorded"}, **common},
            }
        },
        "/api/chatbot/bots": {
            "get": {
                "summary": "Loaded chatbot flows (and flows that failed to load, with file:line)",
                "responses": {"200": doc_json("bots", {"type": "object", "required": ["bots"]})},
            }
        },
        "/api/chatbot/messages/{messageId}": {
            "get": {
                "summary": "Delivery state of one outbound message (queued/sent/failed, platform status)",
                "parameters": [_p("messageId", "our stable outbound message ID")],
                "security": [{"apiKey": []}],
                "responses": {
                    "200": doc_json("message", {"type": "object", "required": ["messageId"]}),
                    "401": error_response("no or unknown API key"),
                    "403": error_response("operator only"),
                    "404": error_response("no such message"),
                    "429": error_response("too many wrong API keys (Retry-After)"),
                },
            }
        },
    }
    read = op(
        "The bot's information on its platform: the one in use (passed by the carrier) and the "
        "update under review or refused, with the carrier's reason (operator)",
        {"200": doc_json("information", INFORMATION)},
        403,
        404,
        params=("bot",),
    )
    submit = op(
        "Submit an update of the bot's description, contact details or persistent menu to its "
        "platform (CT/CU); it waits for the carrier and is used only once passed (operator)",
        {"202": doc_json("submitted: waiting for the carrier", INFORMATION)},
        403,
        404,
        400,
        413,
        415,
        422,
        body_schema=botinfo.SCHEMA,
        params=("bot",),
    )
    submit["responses"] |= {
        "404": error_response("unknown bot"),
        "409": error_response("`info_pending`: an update of this bot's information waits for the carrier"),
        "422": error_response(
            "`invalid`: problems name each JSON path; `info_unsupported`: the bot's platform takes no "
            "information updates (China Mobile, GSMA, or no MaaP account)"
        ),
        "502": error_response(
            "`maap_refused`: the platform did not take the update (its answer in the message)"
        ),
    }
    read["responses"]["404"] = error_response("unknown bot")
    for o in (read, submit):
        o["tags"] = ["chatbot"]
    paths["/api/chatbot/bots/{bot}/information"] = {"get": read, "post": submit}
    schemas = {}
    for name, file in (
        ("CspMessageNotification", "csp-message"),
        ("CspDeliveryNotification", "csp-status"),
        ("GsmaEvent", "gsma-event"),
    ):
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


def setup(app: web.Application, media: Callable[[web.Application], Resolver] | None = None) -> None:
    """The MaaP webhooks and the chatbot API; `media(app)`, asked at start, finds the files
    behind our own media URLs (None: cards keep pointing at them)."""
    settings = app[settings_key]
    app[flows_key] = FlowStore(settings.chatbot_dir)
    app[turns_key] = Counter(
        "mingpian_chatbot_events_total",
        "Webhook events by bot and result (ok, duplicate, ignored)",
        ("bot", "result"),
    )
    app[sends_key] = Counter(
        "mingpian_chatbot_sends_total",
        "Messages handed to the MaaP (chatbot replies and 5G cards), by outcome (ok, retry, fail)",
        ("outcome",),
    )
    app[metrics_key].register(app[turns_key])
    app[metrics_key].register(app[sends_key])
    r = app.router
    r.add_get("/maap/{bot}/notifyPath", notify_path, name="maap-notify-path")
    r.add_post("/maap/{bot}/messageNotification/{chatbotId}/messages", csp_message, name="maap-csp-message")
    r.add_post("/maap/{bot}/deliveryNotification/{chatbotId}/status", csp_status, name="maap-csp-status")
    r.add_post("/maap/{bot}/events", gsma_event, name="maap-gsma-event")
    r.add_post("/maap/{bot}/InboundMessageNotification/{chatbotURI}", cm_inbound, name="maap-cm-inbound")
    r.add_post("/maap/{bot}/DeliveryInfoNotification/{chatbotURI}", cm_status, name="maap-cm-delivery")
    r.add_post("/maap/{bot}/MessageStatusNotification/{chatbotURI}", cm_status, name="maap-cm-status")
    r.add_post("/maap/{bot}/notifyInfoNotification/{chatbotId}/check", csp_check, name="maap-csp-check")
    r.add_post("/maap/{bot}/auditnotification", cm_audit, name="maap-cm-audit")
    r.add_get("/api/chatbot/bots", list_bots, name="chatbot-bots")
    r.add_get("/api/chatbot/messages/{messageId}", message_status, name="chatbot-message")
    r.add_get("/api/chatbot/bots/{bot}/information", bot_information, name="chatbot-information")
    r.add_post("/api/chatbot/bots/{bot}/information", submit_information, name="chatbot-information-submit")
    app.cleanup_ctx.append(partial(_lifecycle, media=media))
    _document(app)
