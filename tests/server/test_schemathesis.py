"""The OpenAPI document tells the truth: schemathesis generates requests for every operation of
the live document of a real server process and finds no 5xx, no response outside its declared
status codes, content types and schemas, and no request the document calls valid rejected.

A bounded run (a few examples per operation, derandomized) that stays well under a minute; the
server has a seeded enterprise so that generated ids sometimes meet real records."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings  # schemathesis brings hypothesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from mingpian.settings import PROJECT_ROOT
from tests.support.processes import free_port, wait_port

OPERATOR = "mpk_schemathesis-operator-key-0123456789"
EXAMPLES = 6  # per operation
BUDGET = 60.0  # seconds for the whole run
# Routes whose query parameters the server once took beyond what the document allows (a search
# past its maxLength, an empty day, a flag or format outside its enum) and the event stream: more
# examples, valid and invalid, on the seeded enterprise and a real template so they reach the code
CLOSER: dict[str, dict[str, str]] = {
    "GET /api/enterprises/{eid}/optouts": {"eid": "sf"},
    "GET /api/enterprises/{eid}/usage": {"eid": "sf"},
    "GET /api/enterprises/{eid}/report": {"eid": "sf"},
    "GET /api/enterprises/{eid}/reports/funnel": {"eid": "sf"},
    "GET /api/enterprises/{eid}/lines": {"eid": "sf"},
    "GET /api/enterprises/{eid}/cards": {"eid": "sf"},
    "GET /api/lines": {},
    "GET /api/templates/{name}/events": {"name": "bank-confirm"},
}
CLOSER_EXAMPLES = 40
CLOSER_BUDGET = 90.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    seed = tmp / "seed.yaml"
    seed.write_text(
        yaml.safe_dump(
            {
                "operator_keys": [OPERATOR],
                "enterprises": [
                    {"id": "sf", "name": "顺丰速运", "signature": "顺丰速运", "lines": [{"number": "95338"}]}
                ],
            },
            allow_unicode=True,
        ),
        "utf-8",
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        MINGPIAN_PORT=str(port),
        MINGPIAN_DATA_DIR=str(tmp / "var"),
        MINGPIAN_DELIVERY_SEED=str(seed),
        MINGPIAN_WEBHOOK_CSP_TOKEN="csp-token",
        MINGPIAN_LOG_LEVEL="ERROR",
        MINGPIAN_MEDIA_WORKERS="1",
    )
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "serve"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
    )
    try:
        wait_port(port, proc, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_no_operation_breaks_its_document(server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 60
    session = requests.Session()
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    failures: list[str] = []
    started = time.monotonic()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            if case.path.startswith("/maap/"):  # webhooks: no credentials here, so 401 before parsing
                response = case.call(base_url=server, session=session, timeout=30)
            else:
                response = case.call(base_url=server, session=session, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's finding, then fail once
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert elapsed < BUDGET, f"the run took {elapsed:.0f} s"
    # no version in Server: (aiohttp would announce itself and Python's), its own 400s included
    resp = session.get(f"{server}/healthz")
    assert resp.headers["Server"] == "Mingpian"
    host, port = server.removeprefix("http://").split(":")
    for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(raw)
            head = sock.recv(4096).split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0].split()[1] == b"400" and b"Server: Mingpian" in head, head


def _examples(
    strategy: Any,
    count: int,
    server: str,
    session: requests.Session,
    headers: dict[str, str],
    checks: list[Any],
) -> Any:
    """A hypothesis test calling the server with `count` cases of `strategy`, each checked."""

    @given(case=strategy)
    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=server, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=checks)

    return run


def _days_in_order(case: Any) -> bool:
    """from ≤ to, and (the funnel) at most 366 days from one to the other: rules between two
    parameters that a schema cannot state."""
    query = case.query or {}
    first, last = str(query.get("from") or ""), str(query.get("to") or "")
    if first and last and first > last:
        return False
    if case.path.endswith("/reports/funnel") and first:
        try:
            end = date.fromisoformat(last) if last else date.today() + timedelta(days=1)
            return (end - date.fromisoformat(first)).days < 366
        except ValueError:
            return True  # a malformed day: the server refuses it, as the schema does
    return True


def test_the_routes_that_took_invalid_queries_now_refuse_them(server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/api/openapi.json")
    operations = {op.label: op for op in (r.ok() for r in schema.get_all_operations()) if op.label in CLOSER}
    assert set(operations) == set(CLOSER)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    failures: list[str] = []
    started = time.monotonic()
    for label, operation in operations.items():
        # (from ≤ to is a rule between two parameters that a schema cannot state: kept to here)
        strategy = operation.as_strategy(path_parameters=CLOSER[label] or None).filter(_days_in_order)
        try:
            _examples(strategy, CLOSER_EXAMPLES, server, session, headers, CHECKS)()
        except Exception as exc:
            failures.append(f"{label}: {str(exc)[:1500]}")
    # what schemathesis found taken, each refused now (its negative mode also sends unknown
    # parameters and drops the key, which a server rightly ignores or answers 401: asked here)
    long_q = "门" * 101
    for path in (
        f"/api/enterprises/sf/optouts?q={long_q}",
        "/api/enterprises/sf/optouts?to=&from=2026-13-01",
        "/api/enterprises/sf/optouts?format=null",
        "/api/enterprises/sf/usage?format=null",
        "/api/enterprises/sf/usage?from=2026-02-30",
        f"/api/enterprises/sf/lines?q={long_q}",
        f"/api/lines?q={long_q}",
        "/api/lines?unverified=null",
        "/api/lines?unverified=true",
    ):
        resp = session.get(f"{server}{path}", headers=headers, timeout=10)
        if resp.status_code != 400 or resp.json()["error"] != "invalid_query":
            failures.append(f"GET {path[:80]}: {resp.status_code} {resp.text[:200]}")
    for path in ("/api/enterprises/sf/optouts?to=&from=", "/api/enterprises/sf/report?from=&to=2026-01-01"):
        resp = session.get(f"{server}{path}", headers=headers, timeout=10)  # an empty day: open end
        if resp.status_code != 200:
            failures.append(f"GET {path}: {resp.status_code} {resp.text[:200]}")
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert elapsed < CLOSER_BUDGET, f"the run took {elapsed:.0f} s"


def test_the_document_declares_what_the_server_enforces(server: str) -> None:
    doc = requests.get(f"{server}/api/openapi.json", timeout=10).json()
    schemes = doc["components"]["securitySchemes"]
    used = {
        name
        for ops in doc["paths"].values()
        for op in ops.values()
        for req in op.get("security", [])
        for name in req
    }
    assert used and used <= set(schemes)
    card = doc["components"]["schemas"]["DeliveryCard"]["properties"]
    assert "courier-hangup" in card["template"]["enum"] and card["line"]["pattern"].startswith("^")
    assert (
        "valid_to must be after valid_from" in doc["components"]["schemas"]["DeliveryPackage"]["description"]
    )
    render = doc["paths"]["/api/templates/{name}/render"]["post"]
    params = {p["name"]: p["schema"] for p in render["parameters"]}
    assert "default" in params["profile"]["enum"] and {"rcs", "sms", "png"} <= set(params["format"]["enum"])
    sse = doc["paths"]["/api/templates/{name}/events"]["get"]["responses"]["200"]["content"]
    assert list(sse) == ["text/event-stream"]
