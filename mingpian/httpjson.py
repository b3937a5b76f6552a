"""JSON over HTTP: responses with a JSON body, and request bodies read, bounded and parsed (a
JSON 4xx for every way a body can be wrong). The encoding itself is infra/jsonio.py's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from infra.jsonio import JSONDecodeError, dumps, loads, nesting_within

from .errors import ApiError

__all__ = ["JSONDecodeError", "dumps", "is_json_content_type", "json_response", "loads", "read_json_body"]


def json_response(
    obj: Any,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        body=dumps(obj), status=status, content_type=content_type, charset="utf-8", headers=headers
    )


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
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {request.content_type!r}",
        )
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
            raise ApiError(
                400, "invalid_encoding", f"request body is not valid UTF-8 JSON: {exc.msg}"
            ) from None
        where = f"line {exc.lineno} column {exc.colno}"
        raise ApiError(400, "invalid_json", f"malformed JSON at {where}: {exc.msg}", path="$") from None
    # Only walk the value when it could be too deep: one C-speed count of the brackets.
    if raw.count(b"[") + raw.count(b"{") > max_depth and not nesting_within(data, max_depth):
        raise ApiError(400, "too_deep", f"JSON nested deeper than {max_depth} levels", path="$")
    return data
