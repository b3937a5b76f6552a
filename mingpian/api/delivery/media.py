"""An enterprise's media library: upload (multipart), list, read, delete (delivery/library/).

The upload's bytes decide what it is; its file name is kept only as a label, and its part's
Content-Type is ignored. The body is read as a stream and cut off past `library_max_bytes`
(the server's `max_body_bytes` is for JSON). Same keys as every enterprise resource: an
enterprise key reaches its own library, another's answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from delivery.library.fetch import FetchRefused
from delivery.library.ingest import IngestError
from delivery.library.library import QuotaExceeded

from ...errors import ApiError
from ...httpjson import json_response, read_json_body
from ...keys import settings_key
from .access import enterprise, principal
from .ops import DELETED, EID, OK, obj, op
from .state import delivery_key

BASE = "/api/enterprises/{eid}/media"
ITEM = BASE + "/{id}"
CHUNK = 64 * 1024
STATUS = {
    "unsupported_media": 415,
    "undecodable_media": 422,
    "media_too_large": 413,
    "media_too_long": 422,
}


async def _file_part(request: web.Request, limit: int) -> tuple[bytes, str]:
    """The bytes and file name of the `file` part, read at most `limit` bytes far. A name may be
    raw UTF-8 (RFC 7578) or `filename*=UTF-8''…` (RFC 5987); part headers HTTP does not allow
    (control characters, a name that is not a token, no colon) and a `_charset_` part that
    names no charset make the body malformed: a 400, like any other malformed body."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "not_multipart", "send multipart/form-data with the file in a part named `file`")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            data = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                data += chunk
                if len(data) > limit:
                    raise ApiError(
                        413,
                        "media_too_large",
                        f"the file has more than {limit} bytes",
                        path="file",
                        limit=f"{limit} bytes",
                    )
            return bytes(data), part.filename or ""
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:  # a malformed body
        reason = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise ApiError(400, "not_multipart", f"the multipart body is malformed: {reason[:200]}") from None
    raise ApiError(400, "not_multipart", "no part named `file` in the upload", path="file")


async def upload(request: web.Request) -> web.Response:
    p = await principal(request)
    ent = await enterprise(request, p)
    service = request.app[delivery_key]
    lib = service.library
    data, name = await _file_part(request, lib.limits.max_bytes)
    row, new = await _into_library(lib.add(ent["id"], data, name), "file")
    if new:
        await service.store.audit(
            p.name, ent["id"], f"media:{row['id']}", "upload media", {"name": row["name"]}
        )
        await service.store.durable()
    return json_response(lib.shown(row), status=201 if new else 200)


async def _into_library(
    stored: Awaitable[tuple[dict[str, Any], bool]], path: str
) -> tuple[dict[str, Any], bool]:
    """What the library stored (its row, and whether it is new), or its refusal as the API's
    error naming `path`, where the file came from."""
    try:
        return await stored
    except FetchRefused as exc:
        raise ApiError(422, "fetch_refused", str(exc), path=path) from None
    except IngestError as exc:
        raise ApiError(STATUS[exc.code], exc.code, str(exc), path=path, limit=exc.limit) from None
    except QuotaExceeded as exc:
        raise ApiError(
            409, "quota_exceeded", str(exc), path=path, used=exc.used, size=exc.size, quota=exc.quota
        ) from None


async def fetch(request: web.Request) -> web.Response:
    """A photo URL from one of the enterprise's `photo_hosts`, fetched into its library."""
    p = await principal(request)
    ent = await enterprise(request, p)
    body = await read_json_body(request, request.app[settings_key].max_json_depth)
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise ApiError(
            422, "invalid", "give the photo's https URL as `url` (at most 2000 characters)", path="$.url"
        )
    service = request.app[delivery_key]
    row, new = await _into_library(service.library.fetch(ent, url), "$.url")
    if new:
        await service.store.audit(p.name, ent["id"], f"media:{row['id']}", "fetch media", {"url": url})
        await service.store.durable()
    return json_response(service.library.shown(row), status=201 if new else 200)


async def list_media(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    lib = request.app[delivery_key].library
    rows = await lib.store.media_list(ent["id"])
    used = sum(r["bytes"] for r in rows)
    return json_response({"media": [lib.shown(r) for r in rows], "used": used, "quota": lib.quota})


async def _row(request: web.Request) -> dict[str, Any]:
    ent = await enterprise(request, await principal(request))
    lib = request.app[delivery_key].library
    row = await lib.store.media(ent["id"], request.match_info["id"])
    if row is None:
        raise ApiError(404, "not_found", "no such media file", path="id")
    return row


async def get_media(request: web.Request) -> web.Response:
    return json_response(request.app[delivery_key].library.shown(await _row(request)))


async def get_content(request: web.Request) -> web.StreamResponse:
    row = await _row(request)
    path = request.app[delivery_key].library.path(row)
    if not path.is_file():  # the row outlived its file (a fleet without a shared library folder)
        raise ApiError(404, "not_found", "the file is missing on this host", path="id")
    return web.FileResponse(
        path, headers={"Content-Type": row["content_type"], "X-Content-Type-Options": "nosniff"}
    )


async def delete_media(request: web.Request) -> web.Response:
    p = await principal(request)
    ent = await enterprise(request, p)
    service = request.app[delivery_key]
    if not await service.library.delete(ent["id"], request.match_info["id"]):
        raise ApiError(404, "not_found", "no such media file", path="id")
    await service.store.audit(p.name, ent["id"], f"media:{request.match_info['id']}", "delete media", {})
    await service.store.durable()
    return web.Response(status=204)


def setup(app: web.Application) -> dict[str, Any]:
    r = app.router
    r.add_post(BASE, upload)
    r.add_post(BASE + "/fetch", fetch)
    r.add_get(BASE, list_media)
    r.add_get(ITEM, get_media)
    r.add_get(ITEM + "/content", get_content)
    r.add_delete(ITEM, delete_media)
    upload_op = op(
        "Upload a picture or short video to the library",
        {"201": obj("stored"), "200": OK},
        400,
        404,
        409,
        413,
        422,
        params=EID,
    )
    upload_op["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
    upload_op["responses"]["415"] = {"description": "neither a picture nor a video, by its bytes"}
    ids = ("eid", "id")
    fetch_op = op(
        "Fetch a photo URL of one of the enterprise's photo_hosts into the library",
        {"201": obj("stored"), "200": OK},
        404,
        409,
        413,
        422,
        params=EID,
    )
    fetch_op["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}
            }
        },
    }
    return {
        BASE + "/fetch": {"post": fetch_op},
        BASE: {
            "post": upload_op,
            "get": op("List the library (with bytes used and the quota)", {"200": OK}, 404, params=EID),
        },
        ITEM: {
            "get": op("A library file's record (`ref` is what a card names)", {"200": OK}, 404, params=ids),
            "delete": op("Delete a library file", {"204": DELETED}, 404, params=ids),
        },
        ITEM + "/content": {
            "get": op("The file's bytes", {"200": {"description": "the file"}}, 404, params=ids)
        },
    }
