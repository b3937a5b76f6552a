"""The HTTP API's error model: every error code it answers, the one exception handlers raise, and
the one table that turns domain exceptions into API errors.

A client sees `{"error": code, "message": …, "problems": [{"path": "$.x", "message": …}], …}`.
Codes are a contract: `ERROR_CODES` lists each once with its HTTP status and meaning (docs/api.md
shows the same table; a test keeps them equal), and `ApiError` refuses a code or status that is
not registered, so a typo fails in tests rather than reaching a client. The middleware
(mingpian/middleware.py) renders `ApiError`, the domain exceptions of `DOMAIN_ERRORS` and plain
aiohttp HTTP errors the same way.

Nothing here imports aiohttp: the media worker processes use `api_error_for` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatbot.approval import BadTime
from chatbot.errors import (
    AuthError,
    BadEvent,
    Busy,
    InfoNotTaken,
    InfoPending,
    InfoUnsupported,
    MalformedBody,
    SourceRefused,
    UnknownBot,
)
from delivery.errors import InProgress, UnknownLine
from infra.outage import RETRY_AFTER, Unavailable
from renderer import DataInvalid, LimitExceeded, RenderError, TemplateInvalid, TemplateNotFound

ANY_ERROR_STATUS = frozenset(range(400, 600))


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One stable `error` value: the statuses it may come with, and what it means to a client."""

    code: str
    statuses: frozenset[int]
    meaning: str
    # The name of a plain aiohttp HTTP error of this (single) status: an unmatched route's 404,
    # a 405, client_max_size's 413 (see `code_for_status`).
    plain: bool = False

    def status_text(self) -> str:
        if self.statuses == ANY_ERROR_STATUS:
            return "4xx, 5xx"
        return ", ".join(str(s) for s in sorted(self.statuses))


def _c(code: str, status: int | Iterable[int], meaning: str, *, plain: bool = False) -> ErrorCode:
    return ErrorCode(code, frozenset([status] if isinstance(status, int) else status), meaning, plain)


def _index(*entries: ErrorCode) -> dict[str, ErrorCode]:
    out = {e.code: e for e in entries}
    assert len(out) == len(entries), "an error code is listed twice"
    return out


