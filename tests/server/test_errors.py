"""The error model: one exception, one registry of codes, one domain table, one renderer."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian import errors
from mingpian.app import create_app
from mingpian.cli import main
from mingpian.errors import (
    DOMAIN_ERRORS,
    ERROR_CODES,
    ApiError,
    ErrorCodeMismatch,
    api_error_for,
    error_table_markdown,
    register_domain_error,
)
from mingpian.middleware import json_errors
from mingpian.settings import PROJECT_ROOT, Settings
from renderer import DataInvalid, Problem, TemplateNotFound
from tests.support.client import ClientFactory

Client = TestClient[Any, web.Application]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """A stand-in for another package's domain exception (the chatbot's AuthError, …)."""

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems


async def _app_client(
    aiohttp_client: ClientFactory, settings: Settings, routes: dict[str, Handler]
) -> Client:
    """The real app (its middleware) with extra routes that raise what a test needs."""
    app = create_app(settings)
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return await aiohttp_client(app)


def _raising(exc: BaseException) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    return handler


# -- ApiError ------------------------------------------------------------------------------------


def test_api_error_body_is_the_documented_shape() -> None:
    err = ApiError(422, "unknown_line", "+864006001111 is not a line", path="$.caller")
    assert err.body() == {
        "error": "unknown_line",
        "message": "+864006001111 is not a line",
        "problems": [{"path": "$.caller", "message": "+864006001111 is not a line"}],
    }
    bare = ApiError(401, "unauthorized", "unknown API key")
    assert bare.body() == {"error": "unauthorized", "message": "unknown API key"}  # no problems key
    many = ApiError(422, "invalid", "bad", problems=[{"path": "$.a", "message": "x"}], limit=3)
    assert many.body() == {
        "error": "invalid",
        "message": "bad",
        "problems": [{"path": "$.a", "message": "x"}],
        "limit": 3,
    }


def test_from_body_rebuilds_an_error_sent_as_data() -> None:
    """Media workers send their errors across the process boundary as bodies."""
    body = {
        "error": "template_error",
        "message": "card.svg.j2:1: DOCTYPE refused",
        "problems": [{"path": "", "message": "DOCTYPE refused", "file": "card.svg.j2", "line": 1}],
        "status": "kept as a body field",
    }
    err = ApiError.from_body(422, body)
    assert (err.status, err.code) == (422, "template_error") and err.body() == body
    with pytest.raises(ErrorCodeMismatch):
        ApiError.from_body(500, body)


@pytest.mark.parametrize(
    ("status", "code"), [(400, "no_such_code"), (404, "invalid_json"), (500, "not_found"), (422, "")]
)
def test_unregistered_code_or_wrong_status_is_refused(status: int, code: str) -> None:
    with pytest.raises(ErrorCodeMismatch):
        ApiError(status, code, "message")


def test_body_keys_cannot_be_overridden_and_path_excludes_problems() -> None:
    with pytest.raises(ValueError, match="error"):
        ApiError(400, "invalid_json", "x", error="other")
    with pytest.raises(ValueError, match="path or problems"):
        ApiError(400, "invalid_json", "x", path="$", problems=[])


def test_http_error_takes_any_error_status() -> None:
    assert ApiError(502, "http_error", "Bad Gateway").status == 502
    with pytest.raises(ErrorCodeMismatch):
        ApiError(302, "http_error", "Found")


async def test_api_error_is_rendered_with_status_body_headers_and_request_id(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    err = ApiError(503, "busy", "the conversation is busy", headers={"Retry-After": "1"}, attempt=2)
    client = await _app_client(aiohttp_client, settings, {"/raise": _raising(err)})
    resp = await client.get("/raise", headers={"X-Request-ID": "err-test-1"})
    assert resp.status == 503 and resp.content_type == "application/json"
    assert resp.headers["Retry-After"] == "1" and resp.headers["X-Request-ID"] == "err-test-1"
    assert await resp.json() == {"error": "busy", "message": "the conversation is busy", "attempt": 2}
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/raise",status="503"} 1' in metrics


# -- domain exceptions ---------------------------------------------------------------------------


def test_renderer_errors_map_through_the_domain_table() -> None:
    missing = api_error_for(TemplateNotFound("no template named 'x'", [Problem("$", "unknown")]))
    assert missing is not None and missing.status == 404
    assert missing.body() == {
        "error": "template_not_found",
        "message": "no template named 'x'",
        "problems": [{"path": "$", "message": "unknown"}],
    }
    invalid = api_error_for(DataInvalid("data does not match", []))
    assert invalid is not None and (invalid.status, invalid.code) == (422, "data_invalid")
    assert invalid.body()["problems"] == []  # renderer bodies always list their problems

    class Narrower(TemplateNotFound):  # the nearest registered base class answers
        pass

    sub = api_error_for(Narrower("gone"))
    assert sub is not None and (sub.status, sub.code) == (404, "template_not_found")
    assert api_error_for(KeyError("x")) is None


async def test_domain_exception_raised_by_a_handler_becomes_its_api_error(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await _app_client(
        aiohttp_client,
        settings,
        {"/missing": _raising(TemplateNotFound("no template named 'x'", [Problem("name", "unknown")]))},
    )
    resp = await client.get("/missing")
    assert resp.status == 404 and resp.headers["X-Request-ID"]
    assert await resp.json() == {
        "error": "template_not_found",
        "message": "no template named 'x'",
        "problems": [{"path": "name", "message": "unknown"}],
    }


async def test_registered_domain_exception_gets_its_status_code_and_headers(
    aiohttp_client: ClientFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(errors, "DOMAIN_ERRORS", dict(DOMAIN_ERRORS))
    register_domain_error(Refused, 503, "busy", headers={"Retry-After": "1"})
    register_domain_error(Refused, 503, "busy", headers={"Retry-After": "1"})  # the same again: fine
    client = await _app_client(
        aiohttp_client,
        settings,
        {"/refused": _raising(Refused("too contended", [{"path": "$.x", "message": "changed"}]))},
    )
    resp = await client.get("/refused")
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    assert await resp.json() == {
        "error": "busy",
        "message": "too contended",
        "problems": [{"path": "$.x", "message": "changed"}],
    }


def test_register_domain_error_refuses_what_the_registry_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "DOMAIN_ERRORS", dict(DOMAIN_ERRORS))
    with pytest.raises(ErrorCodeMismatch):
        register_domain_error(Refused, 401, "no_such_code")
    with pytest.raises(ErrorCodeMismatch):
        register_domain_error(Refused, 400, "unauthorized")
    with pytest.raises(TypeError):
        register_domain_error(Refused, 401)  # no code, and no to_json/kind to take one from
    register_domain_error(Refused, 401, "unauthorized")
    with pytest.raises(ValueError, match="already"):
        register_domain_error(Refused, 403, "forbidden")


async def test_unhandled_exception_is_a_logged_generic_500(
    aiohttp_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await _app_client(aiohttp_client, settings, {"/boom": _raising(RuntimeError("secret detail"))})
    resp = await client.get("/boom")
    rid = resp.headers["X-Request-ID"]
    assert resp.status == 500
    assert await resp.json() == {
        "error": "internal_error",
        "message": "internal server error",
        "requestId": rid,
    }
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == rid and r.exc_info]
    assert logged and "secret detail" in str(logged[0].exc_info[1])  # type: ignore[index]


# -- plain aiohttp HTTP errors -------------------------------------------------------------------


async def test_unmatched_route_is_a_json_404(client: Client) -> None:
    resp = await client.get("/no/such/route", headers={"X-Request-ID": "nf-1"})
    assert resp.status == 404 and resp.headers["X-Request-ID"] == "nf-1"
    assert await resp.json() == {"error": "not_found", "message": "Not Found"}


async def test_every_answer_names_the_server_without_versions(client: Client) -> None:
    sample = (await (await client.get("/api/templates/courier-hangup")).json())["sampleData"]
    answers = [
        await client.post("/api/templates/courier-hangup/render", json=sample),
        await client.post("/api/templates/courier-hangup/render", json={"waybill": 1}),
        await client.get("/no/such/route"),
        await client.delete("/api/templates"),
        await client.get("/healthz"),
        await client.get("/metrics"),
        await client.get("/"),
        await client.get("/console"),
        await client.get("/reports"),
    ]
    assert [r.status for r in answers] == [200, 422, 404, 405, 200, 200, 200, 200, 200]
    assert {r.headers.get("Server") for r in answers} == {"Mingpian"}
    # The browser pages' security headers (one hook for the studio, the console and the reports
    # page) and none on the API's answers.
    framed = [r.headers.get("X-Frame-Options") for r in answers]
    assert framed == [None] * 6 + ["DENY"] * 3


async def test_wrong_method_is_a_json_405_keeping_allow(client: Client) -> None:
    resp = await client.delete("/api/templates")
    assert resp.status == 405 and resp.content_type == "application/json"
    assert "GET" in resp.headers["Allow"] and resp.headers["X-Request-ID"]
    assert await resp.json() == {"error": "method_not_allowed", "message": "Method Not Allowed"}


async def test_body_over_client_max_size_is_a_json_413(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings.with_(max_body_bytes=1024)))
    big = io.BytesIO(json.dumps({"x": "字" * 2000}).encode())
    resp = await client.post(
        "/api/templates/courier-hangup/render", data=big, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413 and resp.headers["X-Request-ID"]
    body = await resp.json()
    assert body["error"] == "body_too_large" and "max_body_bytes" in body["message"]


async def test_plain_http_exception_of_any_status_is_json(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await _app_client(
        aiohttp_client,
        settings,
        {
            "/gone": _raising(web.HTTPGone()),
            "/conflict": _raising(web.HTTPConflict()),
            "/moved": _raising(web.HTTPFound("/healthz")),
        },
    )
    gone = await client.get("/gone")
    assert gone.status == 410 and await gone.json() == {"error": "http_error", "message": "Gone"}
    assert (await (await client.get("/conflict")).json())["error"] == "conflict"
    moved = await client.get("/moved", allow_redirects=False)  # not an error: passed through
    assert moved.status == 302 and moved.headers["Location"] == "/healthz" and moved.headers["X-Request-ID"]


async def test_json_errors_middleware_serves_an_app_without_observe(aiohttp_client: ClientFactory) -> None:
    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/raise", _raising(ApiError(404, "unknown_bot", "no chatbot named 'x'", path="bot")))
    app.router.add_get("/render", _raising(DataInvalid("bad data", [Problem("$.a", "is required")])))
    client = await aiohttp_client(app)
    resp = await client.get("/raise")
    assert resp.status == 404 and (await resp.json())["problems"] == [
        {"path": "bot", "message": "no chatbot named 'x'"}
    ]
    resp = await client.get("/render")
    assert resp.status == 422 and (await resp.json())["error"] == "data_invalid"
    resp = await client.get("/nowhere")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"


# -- the domain table covers every package's refusals -----------------------------------------


async def test_chatbot_and_delivery_refusals_are_answered_from_the_domain_table(
    aiohttp_client: ClientFactory,
) -> None:
    from chatbot.errors import Busy, UnknownBot
    from delivery.errors import InProgress, UnknownLine

    raised: list[Exception] = [
        Busy("changed 16 times"),
        UnknownBot("nobot"),
        InProgress("call 1; retry"),
        UnknownLine("neither caller nor callee is a line of any enterprise"),
    ]

    async def refuse(request: web.Request) -> web.Response:
        raise raised[int(request.match_info["i"])]

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/r/{i}", refuse)
    client = await aiohttp_client(app)
    busy = await client.get("/r/0")
    assert busy.status == 503 and busy.headers["Retry-After"] == "1"
    assert await busy.json() == {"error": "busy", "message": "changed 16 times"}
    bot = await client.get("/r/1")
    assert bot.status == 404 and (await bot.json())["problems"] == [
        {"path": "bot", "message": "no chatbot named 'nobot'"}
    ]
    assert (await client.get("/r/2")).status == 409
    line = await (await client.get("/r/3")).json()
    assert line["error"] == "unknown_line" and line["problems"][0]["path"] == "$.caller"
    with pytest.raises(ErrorCodeMismatch):
        ApiError(400, "not_a_code", "x")


# -- the registry is complete, documented and in the OpenAPI document ------------------------------

CODE_USE = re.compile(r"(?:ApiError)\(\s*(\d{3}),\s*\"([a-z_]+)\"")
ERROR_LITERAL = re.compile(r"\"error\":\s*\"([a-z_]+)\"")


def test_every_code_in_the_source_is_registered_with_its_status() -> None:
    """Also covers modules still on the transition helpers, and hand-built error bodies."""
    seen = 0
    for path in sorted((PROJECT_ROOT / "mingpian").rglob("*.py")):
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        text = path.read_text("utf-8")
        for status, code in CODE_USE.findall(text):
            seen += 1
            assert code in ERROR_CODES, f"{rel}: {code!r} is not registered"
            assert int(status) in ERROR_CODES[code].statuses, f"{rel}: {code!r} with HTTP {status}"
        for code in ERROR_LITERAL.findall(text):
            assert code in ERROR_CODES, f"{rel}: {code!r} is not registered"
    assert seen > 40


DOC_BLOCK = re.compile(r"<!-- error-codes[^>]*-->\n(.*?)<!-- /error-codes -->", re.S)


def test_docs_error_table_matches_the_registry() -> None:
    doc = (PROJECT_ROOT / "docs" / "api.md").read_text("utf-8")
    match = DOC_BLOCK.search(doc)
    assert match, "docs/api.md has no <!-- error-codes --> block"
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", match.group(1), re.M))
    missing = [c for c in ERROR_CODES if c not in documented]
    unknown = [c for c in documented if c not in ERROR_CODES]
    assert not missing, f"registered but not in docs/api.md: {missing}"
    assert not unknown, f"in docs/api.md but not registered: {unknown}"
    for code, entry in ERROR_CODES.items():
        assert documented[code].strip() == entry.status_text(), f"{code}: docs say HTTP {documented[code]}"
    assert match.group(1) == error_table_markdown(), "docs/api.md's table differs: paste `mingpian errors`"


def test_errors_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["errors"]) == 0
    assert capsys.readouterr().out == error_table_markdown()


async def test_openapi_error_schema_lists_the_codes(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"] == list(ERROR_CODES)


def test_docs_shape_example_uses_a_registered_code() -> None:
    doc = (PROJECT_ROOT / "docs" / "api.md").read_text("utf-8")
    assert all(code in ERROR_CODES for code in ERROR_LITERAL.findall(doc))


def test_registry_rows_are_plain_text() -> None:
    for entry in ERROR_CODES.values():
        assert "|" not in entry.meaning and "\n" not in entry.meaning, entry.code
        assert entry.statuses and all(400 <= s <= 599 for s in entry.statuses), entry.code


# What the console never receives: rendering, media jobs, the studio's preview chat and the
# MaaP's webhook answers go to designers' tools and platforms, not to the console's pages.
NOT_FOR_THE_CONSOLE = {
    "unknown_format", "unknown_profile", "template_not_found", "template_error", "render_error",
    "invalid_parameter", "job_finished", "cancelled", "render_failed", "render_timeout", "worker_died",
    "encoder_failed", "invalid_body", "invalid_session", "invalid_field", "empty_message",
    "chatbot_disabled", "no_bot", "preview_failed", "invalid_event", "unknown_bot", "unknown_message",
}  # fmt: skip


def test_the_console_says_every_code_it_may_receive_in_chinese() -> None:
    """A code the console has no words for shows as a bare HTTP status to a person."""
    capi = (PROJECT_ROOT / "mingpian/console/static/capi.js").read_text("utf-8")
    table = capi[capi.index("const CODES = {") : capi.index("};", capi.index("const CODES = {"))]
    said = set(re.findall(r"^\s+([a-z_]+): '", table, re.M))
    missing = sorted(set(ERROR_CODES) - NOT_FOR_THE_CONSOLE - said)
    assert missing == [], f"mingpian/console/static/capi.js has no Chinese text for {missing}"
