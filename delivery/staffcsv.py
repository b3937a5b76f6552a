"""Staff members as CSV: one row per employee, so an enterprise keeps thousands of staff cards in
a spreadsheet. Columns: `id`, `name`, then one column per field of the member's card data,
named by its path (`employee.name`, `employee.mobile`).

An import is checked whole before anything is written: every row against the staff schema and,
when a template is named, its fields against that template's schema, so the answer lists every
bad row (row number as the spreadsheet shows it, column, reason) and a file with one bad row
writes nothing. Exported cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`)
get a leading `'`, which the import takes off again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from .model import SCHEMAS

MAX_ROWS = 50_000
MAX_PROBLEMS = 500  # reported; the count of bad rows is always exact
FORMULA = ("=", "+", "-", "@", "\t", "\r")
FIXED = ("id", "name")
_STAFF = jsonschema_rs.Draft202012Validator(SCHEMAS["staff"])
_STAFF_DETAIL = Draft202012Validator(SCHEMAS["staff"])


@dataclass(slots=True)
class Parsed:
    members: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    bad_rows: int = 0


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in data.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else _json_scalar(value))
    return "'" + text if text.startswith(FORMULA) else text


def _json_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export(members: list[dict[str, Any]]) -> str:
    """Every member as one row; columns: id, name, then every data path in order of appearance."""
    flat = [dict(_flatten(m.get("data") or {})) for m in members]
    columns: dict[str, None] = {}
    for f in flat:
        columns.update(dict.fromkeys(f))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([*FIXED, *columns])
    for m, f in zip(members, flat, strict=True):
        w.writerow([_cell(m["id"]), _cell(m["name"]), *(_cell(f.get(c, "")) for c in columns)])
    return out.getvalue()


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
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _data_schema(template_schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The template's schema as a staff member's part of the data: no field is required (the
    card's own data has the rest), every field still checked."""
    if template_schema is None:
        return None
    return {**template_schema, "required": []}


def parse(text: str, template_schema: dict[str, Any] | None = None) -> Parsed:
    """Rows → staff documents, or the problems of every bad row (then `members` is partial and
    must not be written)."""
    out = Parsed()
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip() for h in next(reader, [])]
    if header[:2] != list(FIXED):
        out.problems.append(
            {"row": 1, "column": "", "kind": "header", "message": "the first row must start with: id,name"}
        )
        out.bad_rows = 1
        return out
    paths = [h.split(".") for h in header[2:]]
    problems = out.problems
    bad_columns = [h for h in header[2:] if not h or any(not p for p in h.split("."))]
    bad_columns += [h for i, h in enumerate(header) if h in header[:i]]
    if bad_columns:
        for col in bad_columns:
            problems.append(
                {"row": 1, "column": col, "message": "a column is a field path like employee.name, once"}
            )
        out.bad_rows = 1
        return out
    dschema = _data_schema(template_schema)
    kinds = [_leaf_type(dschema, p) for p in paths]
    fast = jsonschema_rs.Draft202012Validator(dschema) if dschema else None
    detail = Draft202012Validator(dschema) if dschema else None
    seen: dict[str, int] = {}
    for rowno, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue  # blank lines, as spreadsheets leave them
        if len(out.members) + out.bad_rows >= MAX_ROWS:
            problems.append(
                {"row": rowno, "column": "", "kind": "rows", "message": f"more than {MAX_ROWS} rows"}
            )
            out.bad_rows += 1
            break
        row_problems = _row(row, rowno, header, paths, kinds, fast, detail, seen, out.members)
        if row_problems:
            out.bad_rows += 1
            problems.extend(row_problems[: max(0, MAX_PROBLEMS - len(problems))])
    return out


def _unformula(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA) else cell


def _row(
    row: list[str],
    rowno: int,
    header: list[str],
    paths: list[list[str]],
    kinds: list[str],
    fast: Any,
    detail: Draft202012Validator | None,
    seen: dict[str, int],
    members: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    if len(row) > len(header):
        return [
            {
                "row": rowno,
                "column": "",
                "kind": "cells",
                "message": f"{len(row)} cells; the header has {len(header)}",
            }
        ]
    cells = [_unformula(c.strip()) for c in row] + [""] * (len(header) - len(row))
    data: dict[str, Any] = {}
    for path, kind, cell in zip(paths, kinds, cells[2:], strict=True):
        if cell == "":
            continue
        node = data
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                return [
                    {
                        "row": rowno,
                        "column": ".".join(path),
                        "message": "a field and its parent both have values",
                    }
                ]
            node = nxt
        node[path[-1]] = _typed(cell, kind)
    member: dict[str, Any] = {"id": cells[0], "name": cells[1], "data": data}
    problems: list[dict[str, Any]] = []
    if not _STAFF.is_valid(member):
        for e in _STAFF_DETAIL.iter_errors(member):
            col = str(e.absolute_path[0]) if e.absolute_path else ""
            problems.append(
                {"row": rowno, "column": col, "kind": str(e.validator), "message": e.message[:200]}
            )
    if fast is not None and not fast.is_valid(data):
        for e in detail.iter_errors(data) if detail else ():
            col = ".".join(str(p) for p in e.absolute_path)
            problems.append(
                {"row": rowno, "column": col, "kind": str(e.validator), "message": e.message[:200]}
            )
    if cells[0] in seen:
        problems.append(
            {
                "row": rowno,
                "column": "id",
                "kind": "duplicate",
                "message": f"id {cells[0]!r} is also on row {seen[cells[0]]}",
                "other_row": seen[cells[0]],
            }
        )
    seen.setdefault(cells[0], rowno)
    if not problems:
        members.append(member)
    return problems
