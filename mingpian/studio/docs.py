"""OpenAPI descriptions of the studio routes."""

from __future__ import annotations

from typing import Any

from ..api.docs import NAME_PARAM
from ..openapi import error_response, json_response


def _html(summary: str, op: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": op,
            "tags": ["studio"],
            "parameters": params or [],
            "responses": {
                "200": {
                    "description": "an HTML page",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                **({"404": error_response("no such template")} if params else {}),
            },
        }
    }


SCHEMAS: dict[str, Any] = {
    "Capabilities": {
        "type": "object",
        "required": ["formats", "chatbot", "bots", "chatEndpoint", "liveReload", "fonts"],
        "properties": {
            "formats": {
                "type": "array",
                "items": {"type": "string"},
                "description": "`?format=` values POST /api/templates/{name}/render accepts",
            },
            "chatbot": {"type": "boolean", "description": "chatbot flows are loaded"},
            "bots": {"type": "array", "items": {"type": "string"}},
            "chatEndpoint": {
                "type": ["string", "null"],
                "description": "where the studio sends taps (POST), when a bot runs",
            },
            "liveReload": {"type": "boolean"},
            "fonts": {
                "type": "array",
                "items": {"type": "string"},
                "description": "project fonts served under /static/fonts/",
            },
        },
    },
}

CHAT_REQUEST = {
    "type": "object",
    "required": ["session"],
    "properties": {
        "session": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_-]{8,64}$",
            "description": "the browser's preview conversation id",
        },
        "postback": {"type": "string", "maxLength": 1000, "description": "a tapped suggestion"},
        "text": {
            "type": "string",
            "maxLength": 1000,
            "description": "typed text, a numbered legacy reply, or the tap's displayText",
        },
        "bot": {
            "type": "string",
            "maxLength": 1000,
            "description": "force a bot (default: the one whose rules match)",
        },
    },
    "anyOf": [
        {"required": ["postback"], "properties": {"postback": {"minLength": 1}}},
        {"required": ["text"], "properties": {"text": {"pattern": "\\S"}}},
    ],
    "description": "a postback, or text that is not blank",
}
SCHEMAS["StudioChatReply"] = {
    "type": "object",
    "required": ["bot", "title", "node", "inbound", "replies", "messageList", "sms", "replyMap", "outbox"],
    "properties": {
        "bot": {"type": "string"},
        "title": {"type": "string"},
        "node": {"type": "string", "description": "the flow node the conversation is in now"},
        "inbound": {
            "type": "object",
            "description": "the CSP messageNotification the simulator POSTed to the bot's webhook",
        },
        "replies": {
            "type": "array",
            "items": {"type": "object"},
            "description": "CSP send bodies the MaaP simulator received from the bot's outbox",
        },
        "messageList": {"type": "array", "items": {"type": "object"}},
        "sms": {
            "type": "array",
            "items": {"type": "string"},
            "description": "smsContent of each reply: what a legacy phone gets",
        },
        "replyMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "outbox": {
            "type": "array",
            "description": "the preview store's outbox row of each reply",
            "items": {
                "type": "object",
                "required": ["messageId", "state"],
                "properties": {
                    "messageId": {"type": "string"},
                    "state": {"type": "string"},
                    "attempts": {"type": "integer"},
                },
            },
        },
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/": _html("Studio: the template gallery.", "studioGallery"),
    "/t/{name}": _html(
        "Studio: live preview of one template (form, phones, payload).", "studioTemplate", [NAME_PARAM]
    ),
    "/static/{path}": {
        "get": {
            "summary": "Studio assets: JS modules, CSS, icon, `fonts.css` and project fonts "
            "(`fonts/<file>`).",
            "operationId": "studioStatic",
            "tags": ["studio"],
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "the file",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                        "image/svg+xml": {"schema": {"type": "string"}},
                        "font/ttf": {"schema": {"type": "string", "format": "binary"}},
                        "font/otf": {"schema": {"type": "string", "format": "binary"}},
                        "font/woff2": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "404": error_response("no such file"),
            },
        }
    },
    "/api/templates/{name}/events": {
        "get": {
            "summary": "Server-Sent Events: `ready` once, then `changed` whenever a file of the "
            "template changes (`gone` if it is deleted).",
            "description": "Each event's data is JSON: `{template, ok, templateVersion}` or "
            "`{template, ok: false, error}` for a template that no longer compiles. The folder is "
            "polled every 200 ms; a comment line is sent every 15 s to keep proxies from closing it.",
            "operationId": "templateEvents",
            "tags": ["studio"],
            "parameters": [NAME_PARAM],
            "responses": {
                "200": {
                    "description": "an event stream",
                    "content": {
                        "text/event-stream": {
                            "schema": {  # one event (OpenAPI 3.1: the schema of each)
                                "type": "object",
                                "required": ["event", "data"],
                                "properties": {
                                    "event": {"enum": ["ready", "changed", "gone"]},
                                    "data": {"type": "string", "contentMediaType": "application/json"},
                                    "retry": {"type": "integer", "minimum": 0},
                                    "id": {"type": "string"},
                                },
                                "description": "Server-Sent Events, each `event: ready|changed|gone` "
                                "then `data: <JSON>` and a blank line; `: keepalive` comments between",
                            }
                        }
                    },
                },
                "404": error_response("no such template"),
            },
        }
    },
    "/api/studio/chat": {
        "post": {
            "summary": "Preview conversation: the MaaP simulator delivers a tap or reply to the bot's "
            "webhook in the studio's private chatbot runtime (own store, outbox and simulated MaaP); "
            "the replies its outbox sent to the simulator come back. The configured MaaP is never used.",
            "operationId": "studioChat",
            "tags": ["studio"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": CHAT_REQUEST}}},
            "responses": {
                "200": json_response("the bot's replies", {"$ref": "#/components/schemas/StudioChatReply"}),
                "400": error_response("malformed body, bad session id, nothing to send"),
                "404": error_response("no chatbot runs on this server, or none answers this tap"),
                "413": error_response("body too large"),
                "415": error_response("not application/json"),
                "502": error_response("the preview loop did not deliver the bot's replies"),
            },
        }
    },
    "/api/capabilities": {
        "get": {
            "summary": "Registered render formats, chatbot availability, project fonts.",
            "operationId": "capabilities",
            "tags": ["studio"],
            "responses": {
                "200": json_response("capabilities", {"$ref": "#/components/schemas/Capabilities"})
            },
        }
    },
}
