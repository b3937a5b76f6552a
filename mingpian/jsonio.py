"""JSON in and out of the server, through orjson.

Serialising a carousel's messageList takes ~21 µs with the standard library and ~1.2 µs with
orjson; on the render path that is the difference between meeting the throughput target and
not. Output is UTF-8 with CJK unescaped, as the standard `ensure_ascii=False` would give.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .errors import ApiError

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def json_response(obj: Any, *, status: int = 200, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=content_type,
                        charset="utf-8", headers=headers)


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in v)
    return True


def is_json_content_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json_body(request: web.Request, max_depth: int, *, allow_empty: bool = False) -> Any:
    """The request's JSON body, or an ApiError: 415 wrong type, 400 malformed/deep/empty (a body
    over client_max_size is aiohttp's 413, rendered by the middleware)."""
    if not request.body_exists:
        if allow_empty:
            return None
        raise ApiError(400, "empty_body", "request body is empty; send a JSON object", path="$")
    if not is_json_content_type(request.content_type):
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Type must be application/json, got {request.content_type!r}")
    raw = await request.read()  # bounded by client_max_size → 413 via the middleware
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        try:
            raw = raw.decode(charset).encode("utf-8")
        except (UnicodeError, LookupError):
            raise ApiError(400, "invalid_encoding", f"request body is not valid {charset}") from None
    try:
        data = loads(raw)
    except JSONDecodeError as exc:
        if "depth limit" in exc.msg:
            raise ApiError(400, "too_deep", f"JSON nested deeper than {max_depth} levels", path="$") from None
        if "utf-8" in exc.msg.lower() or "surrogate" in exc.msg:
            raise ApiError(400, "invalid_encoding",
                           f"request body is not valid UTF-8 JSON: {exc.msg}") from None
        where = f"line {exc.lineno} column {exc.colno}"
        raise ApiError(400, "invalid_json", f"malformed JSON at {where}: {exc.msg}", path="$") from None
    # Only walk the value when it could be too deep: one C-speed count of the brackets.
    if raw.count(b"[") + raw.count(b"{") > max_depth and not _depth_ok(data, max_depth):
        raise ApiError(400, "too_deep", f"JSON nested deeper than {max_depth} levels", path="$")
    return data
