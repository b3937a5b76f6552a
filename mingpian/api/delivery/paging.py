"""A paged list's query: `?q=` (search), `?limit=` and `?offset=`, checked alike everywhere."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...errors import ApiError

MAX_PAGE = 500
MAX_SEARCH = 100
MAX_OFFSET = 100_000_000  # past any list's end; the databases' own bound (2**63) must not be reached
PAGING: tuple[tuple[str, dict[str, Any]], ...] = (
    ("q", {"type": "string", "maxLength": MAX_SEARCH, "description": "search ids and fields (any case)"}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}),
    ("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
)


def paging(request: web.Request) -> tuple[str, int, int]:
    """`?q=` (search in ids and fields), `?limit=` (1–500) and `?offset=` of a paged list."""
    return (
        search(request),
        _whole(request, "limit", 50, 1, MAX_PAGE),
        _whole(request, "offset", 0, 0, MAX_OFFSET),
    )


def search(request: web.Request) -> str:
    """`?q=`, at most MAX_SEARCH characters as the document says (a longer one is a 400, not cut)."""
    q = request.query.get("q", "").strip()
    if len(q) > MAX_SEARCH:
        raise ApiError(400, "invalid_query", f"q has at most {MAX_SEARCH} characters", path="q")
    return q


def _whole(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """A whole-number query parameter within [lo, hi]; a 400 naming it otherwise."""
    raw = request.query.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_query", f"{name} is a whole number from {lo} to {hi}", path=name)
    return value
