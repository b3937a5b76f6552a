"""Staff members in bulk: import a CSV (all rows or none, every bad row reported) and export
one (delivery/staffcsv.py has the format)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from delivery import staffcsv
from renderer import RenderError

from ...errors import ApiError
from ...keys import templates_key
from .access import enterprise, principal
from .ops import EID, OK, op
from .state import delivery_key

PATH = "/api/enterprises/{eid}/staff-csv"
MAX_BYTES = 16 * 1024 * 1024  # 50,000 rows of long Chinese names fit; beyond is 413


async def _text(request: web.Request) -> str:
    """The body as UTF-8 text, read here with its own limit (a staff file is larger than the
    JSON bodies `max_body_bytes` is set for)."""
    if request.content_type not in ("text/csv", "text/plain", "application/octet-stream"):
        raise ApiError(415, "unsupported_media_type", "send the file as text/csv")
    if (request.content_length or 0) > MAX_BYTES:
        raise ApiError(413, "body_too_large", f"a staff file is at most {MAX_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > MAX_BYTES:
            raise ApiError(413, "body_too_large", f"a staff file is at most {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", "save the file as UTF-8 CSV") from None


async def import_staff(request: web.Request) -> web.Response:
    p = await principal(request)
    ent = await enterprise(request, p)
    template = request.query.get("template", "")
    schema = None
    if template:
        try:
            schema = request.app[templates_key].get(template).schema
        except RenderError as exc:
            raise ApiError(404, "not_found", str(exc).splitlines()[0][:200], path="template") from None
    # checked in a worker thread: 50,000 rows are about a second that call events must not wait for
    parsed = await asyncio.to_thread(staffcsv.parse, await _text(request), schema)
    if parsed.problems:
        raise ApiError(
            422,
            "invalid",
            f"{parsed.bad_rows} row(s) have errors; nothing was imported",
            problems=[
                {"path": f"row {x['row']}" + (f": {x['column']}" if x["column"] else ""), **x}
                for x in parsed.problems
            ],
            bad_rows=parsed.bad_rows,
        )
    store = request.app[delivery_key].store
    eid = ent["id"]
    async with store.tx():  # one transaction: every row, or (on any failure) none
        await store.put_many("staff", eid, [(m["id"], m) for m in parsed.members])
        await store.audit(
            p.name, eid, "staff", "import staff", {"rows": len(parsed.members), "template": template}
        )
    await store.durable()
    return web.json_response({"imported": len(parsed.members)})


async def export_staff(request: web.Request) -> web.Response:
    ent = await enterprise(request, await principal(request))
    members = await request.app[delivery_key].store.list("staff", ent["id"])
    return web.Response(
        text="\ufeff" + staffcsv.export(members),  # the BOM: spreadsheets then read it as UTF-8
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="staff-{ent["id"]}.csv"'},
    )


def setup(app: web.Application) -> dict[str, Any]:
    app.router.add_post(PATH, import_staff)
    app.router.add_get(PATH, export_staff)
    csv_doc = {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
    return {
        PATH: {
            "post": op(
                "Import staff from CSV (id,name,field paths…); all rows or none, bad rows listed "
                "(?template= checks fields against it)",
                {"200": OK},
                404,
                413,
                415,
                422,
                params=EID,
                query=("template",),
                body_schema={"type": "string"},
                body_type="text/csv",
            ),
            "get": op("Export staff as CSV", {"200": csv_doc}, 404, params=EID),
        }
    }
