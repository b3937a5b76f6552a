"""Request bodies of the delivery API: JSON, then the resource's JSON Schema, then numbers.

Valid bodies are checked by the compiled (Rust) validator in about a microsecond; only an
invalid one pays for the detailed report naming each JSON path.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from aiohttp import web
from jsonschema import Draft202012Validator

from delivery import stafflimits
from delivery.model import SCHEMAS, NumberError, normalize_number
from delivery.storage import DocumentStore
from renderer.jsonpath import json_path

from ...errors import ApiError
from ...httpjson import read_json_body
from ...keys import settings_key

_DETAILED = {k: Draft202012Validator(v) for k, v in SCHEMAS.items()}
_FAST = {k: jsonschema_rs.Draft202012Validator(v) for k, v in SCHEMAS.items()}
MAX_PROBLEMS = 20


async def body(request: web.Request, kind: str) -> dict[str, Any]:
    """The request's JSON body, valid against the `kind` schema; else a 4xx naming the path."""
    data = await read_json_body(request, request.app[settings_key].max_json_depth)
    return validate(kind, data)


def validate(kind: str, data: Any) -> dict[str, Any]:
    if _FAST[kind].is_valid(data):
        return data  # type: ignore[no-any-return]
    errors = sorted(
        _DETAILED[kind].iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path))
    )
    if not errors:
        return data  # type: ignore[no-any-return]
    problems = [
        {"path": json_path(e.absolute_path), "message": e.message[:300]} for e in errors[:MAX_PROBLEMS]
    ]
    raise ApiError(
        422, "invalid", f"{kind}: {problems[0]['path']}: {problems[0]['message']}", problems=problems
    )


def number(raw: str, path: str) -> str:
    try:
        return normalize_number(raw)
    except NumberError as exc:
        raise ApiError(422, "invalid_number", str(exc), path=path) from None


async def own_line(store: DocumentStore, eid: str, number: str, path: str) -> dict[str, Any]:
    """The enterprise's line of that (normalised) number; a number of nobody and another
    enterprise's answer alike (422 `unknown_line` at `path`)."""
    line = await store.get("line", eid, number)
    if line is None:
        raise ApiError(422, "unknown_line", f"{number} is not a line of this enterprise", path=path)
    return line


async def staff_member(
    store: DocumentStore, eid: str, member: dict[str, Any], new: bool, max_members: int
) -> None:
    """A member (valid against its schema) within the staff CSV's bounds, so that an export
    writes it and an import reads it back: its own paths (422 at each JSON path), then the
    enterprise's distinct paths and, for a `new` member, its count of members (409, the limit named)."""
    problems = [
        {"path": json_path(("data", *keys)), "message": message}
        for keys, message in stafflimits.data_problems(member.get("data") or {})
    ]
    if problems:
        raise ApiError(
            422, "invalid", f"staff: {problems[0]['path']}: {problems[0]['message']}",
            problems=problems[:MAX_PROBLEMS],
        )  # fmt: skip
    paths: set[str] = set()
    stafflimits.paths_of([member], paths)
    count = await stafflimits.paths_past_bound(store, eid, paths, {member["id"]})
    if count:
        raise ApiError(
            409,
            "conflict",
            f"the enterprise's staff would have {count} distinct field paths, at most "
            f"{stafflimits.MAX_PATHS}: use the fields the other members have",
            path="$.data",
        )
    if new and (count := await stafflimits.members_past_bound(store, eid, {member["id"]}, max_members)):
        raise ApiError(
            409, "conflict", f"the enterprise has {count - 1} staff members, at most {max_members}"
        )
