"""Request middleware: request id, one structured log line, metrics, and JSON errors.

Nothing a client sends can produce a traceback in a response. Errors are rendered here and only
here, from the model in mingpian/errors.py: an `ApiError` a handler raised, a domain exception of
`DOMAIN_ERRORS` (renderer errors become 4xx with their problems), an outage of PostgreSQL or
Redis (503 with `Retry-After`, whatever the driver raised; logged once per outage, not per
request), a plain aiohttp HTTP error (an unmatched route's 404, a 405 with its `Allow`,
client_max_size's 413), and anything unexpected, which is logged with the request id and
answered with a generic 500 JSON body.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web, web_response

from infra.outage import unavailable

from .clientaddr import client_address
from .errors import ApiError, api_error_for, code_for_status
from .httpjson import json_response
from .keys import metrics_key

log = logging.getLogger("mingpian.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
request_id_key = web.RequestKey("request_id", str)
# Headers of a plain aiohttp error that describe its text body, not the error.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


SERVER = "Mingpian"


def hide_server_version() -> None:
    """`Server: Mingpian`, without the versions of aiohttp and Python aiohttp would announce,
    on every answer: the handlers' (aiohttp fills in the module's default when preparing a
    response; a response hook doing the same cost ~2% of a render's CPU) and those aiohttp
    writes itself before any application code runs (a request line or header it cannot parse:
    400). Process-wide, and idempotent."""
    web_response.SERVER_SOFTWARE = SERVER


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return resource.canonical


def error_response(err: ApiError) -> web.Response:
    """The response of an API error: its JSON body, status and headers."""
    return json_response(err.body(), status=err.status, headers=err.headers or None)


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    """A plain aiohttp HTTP error as an API error, keeping headers such as Allow."""
    message = exc.reason
    if exc.status == 413:
        message = "request body is larger than the server accepts (see max_body_bytes)"
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    return ApiError(exc.status, code_for_status(exc.status), message, headers=headers)


def _error(exc: Exception, rid: str) -> web.Response:
    """The JSON response for what a handler raised.

    Re-raised as they are: redirects and other non-error HTTP exceptions, and HTTP exceptions
    that already carry a JSON body.
    """
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400 or exc.content_type == "application/json":
            raise exc
        return error_response(_from_http_exception(exc))
    outage = unavailable(exc)  # PostgreSQL or Redis away: 503, logged once per outage, not per request
    mapped = api_error_for(outage if outage is not None else exc)
    if mapped is not None:
        return error_response(mapped)
    log.error("unhandled error", exc_info=exc, extra={"request_id": rid})
    return error_response(ApiError(500, "internal_error", "internal server error", requestId=rid))


_ID_PREFIX = os.urandom(8).hex()  # unique per process start
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    """Unique, not secret: a per-process random prefix and a counter (32 hex digits). A
    getrandom() syscall per request cost ~2% of the render path's CPU."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER)
    rid = incoming if incoming and _SAFE_ID.match(incoming) else _new_request_id()
    request[request_id_key] = rid
    start = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except Exception as exc:
            response = _error(exc, rid)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = rid
        return response
    except web.HTTPException as exc:  # one that _error passes through
        exc.headers[REQUEST_ID_HEADER] = rid
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - start
        route = _route_name(request)
        metrics = request.app[metrics_key]
        metrics.requests.inc(request.method, route, str(status))
        metrics.latency.observe(elapsed, request.method, route)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "remote": client_address(request),  # behind trusted proxies: the client
                },
            )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The same JSON errors for a private app that runs without `observe` (no log, no metrics),
    such as a loopback app serving one of the API's handlers."""
    try:
        return await handler(request)
    except Exception as exc:
        return _error(exc, request.get(request_id_key) or _new_request_id())
