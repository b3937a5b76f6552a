"""The bounds of an enterprise's staff, one definition for each door members come in by: the CSV
import (staffcsv.py) and the JSON API (the `staff` schema in model.py, and `data_problems` for
what a schema cannot say).

An export writes every field path of the enterprise as a column and every column for every
member, so the count of paths, their depth and names, each value's size and the count of members
bound what an export costs; and a member the JSON API takes is one an export writes and an
import reads back (a path is a CSV column's name: its keys joined by dots).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from infra import jsonio

from .storage import DeliveryStore

# Staff of an enterprise by default (setting `delivery_staff_max`): a national courier has
# hundreds of thousands of couriers, each a line with a staff card. An export streams a page at
# a time, so this bounds what is stored, not what an export holds in memory.
MAX_MEMBERS = 1_000_000
MAX_FILE_ROWS = 50_000  # rows of one CSV file (a larger staff is imported in several files)
MAX_PATHS = 200  # field paths of a member or a file, and distinct ones of an enterprise's staff
MAX_DEPTH = 8  # keys in a path
MAX_NAME = 200  # characters of a path written with dots (a column's name)
MAX_CELL = 4_000  # characters of a value: a text, or a list's JSON text (what a cell holds)

PAGE = 500  # staff read per query when the enterprise's are scanned
RULES = (
    f"at most {MAX_PATHS} field paths (values that are not objects) per member and {MAX_PATHS} distinct "
    f"ones across the enterprise's staff, {MAX_DEPTH} keys per path, {MAX_NAME} characters per path "
    f"written with dots (employee.title), {MAX_CELL} characters per text and per list's JSON text"
)


def _value(level: int) -> dict[str, Any]:
    """The schema of the value at a path's `level`-th key: an object only above the last level."""
    if level == MAX_DEPTH:
        return {"type": ["string", "number", "boolean", "null", "array"], "maxLength": MAX_CELL}
    return {"maxLength": MAX_CELL, **_object(level + 1)}


def _object(level: int) -> dict[str, Any]:
    return {
        "maxProperties": MAX_PATHS,
        "propertyNames": {"maxLength": MAX_NAME},
        "additionalProperties": _value(level),
    }


def data_schema() -> dict[str, Any]:
    """A member's `data` as JSON Schema: depth, key and text lengths, keys per object."""
    return {
        "type": "object",
        "description": f"merged into the card data for this member's line; {RULES}",
        **_object(1),
    }


def leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (keys, value) of `data` whose value is not an object: its field paths."""
    for k, v in data.items():
        if isinstance(v, dict):
            yield from leaves(v, (*prefix, k))
        else:
            yield (*prefix, k), v


def data_problems(data: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """What the schema cannot say of a member's `data` (already valid against it): the count of
    its paths, a path's name and a list's JSON text; (keys under `data`, message) each."""
    problems: list[tuple[tuple[str, ...], str]] = []
    count = 0
    for keys, value in leaves(data):
        count += 1
        name = ".".join(keys)
        if len(name) > MAX_NAME:
            problems.append((keys, f"the path {name[:40]}… has {len(name)} characters, at most {MAX_NAME}"))
        elif isinstance(value, list) and len(text := jsonio.dumps_str(value)) > MAX_CELL:
            problems.append((keys, f"the list's JSON text has {len(text)} characters, at most {MAX_CELL}"))
    if count > MAX_PATHS:
        problems.insert(0, ((), f"{count} field paths, at most {MAX_PATHS} per member"))
    return problems


def paths_of(members: Iterable[dict[str, Any]], into: set[str]) -> None:
    """The field paths of `members` (written with dots, as columns are named), added to `into`."""
    for m in members:
        into.update(".".join(keys) for keys, _ in leaves(m.get("data") or {}))


async def pages(store: DeliveryStore, eid: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The enterprise's staff a page at a time, in id order, yielding to the loop between pages."""
    last = ""
    while True:
        page = await store.after("staff", eid, last, PAGE)
        if not page:
            return
        yield page
        last = page[-1]["id"]
        await asyncio.sleep(0)


async def paths_past_bound(store: DeliveryStore, eid: str, paths: set[str], replaced: set[str]) -> int:
    """0 when members with `paths` (replacing those of ids `replaced`) keep the enterprise within
    `MAX_PATHS` distinct paths or bring none that its other members lack; else the count they would
    make. Reads the staff only until every one of `paths` is found among the others (the usual
    case: a first page), to the end only for a write that brings a new path."""
    missing, seen = set(paths), set[str]()
    if not missing:
        return 0
    async for page in pages(store, eid):
        paths_of((m for m in page if m["id"] not in replaced), seen)
        missing -= seen
        if not missing:
            return 0  # nothing new: allowed even to staff written before the bound
    total = len(seen) + len(missing)
    return total if total > MAX_PATHS else 0


async def members_past_bound(store: DeliveryStore, eid: str, ids: set[str], limit: int = MAX_MEMBERS) -> int:
    """0 when writing members of `ids` keeps the enterprise within `limit` members; else the
    count it would have. Counts from the index; looks ids up only near the bound."""
    count = (await store.page("staff", eid, "", 1, 0)).total
    if count + len(ids) <= limit:
        return 0
    if len(ids) <= PAGE:
        present = sum([await store.get("staff", eid, i) is not None for i in ids])
    else:
        present = 0
        async for page in pages(store, eid):
            present += sum(m["id"] in ids for m in page)
    after = count + len(ids) - present
    return after if after > limit else 0
