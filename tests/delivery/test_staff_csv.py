"""Staff CSV import and export at their limits, on both stores: wide files refused by name, an
export streamed in pages and bounded by what an import allows, files that once answered 500
(lone CR line ends, a huge cell, a path 500 levels deep, NUL, bad encodings), problems that name
the full column path and the rule, paging parameters out of range, and a lossless round trip.

The round trip's rule (docs/console.md) is also checked on the format itself, property-style."""

from __future__ import annotations

import csv
import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from delivery import staffcsv
from mingpian.api.delivery import delivery_key

from .support import SF_KEY, AppFactory, Client, auth

URL = "/api/enterprises/sf/staff-csv"
KEY = auth(SF_KEY)
SF = {**KEY, "Content-Type": "text/csv"}


async def _post(client: Client, body: str | bytes, query: str = "", **headers: str) -> tuple[int, Any]:
    data = body.encode() if isinstance(body, str) else body
    resp = await client.post(URL + query, data=io.BytesIO(data), headers={**SF, **headers})
    ctype = resp.headers.get("Content-Type", "")
    return resp.status, (await resp.json()) if "json" in ctype else await resp.text()


def _problem(body: dict[str, Any]) -> dict[str, Any]:
    assert body["error"] == "invalid", body
    return dict(body["problems"][0])


async def test_wide_files_are_refused_naming_the_limit(make_app: AppFactory) -> None:
    client = await make_app()
    wide = ",".join(f"c{i}" for i in range(20_000))
    status, body = await _post(client, f"id,name,{wide}\r\na1,甲,{','.join('x' * 20_000)}\r\n")
    p = _problem(body)
    assert status == 422 and p["row"] == 1 and p["kind"] == "columns"
    assert str(staffcsv.MAX_COLUMNS) in p["message"] and "20000" in p["message"]
    # per enterprise: two files of 150 different columns each would make 300 in an export
    first = ",".join(f"a{i}" for i in range(150))
    assert (await _post(client, f"id,name,{first}\r\nw1,甲,{','.join('1' * 150)}\r\n"))[0] == 200
    second = ",".join(f"b{i}" for i in range(150))
    status, body = await _post(client, f"id,name,{second}\r\nw2,乙,{','.join('1' * 150)}\r\n")
    p = _problem(body)
    assert status == 422 and p["kind"] == "columns" and str(staffcsv.MAX_COLUMNS) in p["message"]
    # the same file replacing the member that held the first columns is fine
    assert (await _post(client, f"id,name,{second}\r\nw1,乙,{','.join('1' * 150)}\r\n"))[0] == 200


async def test_export_streams_every_page_and_is_bounded(make_app: AppFactory) -> None:
    client = await make_app()
    rows = ["id,name,employee.name,n:number"] + [f"m{i:05d},员工{i},名{i},{i - 600}" for i in range(1234)]
    rows.append("narrow,窄,,")
    assert (await _post(client, "\r\n".join(rows)))[0] == 200
    resp = await client.get(URL, headers=SF)
    assert resp.status == 200 and resp.headers.get("Transfer-Encoding") == "chunked"
    text = (await resp.read()).decode()
    got = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    head = got[0]  # the seeded member's columns, then the file's
    assert head[:2] == ["id", "name"] and "n:number" in head and "employee.name" in head
    at = {c: i for i, c in enumerate(head)}
    ids = [r[0] for r in got[1:]]
    assert len(ids) == 1234 + 2 and ids == sorted(ids)  # the seeded member, every page, no repeats
    row = next(r for r in got if r[0] == "m00003")
    assert (row[1], row[at["employee.name"]], row[at["n:number"]]) == ("员工3", "名3", "-597")
    narrow = next(r for r in got if r[0] == "narrow")
    assert narrow[1] == "窄" and set(narrow[2:]) == {""}
    # every row has the header's width: rows × columns is the bound, and the columns are bounded
    assert {len(r) for r in got} == {len(head)}
    # members stored past the bound before the JSON API held them to it: the export refuses, naming it
    store = client.app[delivery_key].store
    for i in range(3):
        data = {f"k{i}_{j}": "v" for j in range(100)}
        await store.put("staff", "sf", f"j{i}", {"id": f"j{i}", "name": "宽", "data": data})
    resp = await client.get(URL, headers=SF)
    assert resp.status == 409 and str(staffcsv.MAX_COLUMNS) in (await resp.json())["message"]


