"""The OpenAPI 3.1 document. Each feature contributes the paths it serves in its `setup`;
tests/server/test_openapi.py checks the document and the router agree both ways and that
responses match the declared schemas."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import ERROR_CODES
from .openapi_zh import translate

openapi_paths_key = web.AppKey("openapi_paths", dict[str, dict[str, Any]])
openapi_schemas_key = web.AppKey("openapi_schemas", dict[str, Any])
# Callables that complete the document from the running app each time it is built: what is
# known only then (templates on disk, formats other features registered).
DocHook = Callable[[web.Application, dict[str, Any]], None]
openapi_hooks_key = web.AppKey("openapi_hooks", list[DocHook])

# Every credential a route may ask for; operations name theirs in `security`.
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`Authorization: Bearer mpk_…`; `X-API-Key: mpk_…` works too): "
        "the operator's, or an enterprise's (reaches only its own enterprise).",
    },
    "cspSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "signature",
        "description": "CT/CU: SHA-256 over the sorted token, `timestamp` and `nonce` headers (sent "
        "too); each (timestamp, nonce) is accepted once. Does not cover the body.",
    },
    "hmacSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Mingpian-Signature",
        "description": "`sha256=` HMAC-SHA256(secret, X-Mingpian-Timestamp + '.' + raw body).",
    },
    "maapBearer": {"type": "http", "scheme": "bearer", "description": "the MaaP's webhook bearer token"},
    "cmUsernamePassword": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'China Mobile: `Username="…",Password="…"`.',
    },
}

PROBLEM = {
    "type": "object",
    "required": ["path", "message"],
    "properties": {
        "path": {"type": "string", "description": "JSON path (`$.a[0].b`) or field path"},
        "message": {"type": "string", "description": "for a person; data problems name the field in Chinese"},
        "code": {
            "type": "string",
            "description": "the rule broken, stable (a JSON Schema keyword for data problems: `pattern`)",
        },
        "title": {"type": "string", "description": "the field's title in Chinese, where one is named"},
        "file": {"type": "string", "description": "template file, for template errors"},
        "line": {"type": "integer"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {
            "type": "string",
            "enum": list(ERROR_CODES),
            "description": "machine-readable kind (the table in docs/api.md)",
        },
        "message": {"type": "string"},
        "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
    },
}


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def static_files(summary: str) -> dict[str, Any]:
    """The operation of a page's own scripts and stylesheet (`{name}`), as pages document it."""
    return {
        "get": {
            "summary": summary,
            "tags": ["delivery"],
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "the file",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                },
                "404": {"description": "no such file"},
            },
        }
    }


def add_paths(
    app: web.Application, paths: dict[str, dict[str, Any]], schemas: dict[str, Any] | None = None
) -> None:
    # Deep copies: features extend operations another feature added (the render route gains
    # formats), and must change this app's document, never the module-level constants.
    for path, ops in copy.deepcopy(paths).items():
        app[openapi_paths_key].setdefault(path, {}).update(ops)
    if schemas:
        app[openapi_schemas_key].update(copy.deepcopy(schemas))


def extended_operation(app: web.Application, path: str, method: str, more: str) -> dict[str, Any] | None:
    """A copy of a documented operation with `more` added to its description, for a feature that
    adds an answer to another's route (the documented paths are shared: never changed in place);
    None when the route is not documented. Registered again with `add_paths`."""
    current = app[openapi_paths_key].get(path, {}).get(method)
    if current is None:
        return None
    op = copy.deepcopy(current)
    op["description"] = (op.get("description", "") + " " + more).strip()
    return op


def build_document(app: web.Application) -> dict[str, Any]:
    doc = _document(app)
    for hook in app[openapi_hooks_key]:
        hook(app, doc)
    translate(doc)  # last: the explorer reads Chinese, whatever the hooks added
    return doc


def _document(app: web.Application) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mingpian",
            "version": "0.1.0",
            "description": "Calling cards (来电名片) from templates: GSMA RCS payloads, legacy text, "
            "media, and the hang-up chatbot.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": copy.deepcopy(dict(sorted(app[openapi_paths_key].items()))),
        "components": {
            "schemas": copy.deepcopy({"Problem": PROBLEM, "Error": ERROR, **app[openapi_schemas_key]}),
            "securitySchemes": copy.deepcopy(SECURITY_SCHEMES),
        },
    }


def init(app: web.Application) -> None:
    app[openapi_paths_key] = {}
    app[openapi_schemas_key] = {}
    app[openapi_hooks_key] = []


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app))