# Every code the API answers, once. Adding one: a row here and the same row in docs/api.md
# (`mingpian errors` prints the table).
ERROR_CODES: Mapping[str, ErrorCode] = _index(
    # -- any route: the request itself, the transport, the server
    _c("bad_request", 400, "the request is malformed (an HTTP 400 with no more specific code)", plain=True),
    _c("empty_body", 400, "the body is empty; a JSON object is expected"),
    _c("invalid_json", 400, "the body is not well-formed JSON (line and column in the message)"),
    _c("invalid_encoding", 400, "the body is not valid UTF-8, or not valid in its declared charset"),
    _c("too_deep", 400, "the JSON nests deeper than `max_json_depth`"),
    _c("unauthorized", 401, "credentials are missing or wrong", plain=True),
    _c("forbidden", 403, "the credentials do not allow this", plain=True),
    _c(
        "csrf_failed",
        403,
        "a console write without its session's `X-CSRF-Token`, a card page's form without its "
        "`token`, or either from another origin",
    ),
    _c("not_found", 404, "no such route, file, job or record", plain=True),
    _c(
        "method_not_allowed",
        405,
        "the route does not take this method; `Allow` lists those it takes",
        plain=True,
    ),
    _c("not_acceptable", 406, "no representation matches the `Accept` header", plain=True),
    _c("conflict", 409, "the request conflicts with the current state (no more specific code)", plain=True),
    _c("body_too_large", 413, "the body is larger than `max_body_bytes`", plain=True),
    _c("unsupported_media_type", 415, "the body is not `application/json` (or `+json`)", plain=True),
    _c(
        "range_not_satisfiable",
        416,
        "the `Range` is outside the file; `Content-Range` gives its size",
        plain=True,
    ),
    _c("unprocessable", 422, "well-formed but cannot be processed (no more specific code)", plain=True),
    _c("too_many_requests", 429, "too many requests; `Retry-After` says when to try again", plain=True),
    _c("not_ready", 503, "the process cannot serve yet (`/readyz`): the message names what is not ready"),
    _c(
        "unavailable",
        503,
        "PostgreSQL or Redis does not answer (the message names it); nothing was accepted: retry "
        "after `Retry-After` seconds",
    ),
    _c("internal_error", 500, "an unexpected server error; the body's `requestId` finds it in the log"),
    _c("http_error", ANY_ERROR_STATUS, "any other HTTP error status, named by its message"),
    # -- templates and rendering
    _c("unknown_format", 400, "`format` names no registered output format"),
    _c("unknown_profile", 400, "`profile` names no carrier profile"),
    _c("template_not_found", 404, "no template of that name"),
    _c("data_invalid", 422, "the data fails the template's schema: every violation with its JSON path"),
    _c("limit_exceeded", 422, "the card breaks a carrier-profile limit or the GSMA payload schema"),
    _c("template_error", 422, "the template itself is broken: problems carry file and line"),
    _c("render_error", 422, "the renderer refused the card for another reason"),
    # -- media
    _c("invalid_parameter", 400, "a media query parameter is out of range or not one of its choices"),
    _c("job_finished", 409, "the media job already finished and cannot be cancelled"),
    _c("cancelled", 409, "the media render was cancelled"),
    _c("render_failed", 500, "the media render failed unexpectedly"),
    _c("render_timeout", 422, "the media render ran past `media_time_limit`; its worker was stopped"),
    _c("worker_died", 500, "the media worker process died during the render"),
    _c("encoder_failed", 500, "the video encoder failed"),
    # -- studio preview chat
    _c("invalid_body", 400, "the body is JSON but not an object"),
    _c("invalid_session", 400, "the preview session id is malformed"),
    _c("invalid_field", 400, "a field has the wrong type or is too long"),
    _c("empty_message", 400, "neither a postback nor any text to send"),
    _c("chatbot_disabled", 404, "this server runs no chatbot"),
    _c("no_bot", 404, "no chatbot answers this tap or text"),
    _c("preview_failed", 502, "the preview loop did not deliver the bot's replies"),
    # -- chatbot webhooks
    _c("invalid_event", 400, "valid JSON (or XML) but not an event of the platform's dialect"),
    _c("invalid_time", 400, "a review callback's time is neither 'YY-MM-DD HH:MM:SS' nor ISO 8601"),
    _c("unknown_bot", 404, "no chatbot of that name"),
    _c("unknown_message", 404, "no outbound message with that id"),
    _c("busy", 503, "the conversation is too contended; retry after `Retry-After` seconds"),
    _c(
        "info_pending", 409, "an update of the chatbot's information already waits for the carrier's decision"
    ),
    _c(
        "info_unsupported",
        422,
        "the chatbot's platform takes no information updates (China Mobile, GSMA, or no MaaP account)",
    ),
    _c("maap_refused", 502, "the MaaP did not take the request; its answer is in the message"),
    # -- delivery
    _c("invalid_query", 400, "a query parameter is missing or malformed"),
    _c("exists", 409, "a record with that id already exists"),
    _c("taken", 409, "the number is already a line (whose is told only to the operator)"),
    _c("chatbot_taken", 409, "the chatbot address belongs to another enterprise"),
    _c(
        "brand_locked",
        409,
        "the enterprise has verified lines: its brand changes through a brand change request",
    ),
    _c("request_pending", 409, "a brand change request of this enterprise is already pending"),
    _c(
        "not_pending",
        409,
        "the brand change request or card version no longer waits for a decision (decided, "
        "withdrawn or replaced)",
    ),
    _c("in_progress", 409, "another server process is accepting this call event; retry"),
    _c("invalid", 422, "the body fails the resource's schema: problems name each JSON path"),
    _c("invalid_number", 422, "not a phone number that can be normalised"),
    _c("id_mismatch", 422, "the body changes the record's id, which cannot change"),
    _c(
        "unknown_line",
        (404, 422),
        "the number is not a line (of this enterprise): 404 for a call event's or reply's own "
        "numbers, 422 for a card, package or estimate naming one",
    ),
    _c("unknown_staff", 422, "no staff member with that id"),
    _c("unknown_template", 422, "no card template of that name"),
    # -- card SMS: the platform's callbacks and template registration
    _c("bad_signature", 401, "a platform callback whose signature is missing or wrong; nothing was changed"),
    _c("stale_callback", 401, "a platform callback whose timestamp is too far from now; nothing was changed"),
    _c("replayed", 409, "a platform callback whose nonce was used before; nothing was changed"),
    _c(
        "cardsms_refused",
        502,
        "the card-SMS platform did not take the template; its answer is in the message",
    ),
    # -- the media library
    _c("not_multipart", 400, "the upload is not `multipart/form-data` with one `file` part"),
    _c("unsupported_media", 415, "by its bytes, the file is neither a picture nor a video the library keeps"),
    _c("undecodable_media", 422, "the file starts like a picture or video but does not decode as one"),
    _c("media_too_large", 413, "the upload passes a size cap; `limit` names it"),
    _c("media_too_long", 422, "the video lasts longer than `library_max_seconds`; `limit` names it"),
    _c("quota_exceeded", 409, "the enterprise's library would pass `library_quota` bytes"),
    _c(
        "fetch_refused",
        422,
        "the photo URL may not be fetched (not https, host not listed, not public) or failed",
    ),
)


