"""JSON error responses and request-body parsing shared by every JSON endpoint.

Every client mistake becomes a 4xx with a body like
`{"error": "invalid_json", "message": "...", "problems": [{"path": "$.x", "message": "..."}]}`.
"""

from __future__ import annotations

from typing import Any, NoReturn

from aiohttp import web

from renderer import DataInvalid, LimitExceeded, RenderError, TemplateInvalid, TemplateNotFound

from .jsonio import JSONDecodeError, json_response, loads

RENDER_ERROR_STATUS: dict[type[RenderError], int] = {
    TemplateNotFound: 404,
    DataInvalid: 422,
    LimitExceeded: 422,
    # A broken template is not the caller's fault, but it is an expected, explained outcome
    # for a designer previewing their work: 422 with file:line, never a bare 500.
    TemplateInvalid: 422,
}


def json_error(status: int, error: str, message: str,
               problems: list[dict[str, Any]] | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if problems is not None:
        body["problems"] = problems
    body.update(extra)
    return json_response(body, status=status)


def render_error_response(exc: RenderError) -> web.Response:
    status = next((s for t, s in RENDER_ERROR_STATUS.items() if isinstance(exc, t)), 422)
    return json_response(exc.to_json(), status=status)


def raise_json(status: int, error: str, message: str, path: str | None = None) -> NoReturn:
    problems = [{"path": path, "message": message}] if path else None
    raise _http(status, json_error(status, error, message, problems))


def _http(status: int, resp: web.Response) -> web.HTTPException:
    cls = {
        400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden,
        404: web.HTTPNotFound, 406: web.HTTPNotAcceptable, 409: web.HTTPConflict,
        413: web.HTTPRequestEntityTooLarge, 415: web.HTTPUnsupportedMediaType,
        422: web.HTTPUnprocessableEntity, 429: web.HTTPTooManyRequests,
    }.get(status, web.HTTPBadRequest)
    assert isinstance(resp.body, bytes)
    text = resp.body.decode("utf-8")
    if cls is web.HTTPRequestEntityTooLarge:
        return cls(max_size=0, actual_size=0, text=text, content_type="application/json")
    return cls(text=text, content_type="application/json")


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
    """The request's JSON body, or a JSON 4xx: 415 wrong type, 413 too big, 400 malformed/deep."""
    if not request.body_exists:
        if allow_empty:
            return None
        raise_json(400, "empty_body", "request body is empty; send a JSON object", "$")
    if not is_json_content_type(request.content_type):
        raise_json(415, "unsupported_media_type",
                   f"Content-Type must be application/json, got {request.content_type!r}")
    raw = await request.read()  # bounded by client_max_size → 413 via the middleware
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        try:
            raw = raw.decode(charset).encode("utf-8")
        except (UnicodeError, LookupError):
            raise_json(400, "invalid_encoding", f"request body is not valid {charset}")
    try:
        data = loads(raw)
    except JSONDecodeError as exc:
        if "depth limit" in exc.msg:
            raise_json(400, "too_deep", f"JSON nested deeper than {max_depth} levels", "$")
        if "utf-8" in exc.msg.lower() or "surrogate" in exc.msg:
            raise_json(400, "invalid_encoding", f"request body is not valid UTF-8 JSON: {exc.msg}")
        raise_json(400, "invalid_json",
                   f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", "$")
    # Only walk the value when it could be too deep: one C-speed count of the brackets.
    if raw.count(b"[") + raw.count(b"{") > max_depth and not _depth_ok(data, max_depth):
        raise_json(400, "too_deep", f"JSON nested deeper than {max_depth} levels", "$")
    return data
