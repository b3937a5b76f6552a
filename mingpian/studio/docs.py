"""OpenAPI descriptions of the studio routes."""

from __future__ import annotations

from typing import Any

from ..api_docs import NAME_PARAM
from ..openapi import error_response, json_response


def _html(summary: str, op: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {
        "summary": summary, "operationId": op, "tags": ["studio"],
        "parameters": params or [],
        "responses": {"200": {"description": "an HTML page",
                              "content": {"text/html": {"schema": {"type": "string"}}}},
                      **({"404": error_response("no such template")} if params else {})},
    }}


SCHEMAS: dict[str, Any] = {
    "Capabilities": {
        "type": "object",
        "required": ["formats", "chatbot", "chatbotRoutes", "liveReload", "fonts"],
        "properties": {
            "formats": {"type": "array", "items": {"type": "string"},
                        "description": "`?format=` values POST /api/templates/{name}/render accepts"},
            "chatbot": {"type": "boolean", "description": "the chatbot / MaaP simulator is served"},
            "chatbotRoutes": {"type": "array", "items": {"type": "string"},
                              "description": "`METHOD /path` of the chatbot and simulator routes"},
            "liveReload": {"type": "boolean"},
            "fonts": {"type": "array", "items": {"type": "string"},
                      "description": "project fonts served under /static/fonts/"},
        },
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/": _html("Studio: the template gallery.", "studioGallery"),
    "/t/{name}": _html("Studio: live preview of one template (form, phones, payload).",
                       "studioTemplate", [NAME_PARAM]),
    "/static/{path}": {"get": {
        "summary": "Studio assets: JS modules, CSS, icon, `fonts.css` and project fonts "
        "(`fonts/<file>`).", "operationId": "studioStatic", "tags": ["studio"],
        "parameters": [{"name": "path", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the file", "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
                "image/svg+xml": {"schema": {"type": "string"}},
                "font/ttf": {"schema": {"type": "string", "format": "binary"}},
                "font/otf": {"schema": {"type": "string", "format": "binary"}},
                "font/woff2": {"schema": {"type": "string", "format": "binary"}}}},
            "404": error_response("no such file"),
        },
    }},
    "/api/templates/{name}/events": {"get": {
        "summary": "Server-Sent Events: `ready` once, then `changed` whenever a file of the "
        "template changes (`gone` if it is deleted).",
        "description": "Each event's data is JSON: `{template, ok, templateVersion}` or "
        "`{template, ok: false, error}` for a template that no longer compiles. The folder is "
        "polled every 200 ms; a comment line is sent every 15 s to keep proxies from closing it.",
        "operationId": "templateEvents", "tags": ["studio"],
        "parameters": [NAME_PARAM],
        "responses": {
            "200": {"description": "an event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "404": error_response("no such template"),
        },
    }},
    "/api/capabilities": {"get": {
        "summary": "Registered render formats, chatbot availability, project fonts.",
        "operationId": "capabilities", "tags": ["studio"],
        "responses": {"200": json_response("capabilities",
                                           {"$ref": "#/components/schemas/Capabilities"})},
    }},
}
