"""Staff members in bulk: import a CSV (all rows or none, every bad row reported) and export
one (delivery/staffcsv.py has the format and its limits).

Both are bounded and keep the event loop free: an import reads at most `MAX_BYTES` and is
checked in a worker thread; an export reads the staff a page at a time (twice: the columns
first, then the rows) and writes its rows in slices of about `SLICE_CELLS` cells, yielding to
the loop between them, so neither its memory nor any other request's wait grows with the count.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from typing import Any

from aiohttp import web

from delivery import staffcsv, stafflimits
from delivery.storage import DeliveryStore
from renderer import RenderError

from ...errors import ApiError
from ...keys import templates_key
from .access import enterprise, principal
from .ops import EID, OK, op
from .state import delivery_key

log = logging.getLogger(__name__)
PATH = "/api/enterprises/{eid}/staff-csv"
MAX_BYTES = 16 * 1024 * 1024  # 50,000 rows of long Chinese names fit; beyond is 413
SLICE_CELLS = 10_000  # cells encoded between two yields to the loop (a millisecond or two)
CHARSETS = ("utf-8", "gbk", "gb2312", "gb18030")  # what a file may declare (Excel in China saves GBK)


async def _text(request: web.Request) -> str:
    """The body as text, read here with its own limit (a staff file is larger than the JSON
    bodies `max_body_bytes` is set for): UTF-8, or GBK / GB18030 when the request says so."""
    if request.content_type not in ("text/csv", "text/plain", "application/octet-stream"):
        raise ApiError(415, "unsupported_media_type", "send the file as text/csv")
    try:
        charset = codecs.lookup(request.charset or "utf-8").name  # utf8, GBK, … spelled as codecs do
    except LookupError:
        charset = ""
    if charset not in CHARSETS:
        raise ApiError(
            400, "invalid_encoding", f"charset {(request.charset or '')[:20]!r}: send UTF-8, GBK or GB18030"
        )
    too_large = ApiError(413, "body_too_large", f"a staff file is at most {MAX_BYTES} bytes (16 MB)")
    if (request.content_length or 0) > MAX_BYTES:
        raise too_large
    raw = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > MAX_BYTES:
            raise too_large
    try:
        return codecs.decode(raw, charset)
    except UnicodeDecodeError as exc:
        row = raw.count(b"\n", 0, exc.start) + 1
        raise ApiError(
            400,
            "invalid_encoding",
            f"the file is not {charset.upper()} (byte {exc.start}, line {row}): save it as "
            '"CSV UTF-8", or send a GBK file with Content-Type: text/csv; charset=gbk',
        ) from None


def _invalid(message: str, problems: list[dict[str, Any]], bad_rows: int) -> ApiError:
    return ApiError(
        422,
        "invalid",
        message,
        problems=[
            {"path": f"row {x['row']}" + (f": {x['column']}" if x["column"] else ""), **x} for x in problems
        ],
        bad_rows=bad_rows,
    )


async def _within_bounds(store: DeliveryStore, eid: str, parsed: staffcsv.Parsed, max_members: int) -> None:
    """Refuse an import after which the enterprise's staff would have more distinct field paths
    than an export may write, or more members than it may have (members the file replaces do
    not count)."""
    ids = {m["id"] for m in parsed.members}
    paths = await stafflimits.paths_past_bound(store, eid, set(parsed.paths), ids)
    if paths:
        message = (
            f"导入后本企业员工的字段路径将有 {paths} 个（本文件 {len(parsed.paths)} 个，"
            f"加上已有员工的）：一个企业的员工最多共用 {staffcsv.MAX_COLUMNS} 个字段"
        )
        raise _invalid(
            f"the enterprise's staff would have more than {staffcsv.MAX_COLUMNS} field paths",
            [{"row": 1, "column": "", "kind": "columns", "message": message}],
            1,
        )
    members = await stafflimits.members_past_bound(store, eid, ids, max_members)
    if members:
        message = f"导入后本企业将有 {members} 名员工：一个企业最多 {max_members} 名"
        raise _invalid(
            f"the enterprise would have more than {max_members} staff members",
            [{"row": 1, "column": "", "kind": "rows", "message": message}],
            1,
        )


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
        raise _invalid(
            f"{parsed.bad_rows} row(s) have errors; nothing was imported", parsed.problems, parsed.bad_rows
        )
    store = request.app[delivery_key].store
    eid = ent["id"]
    await _within_bounds(store, eid, parsed, request.app[delivery_key].config.staff_max)
    async with store.tx():  # one transaction: every row, or (on any failure) none
        await store.put_many("staff", eid, [(m["id"], m) for m in parsed.members])
        await store.audit(
            p.name, eid, "staff", "import staff", {"rows": len(parsed.members), "template": template}
        )
    await store.durable()
    return web.json_response({"imported": len(parsed.members)})


async def export_staff(request: web.Request) -> web.StreamResponse:
    ent = await enterprise(request, await principal(request))
    store = request.app[delivery_key].store
    eid = ent["id"]
    columns: dict[str, str] = {}
    async for page in stafflimits.pages(store, eid):
        staffcsv.scan(columns, page)
        if len(columns) > staffcsv.MAX_COLUMNS:  # written through the JSON API, not an import
            raise ApiError(
                409,
                "conflict",
                f"the staff have more than {staffcsv.MAX_COLUMNS} distinct field paths, more than a CSV "
                "export writes; read them with GET …/staff?limit=&offset=",
            )
    resp = web.StreamResponse(
        headers={"Content-Disposition": f'attachment; filename="staff-{eid}.csv"'},
    )
    resp.content_type = "text/csv"
    resp.charset = "utf-8"
    await resp.prepare(request)
    await resp.write(("\ufeff" + staffcsv.header(columns)).encode())  # the BOM: spreadsheets read UTF-8
    per_slice = max(1, SLICE_CELLS // (len(columns) + 2))
    rows = staffcsv.Rows(columns)
    try:
        async for page in stafflimits.pages(store, eid):
            for i in range(0, len(page), per_slice):
                await resp.write(rows(page[i : i + per_slice]).encode())
                await asyncio.sleep(0)
    except staffcsv.NewColumn as exc:
        # a member changed since the header was written: end without the last chunk, so the
        # download fails rather than lack a field
        log.warning("staff export of %s cut short: a new field %r appeared during it", eid, str(exc)[:80])
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


def setup(app: web.Application) -> dict[str, Any]:
    app.router.add_post(PATH, import_staff)
    app.router.add_get(PATH, export_staff)
    csv_doc = {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
    return {
        PATH: {
            "post": op(
                "Import staff from CSV (id,name,field paths…); all rows or none, bad rows listed "
                f"(?template= checks fields against it); at most {staffcsv.MAX_ROWS} rows, "
                f"{staffcsv.MAX_COLUMNS} field columns (per file and per enterprise), {staffcsv.MAX_DEPTH} "
                f"levels per path, {staffcsv.MAX_CELL} characters per cell, {MAX_BYTES} bytes",
                {"200": OK},
                400,
                404,
                413,
                415,
                422,
                params=EID,
                query=("template",),
                body_schema={"type": "string"},
                body_type="text/csv",
            ),
            "get": op(
                "Export staff as CSV (streamed; 409 when the staff have more field paths than an "
                "import allows)",
                {"200": csv_doc},
                404,
                409,
                params=EID,
            ),
        }
    }
