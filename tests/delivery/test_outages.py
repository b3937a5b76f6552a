"""Outages of the shared backends under call events: with Redis or PostgreSQL stopped, every call
event is answered 503 with `Retry-After` (the house JSON error), the outage is logged once rather
than once per request, nothing answered 503 was half-accepted, and once the backend is back the
same events are accepted. Receipts the SMSC sends while PostgreSQL is down are applied once it is
back: no delivery is marked failed that was delivered, and nothing falls over to a second card."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from delivery.events import bucket_of
from delivery.metering.redis import RedisCounters
from infra.outage import backend_of, outages
from mingpian.api.delivery import delivery_key
from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings
from simulators.servers import PostgresCluster, RedisServer
from simulators.smsc import GatewaySim, Rule
from tests.support.processes import running_cluster

from .support import (
    CHATBOT,
    OPERATOR,
    RCS_PHONE,
    SF_KEY,
    SF_LINE,
    auth,
    maap_settings,
    rcs_seed,
    seed_doc,
    settle,
)

T = Any


@pytest.fixture(autouse=True)
def no_outage_yet() -> None:
    """Each test starts with no outage on record (the record is the process's)."""
    outages.clear()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of this module's own: its tests stop and start it."""
    yield from running_cluster()


@pytest.fixture
def pg(own_postgres: PostgresCluster) -> Iterator[PostgresCluster]:
    yield own_postgres
    with contextlib.suppress(Exception):  # a failed test must not leave it stopped for the next one
        own_postgres.resume()


async def _app(aiohttp_client: T, settings: Settings, gateway: GatewaySim, tmp: Path, **extra: Any) -> T:
    policy = extra.pop("policy", None)
    doc = extra.pop("seed", None) or seed_doc(policy=policy)
    seed = tmp / "seed.yaml"
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    s = settings.with_(
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{gateway.smpp_port}",
        delivery_smpp_password="secret",
        **extra,
    )
    client = await aiohttp_client(create_app(s))
    assert await client.app[delivery_key].smpp.wait_bound(5)
    return client


async def _fleet_app(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    tmp: Path,
    pg: PostgresCluster,
    redis_url: str,
    **extra: Any,
) -> T:
    """A worker as a fleet runs it: a fresh database on `pg`, the counters on Redis."""
    return await _app(
        aiohttp_client,
        settings,
        gateway,
        tmp,
        database_url=pg.create_database(),
        delivery_counters="redis",
        redis_url=redis_url,
        **extra,
    )


def _callee(i: int) -> str:
    return f"+86139{i:08d}"


async def _post(client: T, call_id: str, callee: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    resp = await client.post(
        "/api/calls",
        json={"call_id": call_id, "caller": SF_LINE, "callee": callee, "phase": "ended"},
        headers=auth(OPERATOR),
    )
    return resp.status, dict(resp.headers), await resp.json()


def _assert_unavailable(answers: list[tuple[int, dict[str, str], dict[str, Any]]], backend: str) -> None:
    assert {a[0] for a in answers} == {503}, answers[:3]
    for _, headers, body in answers:
        assert headers.get("Retry-After", "").isdigit(), headers
        assert body["error"] == "unavailable" and backend in body["message"], body


def _one_outage_line(caplog: pytest.LogCaptureFixture, backend: str) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].exc_info is None and backend in loud[0].getMessage()


async def test_redis_outage_answers_call_events_503_and_logs_it_once(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    redis_server: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await _app(
        aiohttp_client, settings, gateway, tmp_path, delivery_counters="redis", redis_url=redis_server.url
    )
    assert (await _post(client, "before", _callee(0)))[0] == 202
    caplog.set_level(logging.INFO)
    caplog.clear()
    redis_server.stop()
    answers = [await _post(client, f"c{i}", _callee(i)) for i in range(20)]
    _assert_unavailable(answers, "Redis")
    _one_outage_line(caplog, "Redis")
    redis_server.start()
    assert [(await _post(client, f"c{i}", _callee(i)))[0] for i in range(20)] == [202] * 20


async def test_postgres_outage_answers_call_events_503_and_logs_it_once(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    pg: PostgresCluster,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await _fleet_app(aiohttp_client, settings, gateway, tmp_path, pg, redis_url)
    assert (await _post(client, "before", _callee(0)))[0] == 202
    caplog.set_level(logging.INFO)
    caplog.clear()
    pg.halt("fast")
    answers = [await _post(client, f"c{i}", _callee(i)) for i in range(20)]
    _assert_unavailable(answers, "PostgreSQL")
    _one_outage_line(caplog, "PostgreSQL")
    pg.resume()
    # Nothing answered 503 was accepted: each is new when the client sends it again.
    retried = [await _post(client, f"c{i}", _callee(i)) for i in range(20)]
    assert [(a[0], a[2]["duplicate"]) for a in retried] == [(202, False)] * 20


async def test_receipts_during_a_postgres_outage_are_applied_and_nothing_falls_over(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    pg: PostgresCluster,
    redis_url: str,
    tmp_path: Path,
) -> None:
    deadline = 2.0
    client = await _fleet_app(
        aiohttp_client,
        settings,
        gateway,
        tmp_path,
        pg,
        redis_url,
        delivery_lease=2.0,
        policy={"chain": ["ussd", "sms"], "timeouts": {"ussd": deadline, "sms": deadline}},
    )
    gateway.rules = [Rule("deliver", delay=0.8)]  # the receipts arrive while the database is down
    n = 5
    for i in range(n):
        assert (await _post(client, f"r{i}", _callee(i)))[0] == 202
    end = time.monotonic() + 5
    while len(gateway.submits) < n and time.monotonic() < end:
        await asyncio.sleep(0.01)
    assert len(gateway.submits) == n
    pg.halt("fast")
    await asyncio.sleep(deadline + 2.0)  # the receipts came, and the deadline passed, while it was down
    assert gateway.receipts_sent >= n
    pg.resume()
    outcomes = [await settle(client, f"r{i}:ended", timeout=20) for i in range(n)]
    assert [(d["state"], d["channel"]) for d in outcomes] == [("delivered", "ussd")] * n, outcomes
    assert len(gateway.submits) == n and all(v == 1 for v in gateway.by_destination.values())
    # the event stream: each fact once, though the receipts were refused and heard again
    events = client.app[delivery_key].events
    await events.settled()
    day = bucket_of(time.time(), "d")
    got = (await events.counts("sf", outcomes[0]["card"], day, day + 86400))[""]
    assert (got["sent"], got["delivered"]) == (n, n), got


WEBHOOKS = {"messageNotification": "messages", "deliveryNotification": "status"}


async def _webhook(client: T, sim: T, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """One signed callback of the MaaP to the chatbot's webhook, as the platform sends it."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    url = f"/maap/courier/{path}/{sim.chatbot}/{WEBHOOKS[path]}"
    resp = await client.post(url, data=raw, headers=sim.sign(raw))
    return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_an_opt_out_at_the_chatbot_during_a_postgres_outage_is_answered_503_and_kept_on_retry(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    pg: PostgresCluster,
    redis_url: str,
    tmp_path: Path,
    maap: T,
) -> None:
    """The chatbot's own store (Redis) is up, the delivery store is not: the opt-out cannot be
    stored, so the platform must not be told it was received; its retry stores it."""
    sim, server, _ = maap
    client = await _fleet_app(
        aiohttp_client,
        settings,
        gateway,
        tmp_path,
        pg,
        redis_url,
        seed=rcs_seed(),
        store="redis",
        chatbot_dir=PROJECT_ROOT / "chatbots",
        webhook_csp_token="csp-token-outage",
        **maap_settings(sim, server),
    )
    sim.csp_token, sim.chatbot = "csp-token-outage", CHATBOT
    optout = sim.message("tel:" + RCS_PHONE, text="退订", message_id="optout-during-outage")
    report = {"deliveryInfoList": [{"messageId": "card-1", "status": "revokeOk"}]}
    pg.halt("fast")
    for path, body in [("messageNotification", optout), ("deliveryNotification", report)]:
        status, headers, answer = await _webhook(client, sim, path, body)
        assert status == 503, (path, status, answer)
        assert headers.get("Retry-After", "").isdigit() and answer["error"] == "unavailable", answer
    pg.resume()
    # The platform sends the same message again: heard again, though the chatbot's turn was kept.
    assert (await _webhook(client, sim, "messageNotification", optout))[0] == 200
    assert (await _webhook(client, sim, "deliveryNotification", report))[0] == 200
    got = await (await client.get("/api/enterprises/sf/optouts", headers=auth(SF_KEY))).json()
    assert [(o["number"], o["channel"], o["text"]) for o in got["optouts"]] == [(RCS_PHONE, "rcs", "退订")]


FROZEN_BOUND = 15.0  # s: a request to a frozen backend is answered 503 well within this


async def _timed_post(client: T, call_id: str, callee: str) -> tuple[float, tuple[int, dict[str, str], Any]]:
    start = time.monotonic()
    answer = await asyncio.wait_for(_post(client, call_id, callee), 3 * FROZEN_BOUND)
    return time.monotonic() - start, answer


async def test_a_frozen_postgres_answers_call_events_503_in_bounded_time_and_all_goes_on_after(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    pg: PostgresCluster,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """SIGSTOP on the postmaster and its backends: sockets stay open and nothing answers (a hung
    host, a partition without resets). A call event is refused within seconds, not held for as
    long as it lasts; after SIGCONT each is accepted when sent again and every card goes out once
    (a flush that timed out may have committed: it is run again, and changes nothing twice)."""
    client = await _fleet_app(
        aiohttp_client,
        settings,
        gateway,
        tmp_path,
        pg,
        redis_url,
        delivery_lease=2.0,
    )
    assert (await _post(client, "before", _callee(0)))[0] == 202
    n = 3
    pg.freeze()
    try:
        timed = [await _timed_post(client, f"f{i}", _callee(i + 1)) for i in range(n)]
    finally:
        pg.thaw()
    assert all(elapsed < FROZEN_BOUND for elapsed, _ in timed), [t for t, _ in timed]
    _assert_unavailable([answer for _, answer in timed], "PostgreSQL")
    # A refused event whose flush got no answer may have been committed when the server woke:
    # sent again, it is then a repeat (200, "duplicate") and its chain runs all the same.
    retried = [await _post(client, f"f{i}", _callee(i + 1)) for i in range(n)]
    assert all(a[0] == 202 or (a[0] == 200 and a[2]["duplicate"]) for a in retried), retried
    outcomes = [await settle(client, f"f{i}:ended", timeout=30) for i in range(n)]
    assert [d["state"] for d in outcomes] == ["delivered"] * n, outcomes
    assert all(v == 1 for v in gateway.by_destination.values()), gateway.by_destination


async def test_a_frozen_redis_answers_call_events_503_in_bounded_time_and_all_goes_on_after(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    client = await _app(
        aiohttp_client, settings, gateway, tmp_path, delivery_counters="redis", redis_url=redis_server.url
    )
    assert (await _post(client, "before", _callee(0)))[0] == 202
    n = 3
    redis_server.freeze()
    try:
        timed = [await _timed_post(client, f"z{i}", _callee(i + 1)) for i in range(n)]
        start = time.monotonic()  # a report reads the package balances from the counters
        resp = await asyncio.wait_for(client.get("/api/enterprises/sf/report", headers=auth(OPERATOR)), 45)
        report_took = time.monotonic() - start
    finally:
        redis_server.thaw()
    assert resp.status == 503 and resp.headers.get("Retry-After", "").isdigit(), resp.status
    assert report_took < FROZEN_BOUND, report_took
    assert all(elapsed < FROZEN_BOUND for elapsed, _ in timed), [t for t, _ in timed]
    _assert_unavailable([answer for _, answer in timed], "Redis")
    retried = [await _post(client, f"z{i}", _callee(i + 1)) for i in range(n)]
    assert [a[0] for a in retried] == [202] * n, retried
    outcomes = [await settle(client, f"z{i}:ended", timeout=30) for i in range(n)]
    assert [d["state"] for d in outcomes] == ["delivered"] * n, outcomes


async def test_a_command_outside_the_pipeline_to_a_frozen_redis_fails_in_bounded_time(
    redis_server: RedisServer,
) -> None:
    """The chains' probe of the counters (a PING) is refused within seconds, as an outage."""
    counters = RedisCounters(redis_server.url)
    await counters.ping()
    redis_server.freeze()
    start = time.monotonic()
    try:
        with pytest.raises(Exception) as raised:
            await asyncio.wait_for(counters.ping(), 3 * FROZEN_BOUND)
    finally:
        redis_server.thaw()
    assert time.monotonic() - start < FROZEN_BOUND
    assert backend_of(raised.value) == "redis", raised.value
    await counters.ping()
    await counters.close()