async def test_files_that_answered_500(make_app: AppFactory) -> None:
    client = await make_app()
    # lone CR line ends (old Mac spreadsheets) end rows
    status, body = await _post(client, "id,name\rcr1,回车\rcr2,回车二\r")
    assert (status, body) == (200, {"imported": 2})
    # a 15 MB cell: refused naming the cell limit; a body past 16 MB: 413
    status, body = await _post(client, "id,name,x\r\nbig,大," + "y" * (15 << 20) + "\r\n")
    p = _problem(body)
    assert status == 422 and p["row"] == 2 and p["kind"] == "cell_too_long"
    assert str(staffcsv.MAX_CELL) in p["message"]
    status, body = await _post(client, "id,name,x\r\nbig,大," + "y" * (17 << 20) + "\r\n")
    assert status == 413 and body["error"] == "body_too_large"
    # a path 500 levels deep
    status, body = await _post(client, "id,name," + ".".join("a" * 500) + "\r\ndeep,深,1\r\n")
    p = _problem(body)
    assert (
        status == 422
        and p["kind"] == "depth"
        and str(staffcsv.MAX_DEPTH) in p["message"]
        and "500" in p["message"]
    )


async def test_sibling_file_problems(make_app: AppFactory) -> None:
    client = await make_app()
    cases = {
        "id,name,,x\r\na,甲,1,2\r\n": (1, "header", "第 3 列没有列名"),
        "id,name,x,x\r\na,甲,1,2\r\n": (1, "header", "第 3 列和第 4 列"),
        "id,name,a..b\r\na,甲,1\r\n": (1, "header", "不能有空段"),
        "id,name,x\r\na,甲,b\x00c\r\n": (2, "nul", "NUL"),
        "id,name,a,a.b\r\nok,甲,,1\r\nbad,乙,1,2\r\n": (3, "nesting", "「a」和「a.b」"),
        "id,name,a.b,a\r\nbad,乙,1,2\r\n": (2, "nesting", "「a」和「a.b」"),
        "id,name,n:number\r\na,甲,十\r\n": (2, "type", ":number"),
        "id,name,n:number\r\na,甲,1" + "0" * 30 + "\r\n": (2, "range", "超出范围"),
        "id,name\r\na,甲,多一格\r\n": (2, "cells", "表头只有 2 列"),
    }
    for text, (row, kind, words) in cases.items():
        status, body = await _post(client, text)
        p = _problem(body)
        assert status == 422 and (p["row"], p["kind"]) == (row, kind) and words in p["message"], (text, p)
    # a BOM is read as such; a byte-order mark alone in a cell is data
    assert (await _post(client, "\ufeffid,name\r\nbom,带 BOM\r\n"))[0] == 200
    # not UTF-8: GBK from a spreadsheet is 400 saying how to send it, or read when declared
    gbk = "id,name\r\ngbk,张三\r\n".encode("gbk")
    status, body = await _post(client, gbk)
    assert status == 400 and body["error"] == "invalid_encoding" and "charset=gbk" in body["message"]
    assert (await _post(client, gbk, **{"Content-Type": "text/csv; charset=gbk"}))[0] == 200
    member = await (await client.get("/api/enterprises/sf/staff/gbk", headers=SF)).json()
    assert member["name"] == "张三"
    assert (await _post(client, b"id,name\r\na,\xff\r\n"))[0] == 400
    utf8 = "id,name\r\nu8,李四\r\n".encode()
    assert (await _post(client, utf8, **{"Content-Type": "text/csv; charset=UTF8"}))[0] == 200
    status, body = await _post(client, utf8, **{"Content-Type": "text/csv; charset=klingon"})
    assert status == 400 and body["error"] == "invalid_encoding" and "klingon" in body["message"]
    # too many rows
    many = "id,name\r\n" + "".join(f"r{i},员工\r\n" for i in range(staffcsv.MAX_ROWS + 1))
    status, body = await _post(client, many)
    assert status == 422 and any(p["kind"] == "rows" for p in body["problems"])


