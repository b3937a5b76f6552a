"""Transition path: the JSON error helpers of before mingpian/errors.py, kept (same signatures)
for the modules not yet converted to the error model. New code raises `errors.ApiError` or lets
a domain exception of `errors.DOMAIN_ERRORS` propagate; delete this module with the last import.

Converting a call site:
    raise_json(422, "unknown_line", msg, "$.caller")
        -> raise ApiError(422, "unknown_line", msg, path="$.caller")
    raise web.HTTPBadRequest(text=json_error(400, "invalid_event", msg, problems).text, ...)
        -> raise ApiError(400, "invalid_event", msg, problems=problems)
    return render_error_response(exc) -> let it propagate (the middleware answers renderer errors)
    from .http_errors import read_json_body -> from .jsonio import read_json_body

Unlike `ApiError`, `raise_json` raises an aiohttp HTTP exception, so it is answered even by an
app without the middleware (the studio's preview loop serves the chatbot webhook that way); such
an app serving converted handlers adds `middleware.json_errors`.
"""

from __future__ import annotations

from typing import Any, NoReturn

from aiohttp import web

from renderer import RenderError

from .errors import ApiError, api_error_for
from .jsonio import dumps, read_json_body
from .middleware import error_response

__all__ = ["json_error", "raise_json", "read_json_body", "render_error_response"]


def json_error(status: int, error: str, message: str,
               problems: list[dict[str, Any]] | None = None, **extra: Any) -> web.Response:
    """Transition path: `error_response(ApiError(status, error, message, problems=…, **extra))`."""
    return error_response(ApiError(status, error, message, problems=problems, **extra))


def render_error_response(exc: RenderError) -> web.Response:
    """Transition path: a renderer error answered through the domain table, as the middleware does."""
    err = api_error_for(exc)
    assert err is not None  # RenderError itself is in the table
    return error_response(err)


class _ApiHTTPError(web.HTTPError):
    """An aiohttp HTTP exception of any status carrying an ApiError's body."""

    def __init__(self, err: ApiError) -> None:
        self.status_code = err.status  # HTTPException takes its status from this attribute
        super().__init__(text=dumps(err.body()).decode(), content_type="application/json",
                         headers=err.headers or None)


def raise_json(status: int, error: str, message: str, path: str | None = None) -> NoReturn:
    """Transition path: `raise ApiError(status, error, message, path=path)`."""
    raise _ApiHTTPError(ApiError(status, error, message, path=path))
