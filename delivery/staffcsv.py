"""Staff members as CSV: one row per employee, so an enterprise keeps thousands of staff cards in
a spreadsheet. Columns: `id`, `name`, then one column per field of the member's card data,
named by its path (`employee.name`, `employee.mobile`).

An import is checked whole before anything is written: every row against the staff schema and,
when a template is named, its fields against that template's schema, so the answer lists every
bad row (row number as the spreadsheet shows it, the column's full path, the rule or limit it
breaks, in Chinese) and a file with one bad row writes nothing.

Limits keep a file, and so every later export, bounded: `MAX_COLUMNS` field columns per file
and per enterprise (an export writes every column for every row: rows × columns is what it
costs), `MAX_DEPTH` parts in a path, `MAX_CELL` characters in a cell, `MAX_ROWS` rows; the
numbers are stafflimits.py's, which the JSON API holds its members to as well.

A cell reads back as what was exported (docs/console.md, "Staff CSV"):
- a cell that starts with `'` is text: the `'` is taken off and the rest kept exactly, spaces
  too. The export puts a `'` before any text a spreadsheet would run as a formula (`=`, `+`,
  `-`, `@`, tab, CR), text that starts with `'` itself, has spaces around it or is empty, and
  every text in a number or boolean column;
- a column named `path:number` or `path:boolean` holds JSON numbers and true/false (the export
  names a column so when any member has a number or true/false there); other cells are text,
  or what the template (`?template=`) says the field is;
- blank cells are left out (an empty text is written `'`);
- a column's name that starts with `'` is the field path after it, taken as written: the export
  names so a top-level field called `id` or `name` (`'id` is the data's `id`, not the member's),
  and a path that starts with `'` itself.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from infra import jsonio
from renderer.schema_text import field_schema, field_title, violation_text

from .model import SCHEMAS
from .stafflimits import MAX_CELL, MAX_DEPTH, MAX_FILE_ROWS, MAX_NAME, MAX_PATHS, leaves

MAX_ROWS = MAX_FILE_ROWS  # rows of a file
MAX_COLUMNS = MAX_PATHS  # field columns of a file, and distinct field paths of an enterprise's staff
MAX_PROBLEMS = 500  # reported; the count of bad rows is always exact
FORMULA = ("=", "+", "-", "@", "\t", "\r")
TEXT = "'"  # the mark of a text cell
FIXED = ("id", "name")
TYPED = ("number", "boolean")  # a column's kind after its `:`; "" for text
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
INT_RANGE = (-(2**63), 2**64 - 1)  # what JSON documents store (orjson)
_STAFF = jsonschema_rs.Draft202012Validator(SCHEMAS["staff"])
_FIXED_TITLES = {"id": "ID", "name": "姓名"}


@dataclass(slots=True)
class Parsed:
    members: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    bad_rows: int = 0
    paths: list[str] = field(default_factory=list)  # the file's field columns, without their kind


class OutOfRange(ValueError):
    """A number JSON documents cannot hold."""


# -- cells ---------------------------------------------------------------------------------------


def literal(text: str) -> int | float | bool | None:
    """`text` as a JSON number or true/false (any case), else None; OutOfRange when too large."""
    if NUMBER.fullmatch(text):
        if "." in text or "e" in text or "E" in text:
            value = float(text)
            if value in (float("inf"), float("-inf")):
                raise OutOfRange(text)
            return value
        n = int(text)
        if not INT_RANGE[0] <= n <= INT_RANGE[1]:
            raise OutOfRange(text)
        return n
    low = text.lower()
    return (low == "true") if low in ("true", "false") else None


def kind_of(value: Any) -> str:
    """The column kind a value needs: "number", "boolean" or "" (text)."""
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else ""


def cell(value: Any, typed: bool) -> str:
    """One value as its cell, `typed` when its column is a number or boolean one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # the shortest text that reads back as the same number
    if value is None:
        return ""
    text = value if isinstance(value, str) else jsonio.dumps_str(value)  # a list: its JSON, as text
    marked = (
        not text
        or text.startswith((*FORMULA, TEXT))
        or text != text.strip()
        or typed  # a number or boolean column: its text is marked
    )
    return TEXT + text if marked else text