async def test_problems_name_the_full_column_and_the_rule(make_app: AppFactory) -> None:
    client = await make_app()
    lines = ["id,name,employee.name,employee.title,employee.mobile"]
    lines += [f"e{i},员工{i},员工{i},快递员,139{i:08d}" for i in range(2, 14)]
    lines.append("e14,员工14,员工14,,13900000014")  # row 14: no title
    lines.append("e15,员工15,员工15,快递员," + "1" * 12)  # row 15: a mobile of 12 digits
    lines.append("e16," + "长" * 65 + ",员工16,快递员,13900000016")
    status, body = await _post(client, "\r\n".join(lines), "?template=staff-card")
    assert status == 422 and body["bad_rows"] == 3
    by_row = {p["row"]: p for p in body["problems"]}
    assert by_row[14]["column"] == "employee.title" and by_row[14]["path"] == "row 14: employee.title"
    assert by_row[14]["message"] == "「职务」必填"
    assert by_row[15]["column"] == "employee.mobile" and "手机" in by_row[15]["message"]
    assert by_row[16]["column"] == "name" and by_row[16]["message"] == "「姓名」最多 64 个字"


async def test_paging_parameters_out_of_range(make_app: AppFactory) -> None:
    client = await make_app()
    for url, name in (
        ("/api/enterprises/sf/staff?offset=182196873523494383517696", "offset"),
        ("/api/enterprises/sf/lines?offset=-1", "offset"),
        ("/api/enterprises/sf/staff?limit=99999999999999999999999", "limit"),
        ("/api/enterprises/sf/cards?limit=x", "limit"),
    ):
        resp = await client.get(url, headers=SF)
        body = await resp.json()
        assert resp.status == 400 and body["error"] == "invalid_query", (url, body)
        assert body["problems"][0]["path"] == name
    op = await (await client.get("/api/openapi.json")).json()
    params = op["paths"]["/api/enterprises/{eid}/staff"]["get"]["parameters"]
    bounds = {p["name"]: p["schema"].get("maximum") for p in params if p["in"] == "query"}
    assert bounds["offset"] and bounds["limit"] == 500


async def test_round_trip_keeps_text_numbers_and_marks(make_app: AppFactory) -> None:
    client = await make_app()
    data = {
        "quote": "'=already",
        "neg": -5,
        "half": 2.5,
        "big": 2**63,
        "flag": True,
        "text": {"neg": "-5", "num": "7", "pad": " 两边有空格 ", "empty": "", "apos": "'", "cmd": "=1+1"},
    }
    member = {"id": "rt", "name": "'名字", "data": data}
    assert (await client.post("/api/enterprises/sf/staff", json=member, headers=KEY)).status == 201
    mixed = {"id": "rt2", "name": "混合", "data": {"neg": "x", "flag": "true", "quote": 3}}
    assert (await client.post("/api/enterprises/sf/staff", json=mixed, headers=KEY)).status == 201
    text = (await (await client.get(URL, headers=SF)).read()).decode()
    assert "'=1+1" in text  # formulas stay defused
    for mid in ("rt", "rt2"):
        assert (await client.delete(f"/api/enterprises/sf/staff/{mid}", headers=SF)).status == 204
    status, body = await _post(client, text)
    assert status == 200, body
    assert await (await client.get("/api/enterprises/sf/staff/rt", headers=SF)).json() == member
    assert await (await client.get("/api/enterprises/sf/staff/rt2", headers=SF)).json() == mixed


