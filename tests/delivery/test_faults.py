"""Faults on a fleet of two real `mingpian serve` workers (PostgreSQL, Redis, the SMSC
simulator), under call events: a worker paused past its lease, a worker cut off from each
service in turn, clocks apart, an SMSC that throttles and then closes its binds. Each case prints
one line of figures (simulators/faults.py: acknowledged, lost, sent twice, charged twice, the
first card out again) and asserts the ones that must be 0. The cases run short here;
bench/fault_bench.py runs them at full length (docs/operations.md, "Faults").

Why a paused worker sends nothing twice: before a card is handed to the SMSC its attempt row is
durable and the chain's lease is checked (the fence in delivery/chain.py); a worker that stopped
after that check and wakes past its lease may still hand that one card over, but the worker that
took the chain over found the attempt row (`sending`) and never sends it again on that channel:
it waits for the card's receipt (matched by the recipient) until the attempt's deadline, and
the paused worker sends nothing after that deadline either (the SMPP gateway's bound).

What a pause longer than a channel's timeout does show twice is a fall-over: the SMSC hands
receipts to any bind of the account, the stopped worker's included, and a USSD card whose
receipt is held there past its 5 s timeout goes out again as SMS (bench/fault_bench.py, 10 s:
34 of 292; never on one channel twice). Hence the 3 s pause here, and the figures and the remedy
(a channel timeout longer than the stalls to ride through) in docs/operations.md, "Faults"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators import netcut
from simulators.faultcases import Env, Inside, cut_off, libfaketime, open_to, paused, skewed, smsc_trouble
from simulators.faults import Figures
from simulators.servers import PostgresCluster, RedisServer, pg_bin
from simulators.smsc import GatewaySim


@pytest.fixture
def env(tmp_path: Path, postgres_url: str, redis_url: str, gateway: GatewaySim) -> Env:
    return Env(tmp_path, postgres_url, redis_url, gateway)


def _report(fig: Figures, why: dict[str, Any]) -> None:
    print(f"\n{fig.line()}")
    assert fig.acknowledged >= 50, f"too little load to mean anything: {fig.line()}"
    assert fig.sent_twice == 0, f"sent twice: {why['doubles']}"
    assert fig.lost == 0, f"acknowledged, not delivered: {why['lost']}"
    assert fig.charged_twice == 0, (why["charged"], why["submits"])
    assert fig.first_card is not None


def _clean(logged: dict[str, int]) -> None:
    assert logged.get("Traceback", 0) == 0 and logged.get(" crashed", 0) == 0, logged


async def test_a_worker_paused_past_its_lease_sends_nothing_twice(env: Env) -> None:
    fig, why = await paused(env, pause=3.0, lease=1.5)
    _report(fig, why)
    assert set(why["answers"]) <= {200, 202}, why["answers"]
    _clean(why["logged"])


@pytest.mark.parametrize("skew", [2.0, -2.0])
async def test_clocks_two_seconds_apart_lose_nothing_and_send_nothing_twice(env: Env, skew: float) -> None:
    if libfaketime() is None:
        pytest.skip("libfaketime not found: run scripts/system-deps.sh (Debian package faketime)")
    fig, why = await skewed(env, skew=skew, lease=1.5, seconds=5.0)
    _report(fig, why)
    ahead = fig.notes["b's clock ahead by (its Date header, to the second)"]
    assert ahead in (f"{skew:+.0f} s", f"{skew - 1:+.0f} s", f"{skew + 1:+.0f} s"), ahead  # it was apart
    assert set(why["answers"]) <= {200, 202}, why["answers"]
    for logged in why["logged"].values():
        _clean(logged)


async def test_an_smsc_that_throttles_then_closes_its_binds_loses_nothing(env: Env) -> None:
    fig, why = await smsc_trouble(env, throttle=2.0)
    _report(fig, why)
    assert fig.notes["answered 0x58"] > 0 and fig.notes["submits unanswered at the close"] > 0, fig.notes
    assert fig.notes["binds after"] >= 2  # both workers bound again
    for logged in why["logged"].values():
        _clean(logged)


# -- a worker cut off from each service --------------------------------------------------------
@pytest.fixture
def namespace() -> Iterator[netcut.Netns]:
    reason = netcut.missing()
    if reason:
        pytest.skip(reason)
    ns = netcut.Netns()
    ns.start()
    try:
        yield ns
    finally:
        ns.stop()


@pytest.fixture
async def inside(tmp_path: Path, namespace: netcut.Netns) -> AsyncIterator[tuple[Env, Inside]]:
    """PostgreSQL, Redis and the SMSC listening on loopback and on the host side of the link."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL not found: run scripts/system-deps.sh (Debian package postgresql)")
    cluster = PostgresCluster(bindir, settings={"listen_addresses": f"'127.0.0.1,{namespace.host}'"})
    redis = RedisServer(tmp_path / "redis", bind=f"127.0.0.1 {namespace.host}")
    gateway = GatewaySim(password="secret")
    try:
        cluster.start()
        open_to(cluster, f"{namespace.address}/32")
        url = cluster.create_database()
        redis.start()
        await gateway.start("0.0.0.0")
        there = Inside(
            namespace,
            url.replace("127.0.0.1", namespace.host),
            redis.url.replace("127.0.0.1", namespace.host),
            {"PostgreSQL": cluster.port, "Redis": redis.port, "SMSC": gateway.smpp_port},
        )
        yield Env(tmp_path, url, redis.url, gateway), there
    finally:
        await gateway.stop()
        redis.stop()
        cluster.stop()


async def test_a_worker_cut_off_from_each_service_answers_503_and_loses_nothing(
    inside: tuple[Env, Inside],
) -> None:
    """Refused (a TCP reset for each packet to the service) rather than silent: a silent cut
    shorter than the driver's timeouts (PostgreSQL's 10 s statement timeout) is only answers
    that take as long as the cut, which bench/fault_bench.py measures with 10 s cuts."""
    env, there = inside
    fig, why = await cut_off(env, there, cut=3.0, gap=2.5, reset=True)
    _report(fig, why)
    assert set(why["answers"]) <= {200, 202, 503}, why["answers"]  # never a 500
    assert why["without Retry-After"] == 0
    logged = why["logged"]
    _clean(logged)
    for backend in ("PostgreSQL", "Redis"):  # one line per outage, one when it ends
        assert logged[f"{backend} is unavailable"] == 1, logged
        assert logged[f"{backend} is back"] == 1, logged
    services = why["services"]
    assert services["PostgreSQL"]["answers"].get(503, 0) > 0, services  # a call event needs it
    assert services["SMSC"]["answers"].keys() <= {202}, services  # accepted: the cards wait
    for service, seen in services.items():
        assert seen["first card"] is not None, (service, seen)