class ErrorCodeMismatch(ValueError):
    """An error built with an unregistered code, or a status its registry entry does not allow."""


def check_code(status: int, code: str) -> ErrorCode:
    entry = ERROR_CODES.get(code)
    if entry is None:
        raise ErrorCodeMismatch(f"error code {code!r} is not in mingpian.errors.ERROR_CODES")
    if status not in entry.statuses:
        raise ErrorCodeMismatch(f"error code {code!r} comes with HTTP {entry.status_text()}, not {status}")
    return entry


_PLAIN_CODES = {next(iter(e.statuses)): e.code for e in ERROR_CODES.values() if e.plain}


def code_for_status(status: int) -> str:
    """The code of a plain HTTP error (one raised by aiohttp, not by a handler)."""
    return _PLAIN_CODES.get(status, "http_error")


class ApiError(Exception):
    """An error answer: raise it from a handler and the middleware renders it.

    `path` is shorthand for one problem at that JSON path (or parameter name) with the message;
    `problems` lists several. `headers` go on the response (`Retry-After`, `Allow`, …); `extra`
    keys are added to the body after the standard ones.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        path: str | None = None,
        problems: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        check_code(status, code)
        if path is not None and problems is not None:
            raise ValueError("give path or problems, not both")
        if reserved := {"error", "message", "problems"} & extra.keys():
            raise ValueError(f"extra body keys {sorted(reserved)} would replace standard ones")
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems: list[Mapping[str, Any]] | None = None
        if path:
            self.problems = [{"path": path, "message": message}]
        elif problems is not None:
            self.problems = list(problems)
        self.headers: dict[str, str] = dict(headers or {})
        self.extra = extra

    @classmethod
    def from_body(
        cls, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> ApiError:
        """The error whose body is `body` (`{"error", "message", "problems"?, …}`), e.g. one that
        crossed a process boundary as data, or a domain exception's `to_json()`."""
        rest = dict(body)
        code, message = rest.pop("error"), rest.pop("message")
        err = cls(status, code, message, problems=rest.pop("problems", None), headers=headers)
        err.extra = rest  # set, not passed: a body key may share a name with a parameter
        return err

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.problems is not None:
            out["problems"] = self.problems
        out.update(self.extra)
        return out

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