# -- the format, property-style --------------------------------------------------------------

TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
SCALARS = st.one_of(
    TEXTS,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
NAMES = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=64
)
KEYS = st.text(st.characters(whitelist_categories=("Ll", "Lo", "Nd")), min_size=1, max_size=8)


def _encode(members: list[dict[str, Any]]) -> str:
    columns: dict[str, str] = {}
    staffcsv.scan(columns, members)
    return staffcsv.header(columns) + staffcsv.Rows(columns)(members)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            NAMES,
            st.dictionaries(KEYS, st.one_of(SCALARS, st.dictionaries(KEYS, SCALARS, max_size=3)), max_size=5),
        ),
        max_size=4,
    )
)
def test_any_text_number_or_boolean_comes_back_as_itself(datas: list[tuple[str, dict[str, Any]]]) -> None:
    members = [{"id": f"p{i}", "name": name, "data": d} for i, (name, d) in enumerate(datas)]
    expected = [
        {**m, "data": {k: v for k, v in m["data"].items() if v != {}}} for m in members
    ]  # an empty object has no cell
    parsed = staffcsv.parse(_encode(members))
    assert parsed.problems == [] and parsed.members == expected


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_text_that_a_spreadsheet_would_run_is_marked(text: str) -> None:
    cell = staffcsv.cell(text, typed=False)
    if text.startswith(staffcsv.FORMULA):
        assert cell == "'" + text
    assert cell == text or cell == "'" + text


def test_a_field_the_header_lacks_stops_the_rows() -> None:
    """A member changed during an export: its rows stop rather than drop the field."""
    columns: dict[str, str] = {}
    staffcsv.scan(columns, [{"id": "a", "name": "甲", "data": {"x": "1"}}])
    rows = staffcsv.Rows(columns)
    assert rows([{"id": "a", "name": "甲", "data": {"x": "1"}}]) == "a,甲,1\r\n"
    for data in ({"y": "new"}, {"x": 5}):  # a new path; a number where the column is text
        try:
            rows([{"id": "a", "name": "甲", "data": data}])
        except staffcsv.NewColumn:
            continue
        raise AssertionError(data)


async def test_an_import_past_the_enterprise_staff_limit_is_refused_naming_it(make_app: AppFactory) -> None:
    """`delivery_staff_max` bounds the staff an enterprise keeps, whichever door they come by;
    members the file replaces are no new members."""
    client = await make_app(delivery_staff_max=5)
    status, body = await _post(client, "id,name\r\n" + "".join(f"s{i},员工{i}\r\n" for i in range(4)))
    assert status == 200, body
    status, body = await _post(client, "id,name\r\n" + "".join(f"s{i},新{i}\r\n" for i in range(4)))
    assert status == 200, body  # the same four, replaced
    status, body = await _post(client, "id,name\r\ns9,一\r\ns8,二\r\n")
    problem = _problem(body)
    assert status == 422 and problem["kind"] == "rows" and problem["row"] == 1
    assert "一个企业最多 5 名" in problem["message"]
    store = client.app[delivery_key].store
    assert (await store.page("staff", "sf", "", 10, 0)).total == 5  # nothing of the refused file kept


def test_a_data_field_named_like_a_fixed_column_comes_back_as_itself() -> None:
    """`id` and `name` inside a member's data are columns of their own, not the member's."""
    members = [{"id": "a", "name": "甲", "data": {"id": "工号7", "name": {"x": 1}, "'q": "v"}}]
    text = _encode(members)
    assert text.splitlines()[0] == "id,name,'id,name.x:number,''q"
    parsed = staffcsv.parse(text)
    assert parsed.problems == [] and parsed.members == members


def test_an_unmarked_fixed_column_twice_says_how_to_name_the_field() -> None:
    parsed = staffcsv.parse("id,name,id\r\na,甲,1\r\n")
    assert [p["kind"] for p in parsed.problems] == ["header"]
    assert "'id" in parsed.problems[0]["message"]
