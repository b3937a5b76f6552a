"""Docs in the product: `/docs` serves the project's Markdown docs as pages and `/api` is an
explorer of the OpenAPI document, both linked from the studio's header (see `pages`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..openapi import add_paths, error_response
from . import pages


def _html(summary: str, op: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    }
    if params:
        responses["404"] = error_response("no such doc")
    return {
        "get": {
            "summary": summary,
            "operationId": op,
            "tags": ["studio"],
            "parameters": params or [],
            "responses": responses,
        }
    }


PATHS: dict[str, dict[str, Any]] = {
    "/docs": _html("Docs: the user's guide (Chinese) as a page, with the list of docs.", "docsIndex"),
    "/docs/{name}": _html(
        "Docs: one reference doc of `docs_dir` (`templates`, `api`, …) or the README as a page.",
        "docsPage",
        [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    ),
    "/docs/guide/{name}": _html(
        "Docs: one page of the user's guide (`docs_dir/guide/*.md`).",
        "docsGuidePage",
        [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    ),
    "/api": _html("API explorer: browse `/api/openapi.json` and send requests.", "apiExplorer"),
}


def setup(app: web.Application) -> None:
    pages.setup(app)
    add_paths(app, PATHS)
