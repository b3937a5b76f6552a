"""OpenAPI description of the media routes, and of what media adds to the render operation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..openapi import add_paths, error_response, json_response, openapi_paths_key

JOB = {
    "type": "object",
    "required": ["id", "status", "progress", "format", "createdAt", "links"],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "format": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time"},
        "finishedAt": {"type": "string", "format": "date-time"},
        "links": {"type": "object", "properties": {"self": {"type": "string"}}},
        "media": {"$ref": "#/components/schemas/MediaRef"},
        "thumbnail": {"$ref": "#/components/schemas/MediaRef"},
        "error": {"type": "object"},
    },
}
MEDIA_REF = {
    "type": "object",
    "required": ["url", "path", "contentType", "bytes"],
    "properties": {
        "url": {"type": "string"},
        "path": {"type": "string"},
        "contentType": {"type": "string"},
        "bytes": {"type": "integer"},
    },
}
JOB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "video/mp4")
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}

RENDER_PARAMS: list[dict[str, Any]] = [
    {
        "name": "width",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 240, "maximum": 1440},
        "description": "png/jpeg/webp/mp4 and rcs&media=…: pixel width (images 720; videos 720 "
        "for 9:16 and 1:1, 1280 for 16:9; a video's longer side is at most 1920)",
    },
    {
        "name": "aspect",
        "in": "query",
        "required": False,
        "schema": {"enum": ["9:16", "16:9", "1:1"], "default": "9:16"},
        "description": "mp4 and rcs&media=video: frame shape; upright 9:16 (720x1280) by default",
    },
    {
        "name": "view",
        "in": "query",
        "required": False,
        "schema": {"enum": ["card", "media", "overview"], "default": "card"},
        "description": "images: `card` = the card as a phone shows it (a carousel: card `card`, "
        "with page dots); `overview` = a carousel's first `cards` cards side by side; "
        "`media` = the media-slot picture",
    },
    {
        "name": "cards",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "description": "images, view=overview: carousel cards drawn side by side",
    },
    {
        "name": "card",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0},
        "description": "images: which carousel card (view=card) or whose media slot (view=media)",
    },
    {
        "name": "seconds",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "minimum": 0.5, "maximum": 10},
        "description": "mp4: duration (default 5 s for a card, 3 s per carousel card; capped by the profile)",
    },
    {
        "name": "async",
        "in": "query",
        "required": False,
        "schema": {"enum": ["0", "1"]},
        "description": "media formats: 1 = answer 202 with a job at once (poll /api/jobs/{id})",
    },
    {
        "name": "media",
        "in": "query",
        "required": False,
        "schema": {"enum": ["none", "card", "video"], "default": "none"},
        "description": "rcs: render each card's media first (`card` = JPEG media-slot picture, "
        "`video` = MP4 + thumbnail) and point mediaUrl/thumbnailUrl at /media/… "
        "with the file sizes filled in",
    },
]

PATHS: dict[str, dict[str, Any]] = {
    "/media/{file}": {
        "get": {
            "summary": "A rendered media file, by content hash.",
            "description": "Immutable: `Cache-Control: public, max-age=31536000, immutable`; "
            "the strong ETag is the content hash, `If-None-Match` gives 304; single byte ranges give 206. "
            "A file this server lacks (pruned, or made by another host) is made again from its kept "
            "render spec and served the same way (`X-Cache: regenerated`, else `hit`).",
            "operationId": "getMedia",
            "parameters": [
                {
                    "name": "file",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}\\.(png|jpg|webp|mp4)$"},
                }
            ],
            "responses": {
                "200": {"description": "the file", "content": {t: {"schema": BINARY} for t in MEDIA_TYPES}},
                "206": {
                    "description": "a byte range of the file",
                    "content": {t: {"schema": BINARY} for t in MEDIA_TYPES},
                },
                "304": {"description": "not modified (ETag matched)"},
                "404": error_response(
                    "no such file (a malformed name, no render spec kept for it, or a spec its "
                    "template or the renderer no longer makes)"
                ),
                "416": error_response("range not satisfiable (Content-Range gives the size)"),
                "503": error_response("the shared media store (Redis) is unreachable"),
            },
        }
    },
    "/api/jobs/{id}": {
        "get": {
            "summary": "A media render job: status, progress (0-1), and the media once done.",
            "description": "With `media_store=redis` every server process answers for every job.",
            "operationId": "getJob",
            "parameters": [JOB_ID],
            "responses": {
                "200": json_response("the job", {"$ref": "#/components/schemas/MediaJob"}),
                "404": error_response("unknown job id"),
                "503": error_response("the shared media store (Redis) is unreachable"),
            },
        },
        "delete": {
            "summary": "Cancel a queued or running render (a video stops at its next frame).",
            "operationId": "cancelJob",
            "parameters": [JOB_ID],
            "responses": {
                "202": json_response("cancellation requested", {"$ref": "#/components/schemas/MediaJob"}),
                "404": error_response("unknown job id"),
                "409": error_response("the job already finished"),
                "503": error_response("the shared media store (Redis) is unreachable"),
            },
        },
    },
}


def document(app: web.Application) -> None:
    add_paths(app, PATHS, {"MediaJob": JOB, "MediaRef": MEDIA_REF})
    op = app[openapi_paths_key].get("/api/templates/{name}/render", {}).get("post")
    if op is None:
        return
    known = {p["name"] for p in op.get("parameters", [])}
    op.setdefault("parameters", []).extend(p for p in RENDER_PARAMS if p["name"] not in known)
    responses = op.setdefault("responses", {})
    ok = responses.setdefault("200", {"description": "rendered", "content": {}})
    for t in MEDIA_TYPES:
        ok.setdefault("content", {})[t] = {"schema": BINARY}
    responses["202"] = json_response("async=1: the render job", {"$ref": "#/components/schemas/MediaJob"})
    responses.setdefault("409", error_response("the render was cancelled"))
    responses.setdefault("500", error_response("the encoder failed"))
    op["description"] = op.get("description", "") + (
        " Media formats (png, jpeg, webp, mp4) answer with the file, `X-Media-Url` pointing at its "
        "immutable /media/… copy and `X-Cache: hit|miss`; see docs/media.md."
    )
