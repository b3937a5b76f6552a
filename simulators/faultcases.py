"""The fault cases, each on two real `mingpian serve` workers sharing one PostgreSQL, one Redis
and one SMSC simulator, under call events (simulators/faults.py: the load and the figures):

- `paused`: a worker SIGSTOPped for longer than its chain lease while the other takes its
  chains over, then SIGCONTed;
- `cut_off`: a worker in a network namespace of its own (simulators/netcut.py) cut off from
  PostgreSQL, then from Redis, then from the SMSC, each for a while, then restored;
- `skewed`: a worker whose clock runs ahead or behind the other's (libfaketime);
- `smsc_trouble`: the SMSC answering ESME_RTHROTTLED for a while, then closing the binds with
  submits unanswered in flight.

Each returns its Figures and what explains them. The tests (tests/delivery/test_faults.py) run
them short and assert; bench/fault_bench.py runs them at full length and prints the same lines."""

from __future__ import annotations

import asyncio
import glob
import signal
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp

from delivery.gateways import smpp_pdu as smpp
from simulators.faults import (
    Figures,
    Load,
    Worker,
    figures,
    settings_for,
    start_worker,
    stop_workers,
    taken_over,
    write_seed,
)
from simulators.netcut import Netns
from simulators.servers import PostgresCluster
from simulators.smsc import GatewaySim, Rule

RATE = 20.0  # call events a second, over both workers
RECEIPT = Rule("deliver", delay=0.3)  # receipts a moment after each submit: chains wait in their worker


@dataclass
class Env:
    folder: Path
    database_url: str
    redis_url: str
    gateway: GatewaySim

    def __post_init__(self) -> None:
        # As an SMSC does: receipts take turns over the account's binds, and one an ESME refused
        # (its store away) goes out again a second later, maybe on another bind.
        self.gateway.spread_deliveries = True
        self.gateway.retry_refused = 1.0

    def settings(self, name: str, seed: Path, lease: float, **more: str) -> dict[str, str]:
        smpp_at = f"127.0.0.1:{self.gateway.smpp_port}"
        return settings_for(
            self.folder / name, self.database_url, self.redis_url, smpp_at, seed, lease, **more
        )


def libfaketime() -> str | None:
    """Debian's libfaketime (package faketime), preloaded into one worker: its clock only.
    (The `faketime` command would be a parent that outlives a signal to it.)"""
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return found[0] if found else None


async def _clock_ahead(http: aiohttp.ClientSession, base: str) -> float:
    """How far a worker's clock is ahead of ours, read from its answers' `Date` header (whole
    seconds): the mean over a few answers spread over a second."""
    seen = []
    for _ in range(5):
        async with http.get(f"{base}/healthz") as resp:
            seen.append(parsedate_to_datetime(resp.headers["Date"]).timestamp() - time.time())
        await asyncio.sleep(0.2)
    return round(sum(seen) / len(seen) + 0.5)  # a Date header is its second's start: 0.5 s early on average


def open_to(cluster: PostgresCluster, network: str) -> None:
    """Let clients from `network` in (trust, as the test server's loopback); the server must
    listen there too (`listen_addresses` in its settings)."""
    with (cluster.data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {network} trust\n")
    cluster.sql("SELECT pg_reload_conf()")


def _logged(worker: Worker, *needles: str) -> dict[str, int]:
    text = worker.text()
    return {n: text.count(n) for n in needles}


async def paused(
    env: Env, pause: float = 3.0, lease: float = 1.5, before: float = 2.0, after: float = 3.0
) -> tuple[Figures, dict[str, Any]]:
    """Worker a stopped (SIGSTOP) for `pause` s, longer than its lease: b takes a's chains over;
    a then goes on (SIGCONT) and finds them gone. Receipts come a second after each submit, so
    a holds chains waiting for them when it stops, and some in the middle of a hand-over."""
    seed = write_seed(env.folder / "seed.yaml")
    env.gateway.set_rules([Rule("deliver", delay=1.0)])
    workers = [start_worker(n, env.folder, env.settings(n, seed, lease)) for n in "ab"]
    a = workers[0]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=pause + 20)) as http:
            load = Load(http, {w.name: w.url for w in workers}, RATE)
            load.start()
            await asyncio.sleep(before)
            began = time.time()
            a.proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(pause)
            a.proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(after)
            await load.stop()
            fig, why = await figures(
                f"worker paused {pause:g} s (lease {lease:g} s)", load, env.gateway, env.database_url,
                http, workers[1].url, began, worker="a",
            )  # fmt: skip
            fig.notes["chains b took over"] = await taken_over(http, workers[1].url)
    finally:
        a.proc.send_signal(signal.SIGCONT)
        stop_workers(workers)
    why["logged"] = _logged(a, "lease lost to another worker", "Traceback", " crashed")
    why["answers"] = dict(load.statuses())
    fig.notes["chains a found taken over"] = why["logged"]["lease lost to another worker"]
    return fig, why