# -- domain exceptions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainError:
    """How one domain exception type is answered. `code=None`: the exception names its own code,
    as renderer errors do through `to_json()` (their `kind`)."""

    status: int
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


# The one table of domain exceptions the API answers (the nearest registered base class wins),
# filled below for every package: renderer, chatbot, delivery.
DOMAIN_ERRORS: dict[type[Exception], DomainError] = {}


def register_domain_error(
    exc_type: type[Exception],
    status: int,
    code: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer `exc_type` (and its subclasses) with this status and code. The body's message is
    `str(exc)`, its problems `exc.problems` when present. With no code the exception must have
    `to_json()` returning the whole body (`{"error", "message", "problems"}`) and a `kind`."""
    own = code or getattr(exc_type, "kind", None)
    if not isinstance(own, str) or (code is None and not callable(getattr(exc_type, "to_json", None))):
        raise TypeError(f"{exc_type.__name__}: give a code, or give the type a `kind` and `to_json()`")
    check_code(status, own)
    entry = DomainError(status, code, dict(headers or {}))
    if DOMAIN_ERRORS.setdefault(exc_type, entry) != entry:
        raise ValueError(f"{exc_type.__name__} is already answered as {DOMAIN_ERRORS[exc_type]}")


def api_error_for(exc: BaseException) -> ApiError | None:
    """The API error a domain exception is answered with, or None when it is not in the table."""
    entry = next((DOMAIN_ERRORS[c] for c in type(exc).__mro__ if c in DOMAIN_ERRORS), None)
    if entry is None:
        return None
    to_json = getattr(exc, "to_json", None)
    if callable(to_json):
        body = dict(to_json())
        if entry.code is not None:
            body["error"] = entry.code
        return ApiError.from_body(entry.status, body, entry.headers)
    assert entry.code is not None  # register_domain_error refuses a code-less type without to_json
    raw = getattr(exc, "problems", None)
    problems = [p.to_json() if hasattr(p, "to_json") else p for p in raw] if raw is not None else None
    return ApiError(entry.status, entry.code, str(exc), problems=problems, headers=entry.headers)


register_domain_error(TemplateNotFound, 404)
register_domain_error(DataInvalid, 422)
register_domain_error(LimitExceeded, 422)
# A broken template is not the caller's fault, but it is an expected, explained outcome for a
# designer previewing their work: 422 with file:line, never a bare 500.
register_domain_error(TemplateInvalid, 422)
register_domain_error(RenderError, 422)  # any other renderer refusal
# the chatbot runtime's refusals of a platform callback (each before anything is stored)
register_domain_error(AuthError, 401, "unauthorized")
register_domain_error(SourceRefused, 403, "forbidden")
register_domain_error(UnknownBot, 404, "unknown_bot")
register_domain_error(MalformedBody, 400, "invalid_json")
register_domain_error(BadEvent, 400, "invalid_event")
register_domain_error(BadTime, 400, "invalid_time")
register_domain_error(Busy, 503, "busy", headers={"Retry-After": "1"})
# the chatbot's refusals of an update of its information
register_domain_error(InfoPending, 409, "info_pending")
register_domain_error(InfoUnsupported, 422, "info_unsupported")
register_domain_error(InfoNotTaken, 502, "maap_refused")
# delivery's refusals of a call event
register_domain_error(UnknownLine, 404, "unknown_line")
register_domain_error(InProgress, 409, "in_progress")
# a shared backend's outage, whichever package met it (the middleware maps the drivers' own errors)
register_domain_error(Unavailable, 503, "unavailable", headers={"Retry-After": str(RETRY_AFTER)})


def error_table_markdown() -> str:
    """The error table of docs/api.md."""
    rows = ["| `error` code | HTTP status | meaning |", "|---|---|---|"]
    rows += [f"| `{e.code}` | {e.status_text()} | {e.meaning} |" for e in ERROR_CODES.values()]
    return "\n".join(rows) + "\n"
