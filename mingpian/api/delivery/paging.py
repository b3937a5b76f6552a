"""A paged list's query: `?q=` (search), `?limit=` and `?offset=`, checked alike everywhere."""

from __future__ import annotations

import re
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
    """`?q=`, at most MAX_SEARCH characters as the document says (a longer one is a 400, not cut);
    a number typed as people read it is searched as stored (number_query)."""
    q = request.query.get("q", "").strip()
    if len(q) > MAX_SEARCH:
        raise ApiError(400, "invalid_query", f"q has at most {MAX_SEARCH} characters", path="q")
    return number_query(q)


_NUMBER = re.compile(r"[0-9 ()+\-]+")


def number_query(q: str) -> str:
    """A phone number as the pages show it (0755-8888 1234, 138 0013 8000, +86 138…) as the part
    of the stored E.164 number it is: the separators, a leading +86 and the trunk 0 dropped.
    Anything else is searched as typed."""
    if not _NUMBER.fullmatch(q) or sum(c.isdigit() for c in q) < 3:
        return q
    digits = "".join(c for c in q if c.isdigit())
    if q.lstrip().startswith("+86"):
        digits = digits[2:]
    return digits[1:] if digits.startswith("0") and not digits.startswith("00") else digits


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
