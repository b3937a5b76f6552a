"""OpenAPI descriptions of the core routes (templates, render, health, metrics)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from renderer.profiles import PROFILES

from ..openapi import add_paths, error_response, json_response, openapi_hooks_key
from .templates import formats_key

NAME_PARAM = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
}

SCHEMAS: dict[str, Any] = {
    "TemplateSummary": {
        "type": "object",
        "required": ["name", "ok"],
        "properties": {
            "name": {"type": "string"},
            "ok": {"type": "boolean"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "phase": {"enum": ["pre-call", "in-call", "hang-up"]},
            "kind": {"enum": ["card", "carousel"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "brand": {"type": "object"},
            "templateVersion": {"type": "string"},
            "error": {"$ref": "#/components/schemas/Error"},
        },
    },
    "TemplateDetail": {
        "type": "object",
        "required": [
            "name",
            "title",
            "description",
            "phase",
            "kind",
            "dataSchema",
            "sampleData",
            "templateVersion",
            "brand",
        ],
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "phase": {"enum": ["pre-call", "in-call", "hang-up"]},
            "kind": {"enum": ["card", "carousel"]},
            "version": {"type": "string"},
            "templateVersion": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "brand": {"type": "object"},
            "legacy": {"type": "object"},
            "dataSchema": {"type": "object", "description": "JSON Schema 2020-12 of the data"},
            "sampleData": {"type": "object"},
            "patternText": {
                "type": "object",
                "description": "each `pattern` of the data schema in words (Chinese), for forms",
                "additionalProperties": {"type": "string"},
            },
        },
    },
    "RenderResponse": {
        "type": "object",
        "required": ["template", "templateVersion", "profile", "messageList"],
        "properties": {
            "template": {"type": "string"},
            "templateVersion": {"type": "string"},
            "profile": {"type": "string"},
            "brand": {
                "type": "object",
                "description": "the rendered brand (templated ones filled in)",
                "required": ["signature", "name", "color"],
                "properties": {
                    "signature": {"type": "string"},
                    "name": {"type": "string"},
                    "color": {"type": "string"},
                },
            },
            "messageList": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["contentType", "contentText"],
                    "properties": {
                        "contentType": {
                            "enum": [
                                "application/vnd.gsma.botmessage.v1.0+json",
                                "application/vnd.gsma.botsuggestion.v1.0+json",
                            ]
                        },
                        "contentText": {"type": "object"},
                    },
                },
            },
        },
    },
    "Profile": {
        "type": "object",
        "required": ["name", "label"],
        "properties": {"name": {"type": "string"}, "label": {"type": "string"}},
        "additionalProperties": {"type": "number"},
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "summary": "Liveness: the process answers and the template folder is readable.",
            "operationId": "healthz",
            "responses": {
                "200": json_response(
                    "healthy",
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}, "templates": {"type": "integer"}},
                    },
                )
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: the database, Redis, SMPP binds and templates this process needs answer.",
            "operationId": "readyz",
            "responses": {
                "200": json_response(
                    "ready",
                    {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {"status": {"const": "ready"}, "checks": {"type": "object"}},
                    },
                ),
                "503": error_response("not ready: the message names what (`not_ready`, with `checks`)"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text-format metrics of the whole host, whichever worker answers.",
            "operationId": "metrics",
            "responses": {
                "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document.",
            "operationId": "openapi",
            "responses": {"200": json_response("OpenAPI 3.1 document", {"type": "object"})},
        }
    },
    "/api/profiles": {
        "get": {
            "summary": "Carrier capability profiles (limits) a render can be checked against.",
            "operationId": "listProfiles",
            "responses": {
                "200": json_response(
                    "profiles",
                    {
                        "type": "object",
                        "required": ["profiles", "default"],
                        "properties": {
                            "profiles": {"type": "array", "items": {"$ref": "#/components/schemas/Profile"}},
                            "default": {"type": "string"},
                        },
                    },
                )
            },
        }
    },
    "/api/templates": {
        "get": {
            "summary": "All templates; a broken one is listed with its error.",
            "operationId": "listTemplates",
            "responses": {
                "200": json_response(
                    "templates",
                    {
                        "type": "object",
                        "required": ["templates"],
                        "properties": {
                            "templates": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/TemplateSummary"},
                            }
                        },
                    },
                )
            },
        }
    },
    "/api/templates/{name}": {
        "get": {
            "summary": "One template: manifest, data schema and sample data.",
            "operationId": "getTemplate",
            "parameters": [NAME_PARAM],
            "responses": {
                "200": json_response("the template", {"$ref": "#/components/schemas/TemplateDetail"}),
                "404": error_response("no such template"),
                "422": error_response("the template is broken (problems carry file and line)"),
            },
        }
    },
    "/api/templates/{name}/render": {
        "post": {
            "summary": "Render the template with the posted data.",
            "description": "Body: the data object (validated against the template's dataSchema). "
            "`format=rcs` (default) returns the GSMA messageList; with "
            "`Accept: application/vnd.gsma.botmessage.v1.0+json` and no chips, the bare botmessage.",
            "operationId": "renderTemplate",
            "parameters": [
                NAME_PARAM,
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "default": "rcs"},
                    "description": "output target: rcs, or any format a feature registers",
                },
                {
                    "name": "profile",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": sorted(PROFILES)},
                    "description": "carrier profile name (see /api/profiles); default: the "
                    "`default_profile` setting",
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": {
                    "description": "rendered",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/RenderResponse"}},
                        "application/vnd.gsma.botmessage.v1.0+json": {"schema": {"type": "object"}},
                    },
                },
                "400": error_response("malformed JSON, unknown format or profile, too deep"),
                "404": error_response("no such template"),
                "413": error_response("body too large"),
                "415": error_response("not application/json"),
                "422": error_response(
                    "data fails the schema (every error with its JSON path), the "
                    "card breaks a profile limit, or the template is broken"
                ),
            },
        }
    },
}


def _formats(app: web.Application, doc: dict[str, Any]) -> None:
    """The render route's `format`: the formats registered by the time the document is built."""
    op = doc["paths"].get("/api/templates/{name}/render", {}).get("post")
    if op is None:
        return
    for param in op["parameters"]:
        if param["name"] == "format":
            param["schema"] = {"enum": sorted(app[formats_key]), "default": "rcs"}


def setup(app: web.Application) -> None:
    add_paths(app, PATHS, SCHEMAS)
    app[openapi_hooks_key].append(_formats)