def flatten(data: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    """(path written with dots, value) of every field: the columns a member's data makes."""
    for keys, v in leaves(data):
        yield ".".join(keys), v


# -- export --------------------------------------------------------------------------------------


class NewColumn(Exception):
    """A member written after the columns were taken has a field (or kind) the header lacks."""


def scan(columns: dict[str, str], members: Iterable[dict[str, Any]]) -> None:
    """Add the field paths of `members` to `columns` (path → kind), in order of appearance."""
    for m in members:
        for path, value in flatten(m.get("data") or {}):
            kind = kind_of(value)
            if path not in columns or (kind and not columns[path]):
                columns[path] = kind


def column_name(path: str, kind: str) -> str:
    """The header cell of a field path: marked when it would read as a fixed column or a mark."""
    name = TEXT + path if path in FIXED or path.startswith(TEXT) else path
    return f"{name}:{kind}" if kind else name


def header(columns: dict[str, str]) -> str:
    return _line([*FIXED, *(column_name(p, k) for p, k in columns.items())])


class Rows:
    """The rows of one export, with the columns its header fixed: a row is the member's own
    cells placed into a blank row of the header's width (most cells of a wide export are blank)."""

    def __init__(self, columns: dict[str, str]) -> None:
        self.columns = columns
        self.at = {p: i for i, p in enumerate(columns, start=len(FIXED))}
        self.blank = [""] * (len(columns) + len(FIXED))

    def __call__(self, members: Iterable[dict[str, Any]]) -> str:
        """The members' rows, every column in each: rows × columns cells at most."""
        out = []
        for m in members:
            cells = self.blank.copy()
            cells[0], cells[1] = cell(m["id"], False), cell(m["name"], False)
            for path, value in flatten(m.get("data") or {}):
                kind = self.columns.get(path)
                if kind is None or (kind_of(value) and not kind):
                    raise NewColumn(path)
                cells[self.at[path]] = cell(value, bool(kind))
            out.append(cells)
        return _line(*out) if out else ""


def _line(*rows_: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows_)
    return buf.getvalue()


# -- import --------------------------------------------------------------------------------------


def _problem(row: int, column: str, kind: str, message: str, **more: Any) -> dict[str, Any]:
    return {"row": row, "column": column, "kind": kind, "message": message, **more}


@dataclass(frozen=True, slots=True)
class Column:
    path: str
    parts: list[str]
    kind: str  # "number", "boolean" or "" (as the template says, else text)


def _columns(head: list[str]) -> tuple[list[Column], list[dict[str, Any]]]:
    """The header's field columns, or the problems that make it unusable."""
    problems = []
    names = head[2:]
    if len(names) > MAX_COLUMNS:
        problems.append(
            _problem(1, "", "columns", f"表头有 {len(names)} 个字段列，一个文件最多 {MAX_COLUMNS} 列")
        )
        return [], problems
    cols, first = [], {}
    for i, name in enumerate(names, start=3):
        typed = name.endswith(tuple(f":{k}" for k in TYPED))
        path, _, kind = name.rpartition(":") if typed else (name, "", "")
        marked = path.startswith(TEXT)
        path = path[1:] if marked else path
        parts = path.split(".")
        bad = _column_problem(i, name, path, parts, first, marked)
        if bad:
            problems.append(_problem(1, path[:60], *bad))
        first.setdefault(path, i)
        cols.append(Column(path, parts, kind))
    return cols, problems


def _column_problem(
    i: int, name: str, path: str, parts: list[str], first: dict[str, int], marked: bool = False
) -> tuple[str, str] | None:
    """(kind, message) of what is wrong with column `i`'s name, if anything."""
    if not name:
        return "header", f"第 {i} 列没有列名：列名是字段路径，如 employee.name"
    if len(parts) > MAX_DEPTH:
        return "depth", f"第 {i} 列的路径有 {len(parts)} 层，字段路径最多 {MAX_DEPTH} 层"
    if len(path) > MAX_NAME:  # the path: its `:number` or `:boolean` is not counted
        return "header", f"第 {i} 列的字段路径有 {len(path)} 个字，最多 {MAX_NAME} 个"
    if not all(p.strip() for p in parts):
        return "header", f"第 {i} 列「{path}」不是字段路径：各段用一个点隔开，不能有空段"
    if path in first or (path in FIXED and not marked):
        other = first[path] if path in first else FIXED.index(path) + 1
        hint = f"；员工资料里名为 {path} 的字段写作「'{path}」" if path in FIXED else ""
        return "header", f"列「{path}」出现了两次：第 {other} 列和第 {i} 列{hint}"
    return None


def _leaf_type(schema: dict[str, Any] | None, path: list[str]) -> str:
    node: Any = schema or {}
    for part in path:
        node = (node.get("properties") or {}).get(part) if isinstance(node, dict) else None
        if node is None:
            return "string"
    t = node.get("type", "string") if isinstance(node, dict) else "string"
    return t if isinstance(t, str) else next((x for x in t if x != "null"), "string")


def _typed(text: str, kind: str) -> Any:
    """A cell as the template's field wants it; a cell that does not convert stays text (and
    the schema says what is wrong with it)."""
    if kind in ("integer", "number", "boolean"):
        value = literal(text)
        ok = {
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[kind]
        return value if ok else text
    return text


def _data_schema(template_schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The template's schema as a staff member's part of the data: no field is required (the
    card's own data has the rest), every field still checked."""
    if template_schema is None:
        return None
    return {**template_schema, "required": []}


def _reader(text: str) -> Iterable[list[str]]:
    # newline="": \r\n, \n and a lone \r (old Mac spreadsheets) all end a row
    return csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))


def parse(text: str, template_schema: dict[str, Any] | None = None) -> Parsed:
    """Rows → staff documents, or the problems of every bad row (then `members` is partial and
    must not be written)."""
    out = Parsed()
    reader = iter(_reader(text))
    try:
        head = [h.strip() for h in next(reader, [])]
    except csv.Error:
        head = []
    if head[:2] != list(FIXED):
        out.problems.append(
            _problem(1, "", "header", "第一行须以 id,name 开头，其后每列一个字段路径，如 employee.name")
        )
        out.bad_rows = 1
        return out
    cols, out.problems = _columns(head)
    if out.problems:
        out.bad_rows = 1
        return out
    out.paths = [c.path for c in cols]
    dschema = _data_schema(template_schema)
    kinds = [c.kind or _leaf_type(dschema, c.parts) for c in cols]
    check = _Check(cols, kinds, dschema)
    rowno = 1
    while True:
        rowno += 1
        try:
            row = next(reader, None)
        except csv.Error as exc:
            out.bad_rows += 1
            out.problems.append(_csv_problem(rowno, exc))
            break  # the reader cannot find the next row's start
        if row is None:
            break
        if not any(c.strip() for c in row):
            continue  # blank lines, as spreadsheets leave them
        if len(out.members) + out.bad_rows >= MAX_ROWS:
            out.problems.append(
                _problem(rowno, "", "rows", f"超过 {MAX_ROWS} 行：一个文件最多 {MAX_ROWS} 行员工")
            )
            out.bad_rows += 1
            break
        row_problems = check.row(row, rowno, out.members)
        if row_problems:
            out.bad_rows += 1
            out.problems.extend(row_problems[: max(0, MAX_PROBLEMS - len(out.problems))])
    return out


def _csv_problem(rowno: int, exc: csv.Error) -> dict[str, Any]:
    if "field larger than field limit" in str(exc):
        return _problem(
            rowno,
            "",
            "cell_too_long",
            f"有一格超过 {MAX_CELL} 个字：一格最多 {MAX_CELL} 个字，文件在此停止检查",
        )
    return _problem(rowno, "", "csv", f"CSV 格式有误，文件在此停止检查（{exc}）")


class _Check:
    """One row at a time: its cells read, its member built and checked against the schemas."""

    def __init__(self, cols: list[Column], kinds: list[str], dschema: dict[str, Any] | None) -> None:
        self.cols, self.kinds, self.dschema = cols, kinds, dschema
        self.data_validator = jsonschema_rs.Draft202012Validator(dschema) if dschema else None
        self.seen: dict[str, int] = {}

    def row(self, row: list[str], rowno: int, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
        width = len(self.cols) + 2
        if len(row) > width:
            return [_problem(rowno, "", "cells", f"这一行有 {len(row)} 格，表头只有 {width} 列")]
        row = row + [""] * (width - len(row))
        problems: list[dict[str, Any]] = []
        fixed = []
        for name, raw in zip(FIXED, row[:2], strict=True):
            value = self._cell(raw, "", "string", name, rowno, problems)
            fixed.append("" if value is None else value)
        data: dict[str, Any] = {}
        owner: dict[str, str] = {}  # an object's path → the column that made it, for conflicts
        for col, kind, raw in zip(self.cols, self.kinds, row[2:], strict=True):
            value = self._cell(raw, col.kind, kind, col.path, rowno, problems)
            if value is not None:
                self._place(data, owner, col, value, rowno, problems)
        if problems:
            return problems
        member: dict[str, Any] = {"id": fixed[0], "name": fixed[1], "data": data}
        if not _STAFF.is_valid(member):
            problems += [
                _schema_problem(e, rowno, SCHEMAS["staff"], fixed=True) for e in _STAFF.iter_errors(member)
            ]
        if self.data_validator is not None and not self.data_validator.is_valid(data):
            problems += [
                _schema_problem(e, rowno, self.dschema or {}) for e in self.data_validator.iter_errors(data)
            ]
        mid = fixed[0]
        if mid in self.seen:
            other = self.seen[mid]
            problems.append(
                _problem(rowno, "id", "duplicate", f"ID「{mid}」与第 {other} 行重复", other_row=other)
            )
        self.seen.setdefault(mid, rowno)
        if not problems:
            members.append(member)
        return problems

    @staticmethod
    def _cell(
        raw: str, col_kind: str, kind: str, path: str, rowno: int, problems: list[dict[str, Any]]
    ) -> Any:
        """The value of one cell; None when blank or wrong (the problem then added)."""
        if len(raw) - raw.startswith(TEXT) > MAX_CELL:  # the value: a text's `'` is not counted
            problems.append(
                _problem(rowno, path, "cell_too_long", f"有 {len(raw)} 个字，一格最多 {MAX_CELL} 个字")
            )
            return None
        if "\x00" in raw:
            problems.append(_problem(rowno, path, "nul", "含有 NUL 字符（\\0）：一格里不能有这个字符"))
            return None
        if raw.startswith(TEXT):
            return raw[1:]
        text = raw.strip()
        if not text:
            return None
        try:
            if col_kind:
                value = literal(text)
                if value is None:
                    label = "数字" if col_kind == "number" else "true 或 false"
                    problems.append(
                        _problem(
                            rowno, path, "type",
                            f"「{path}」列名带 :{col_kind}，这一格须为{label}；文字请以 ' 开头",
                        )
                    )  # fmt: skip
                return value
            return _typed(text, kind)
        except OutOfRange:
            problems.append(
                _problem(rowno, path, "range", f"数字 {text[:30]} 超出范围：整数须在 ±9.2×10¹⁸ 之内")
            )
            return None

    @staticmethod
    def _place(
        data: dict[str, Any],
        owner: dict[str, str],
        col: Column,
        value: Any,
        rowno: int,
        problems: list[dict[str, Any]],
    ) -> None:
        node = data
        for i, part in enumerate(col.parts[:-1]):
            prefix = ".".join(col.parts[: i + 1])
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(_conflict(rowno, prefix, col.path))
                return
            owner.setdefault(prefix, col.path)
            node = nxt
        last = col.parts[-1]
        if last in node:  # an object made by a deeper column already sits here
            problems.append(_conflict(rowno, col.path, owner.get(col.path, col.path)))
            return
        node[last] = value


def _conflict(rowno: int, parent: str, child: str) -> dict[str, Any]:
    return _problem(
        rowno, child, "nesting", f"「{parent}」和「{child}」都有值：一个字段不能既有值又有下级字段"
    )


def _schema_problem(err: Any, rowno: int, schema: dict[str, Any], fixed: bool = False) -> dict[str, Any]:
    """A violation as the cell it is in: the full column path (a missing `title` of `employee`
    is column `employee.title`) and the rule in Chinese, naming the field by its title."""
    path = [str(p) for p in err.instance_path]
    kind = err.kind
    detail = {k: v for k, v in kind.as_dict().items() if k not in ("value", "instance")}
    if kind.name == "required":
        path.append(str(kind.property))
    elif kind.name == "additionalProperties" and len(detail.get("unexpected", [])) == 1:
        path.append(str(detail["unexpected"][0]))
    if fixed:
        title = _FIXED_TITLES.get(path[0], path[0]) if path else "员工"
        column = path[0] if path else ""
    else:
        title, column = field_title(schema, path), ".".join(path)
    message = violation_text(kind.name, detail, title, field_schema(schema, path))
    return _problem(rowno, column, kind.name, message[:240])