async def skewed(
    env: Env, skew: float = 2.0, lease: float = 1.5, seconds: float = 6.0
) -> tuple[Figures, dict[str, Any]]:
    """Worker b's clock `skew` s off a's (libfaketime preloaded, FAKETIME=+2s: the wall clock
    only, as NTP gone wrong would leave it), both under load for `seconds`."""
    faketime = libfaketime()
    if faketime is None:
        raise FileNotFoundError("libfaketime not found: run scripts/system-deps.sh (Debian package faketime)")
    seed = write_seed(env.folder / "seed.yaml")
    env.gateway.set_rules([Rule("deliver", delay=1.0)])
    a = start_worker("a", env.folder, env.settings("a", seed, lease))
    b = start_worker(
        "b", env.folder, env.settings("b", seed, lease),
        env={"LD_PRELOAD": faketime, "FAKETIME": f"{skew:+g}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"},
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            ahead = await _clock_ahead(http, b.url)
            load = Load(http, {"a": a.url, "b": b.url}, RATE)
            load.start()
            began = time.time()
            await asyncio.sleep(seconds)
            await load.stop()
            fig, why = await figures(
                f"clocks {skew:+g} s apart (lease {lease:g} s)", load, env.gateway, env.database_url,
                http, a.url, began,
            )  # fmt: skip
    finally:
        stop_workers([a, b])
    fig.notes["b's clock ahead by (its Date header, to the second)"] = f"{ahead:+.0f} s"
    lost_leases = sum(
        _logged(w, "lease lost to another worker")["lease lost to another worker"] for w in (a, b)
    )
    fig.notes["chains taken from a live worker"] = lost_leases
    why["answers"] = dict(load.statuses())
    why["logged"] = {w.name: _logged(w, "Traceback", " crashed") for w in (a, b)}
    return fig, why


async def smsc_trouble(
    env: Env, throttle: float = 2.0, before: float = 2.0, after: float = 4.0, lease: float = 1.5
) -> tuple[Figures, dict[str, Any]]:
    """The SMSC answers every submit ESME_RTHROTTLED (0x58) for `throttle` s; then it takes
    submits but answers them a second late, and once some are waiting closes every bind: the
    submits it took and never answered are in flight. The workers pause and resend on 0x58,
    rebind, and a submit whose answer was lost is not sent again (its receipt, which the SMSC
    keeps for the next bind, settles it)."""
    gw = env.gateway
    seed = write_seed(env.folder / "seed.yaml")
    gw.set_rules([RECEIPT])
    workers = [start_worker(n, env.folder, env.settings(n, seed, lease)) for n in "ab"]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            load = Load(http, {w.name: w.url for w in workers}, RATE)
            load.start()
            await asyncio.sleep(before)
            began = time.time()
            binds = gw.binds
            gw.set_rules([Rule("reject", status=smpp.STATUS_THROTTLED), RECEIPT])
            await asyncio.sleep(throttle)
            gw.set_rules([RECEIPT])
            gw.answer_delay = 1.0
            in_flight, end = 0, time.monotonic() + 3.0
            while in_flight < 2 and time.monotonic() < end:  # submits taken, their answers not sent
                await asyncio.sleep(0.02)
                in_flight = sum(s.outstanding for s in gw._sessions)
            gw.kick()
            gw.answer_delay = 0.0
            kicked = time.time()
            await asyncio.sleep(after)
            await load.stop()
            fig, why = await figures(
                f"SMSC throttling {throttle:g} s, then binds closed", load, gw, env.database_url,
                http, workers[0].url, began,
            )  # fmt: skip
            rebound = load.first_card(gw, kicked)
    finally:
        stop_workers(workers)
    throttled = sum(1 for r in gw.received if r.status == smpp.STATUS_THROTTLED)
    fig.notes.update(
        {
            "answered 0x58": throttled,
            "submits unanswered at the close": in_flight,
            "binds after": gw.binds - binds,
            "first card after the close": "never" if rebound is None else f"{rebound:.1f} s",
        }
    )
    why["answers"] = dict(load.statuses())
    why["logged"] = {w.name: _logged(w, "Traceback", " crashed") for w in workers}
    return fig, why


@dataclass
class Inside:
    """How the namespaced worker reaches the services: through the host side of its link."""

    netns: Netns
    database_url: str
    redis_url: str
    ports: dict[str, int]  # service name → port to cut


async def cut_off(
    env: Env,
    inside: Inside,
    cut: float = 3.0,
    gap: float = 3.0,
    before: float = 2.0,
    lease: float = 1.5,
    reset: bool = False,
) -> tuple[Figures, dict[str, Any]]:
    """Worker a runs in its own network namespace; b on the host. a is cut off from each
    service in turn for `cut` s (its packets to that port dropped; with `reset`, refused), then
    restored, `gap` s apart. Per service: a's answers meanwhile and the longest one took, and
    the first card of an event sent to a after the cut began."""
    ns = inside.netns
    seed = write_seed(env.folder / "seed.yaml")
    env.gateway.set_rules([RECEIPT])
    smpp_in = f"{ns.host}:{env.gateway.smpp_port}"
    a_settings = settings_for(
        env.folder / "a", inside.database_url, inside.redis_url, smpp_in, seed, lease, MINGPIAN_HOST="0.0.0.0"
    )
    a = start_worker("a", env.folder, a_settings, prefix=ns.prefix(), reach=ns.address)
    b = start_worker("b", env.folder, env.settings("b", seed, lease))
    windows: dict[str, tuple[float, float]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            load = Load(http, {"a": a.url, "b": b.url}, RATE)
            load.start()
            await asyncio.sleep(before)
            began = time.time()
            for service, port in inside.ports.items():
                start = time.time()
                await asyncio.to_thread(ns.cut, port, reset)
                await asyncio.sleep(cut)
                await asyncio.to_thread(ns.restore, port)
                windows[service] = (start, time.time())
                await asyncio.sleep(gap)
            await load.stop()
            fig, why = await figures(
                f"worker cut off {cut:g} s ({'refused' if reset else 'silent'}) from each of"
                f" {', '.join(inside.ports)}", load, env.gateway,
                env.database_url, http, b.url, began, worker="a",
            )  # fmt: skip
    finally:
        stop_workers([a, b])
    per: dict[str, Any] = {}
    for service, (start, end) in windows.items():
        first = load.first_card(env.gateway, start, "a")
        per[service] = {
            "answers": dict(load.statuses("a", start, end + 1.0)),
            "slowest": round(load.slowest("a", start, end + 1.0), 1),
            "first card": None if first is None else round(first, 1),
        }
    why["services"] = per
    why["without Retry-After"] = load.without_retry_after()
    why["answers"] = dict(load.statuses())
    why["logged"] = _logged(
        a, "PostgreSQL is unavailable", "PostgreSQL is back", "Redis is unavailable", "Redis is back",
        "Traceback", " crashed",
    )  # fmt: skip
    for service, seen in per.items():
        fig.notes[service] = (
            f"a answered {seen['answers']} (slowest {seen['slowest']} s), first card {seen['first card']} s"
        )
    return fig, why
