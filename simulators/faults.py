"""What every fault case measures, on a fleet of real `mingpian serve` workers: call events at a
steady rate spread over the workers (each a fresh call and callee, sent again after a 503's
Retry-After as a switch's integration would), and afterwards, from the SMSC simulator, the
store and the ledger, one line of figures in one format for every fault:

    <fault>: acknowledged N, lost N, sent twice N, charged twice N, first card out again X s after it began

`acknowledged`: events answered 200/202; `lost`: of those, the ones whose delivery is not
`delivered` in the end; `sent twice`: cards beyond the first any callee got (the SMSC counts
submits per destination; a long SMS's segments are one card); `charged twice`: messages the
ledger charged beyond the cards the SMSC took; `first card out again`: seconds from the fault's
start to the first card of a call event first sent (to the faulted worker, when there is one)
after it began. The fault tests (tests/delivery/test_faults.py, test_pg_failover.py,
test_redis_failover.py) and bench/fault_bench.py print it with `Figures.line()`.

Shared by the tests and the benchmark (which imports nothing from tests/)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from simulators.seeds import OPERATOR, SF_KEY, SF_LINE, TEMPLATES, seed_doc
from simulators.smsc import GatewaySim

ROOT = Path(__file__).resolve().parent.parent
POLICY = {"chain": ["ussd", "sms"], "timeouts": {"ussd": 5, "sms": 10}}


@dataclass
class Figures:
    fault: str
    acknowledged: int
    lost: int
    sent_twice: int
    charged_twice: int
    first_card: float | None  # s from the fault's start; None: no card of a later event went out
    notes: dict[str, Any] = field(default_factory=dict)  # what else the case saw

    def line(self) -> str:
        first = "never" if self.first_card is None else f"{self.first_card:.1f} s after it began"
        more = "".join(f"; {k} {v}" for k, v in self.notes.items())
        return (
            f"{self.fault}: acknowledged {self.acknowledged}, lost {self.lost}, sent twice"
            f" {self.sent_twice}, charged twice {self.charged_twice}, first card out again {first}{more}"
        )


def cards(submits: Iterable[dict[str, Any]]) -> int:
    """Cards a person got: a long SMS is several submits (segments), its first one's UDH ends 01."""
    return sum(1 for s in submits if not s["udh"] or s["udh"].endswith("01"))


def sent_twice(gateway: GatewaySim, callees: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Callees (national numbers, as the SMSC sees them) that got more than one card: their submits."""
    by: dict[str, list[dict[str, Any]]] = {}
    for s in gateway.submits:
        by.setdefault(s["destination"], []).append(s)
    return {
        c: [(s["channel"], s["udh"]) for s in by[c]] for c in set(callees) if c in by and cards(by[c]) > 1
    }


def _one_channel_twice(subs: list[Any]) -> bool:
    """Whether one channel carried two cards (its submits are the (channel, UDH) pairs)."""
    firsts = [sub[0] for sub in subs if len(sub) == 2 and (not sub[1] or sub[1].endswith("01"))]
    return any(n > 1 for n in Counter(firsts).values())


def write_seed(path: Path, policy: dict[str, Any] | None = None, units: int = 100_000) -> Path:
    now = time.time()
    pool = {"id": "pool1", "kind": "pool", "units": units, "price": 5.0, "policy": "stop",
            "valid_from": now - 86400, "valid_to": now + 30 * 86400}  # fmt: skip
    doc = seed_doc(policy=policy or POLICY, packages=[pool])
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(
    name: str,
    folder: Path,
    settings: dict[str, str],
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    reach: str = "127.0.0.1",
) -> Worker:
    """`mingpian serve` with only these MINGPIAN_* settings, run after `prefix` (a network
    namespace's `ip netns exec …`, `faketime …`), its output in `folder/<name>.log`; returns
    once it listens at `reach` (where the load reaches it)."""
    port = int(settings.setdefault("MINGPIAN_PORT", str(free_port())))
    full = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    full.update(settings)
    full.update(env or {})
    log = folder / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "mingpian", "serve"],
            env=full,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((reach, port)) == 0:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker {name} not listening on {reach}:{port}")
        time.sleep(0.05)
    return Worker(name, proc, f"http://{reach}:{port}", log)


def settings_for(
    folder: Path,
    database_url: str,
    redis_url: str,
    smpp: str,
    seed: Path,
    lease: float,
    **more: str,
) -> dict[str, str]:
    return {
        "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
        "MINGPIAN_DATA_DIR": str(folder),
        "MINGPIAN_DATABASE_URL": database_url,
        "MINGPIAN_DELIVERY_COUNTERS": "redis",
        "MINGPIAN_REDIS_URL": redis_url,
        "MINGPIAN_DELIVERY_SEED": str(seed),
        "MINGPIAN_DELIVERY_SMPP": smpp,
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        "MINGPIAN_DELIVERY_LEASE": str(lease),
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_LOG_FORMAT": "text",
        **more,
    }


def stop_workers(workers: Iterable[Worker]) -> None:
    workers = list(workers)
    for w in workers:
        if w.proc.poll() is None:
            w.proc.terminate()
    for w in workers:
        try:
            w.proc.wait(20)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(5)


class Load:
    """Call events at `rate` a second, taking turns over the workers; each sent until answered
    200/202: after a 503 once its Retry-After has passed (at most 0.5 s here), after no answer
    (the worker is away) 0.2 s later."""

    def __init__(self, http: aiohttp.ClientSession, bases: dict[str, str], rate: float = 20.0) -> None:
        self.http, self.bases, self.rate = http, bases, rate
        self.acked: dict[str, tuple[str, str]] = {}  # call id → (worker, callee as the SMSC sees it)
        self.sent: dict[str, tuple[str, float]] = {}  # callee (national) → (worker, first sent at)
        # (time, worker, status, Retry-After, seconds the answer took)
        self.answers: list[tuple[float, str, int, str | None, float]] = []
        self.stopped = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        sends: list[asyncio.Task[None]] = []
        names = list(self.bases)
        i = 0
        while not self.stopped:
            sends.append(asyncio.create_task(self._send(i, names[i % len(names)])))
            i += 1
            await asyncio.sleep(1 / self.rate)
        await asyncio.gather(*sends)

    async def _send(self, i: int, worker: str) -> None:
        callee = f"+86137{i:08d}"
        body = {"call_id": f"f{i}", "caller": SF_LINE, "callee": callee, "phase": "ended"}
        self.sent[callee[3:]] = (worker, time.time())
        end = time.monotonic() + 60
        while time.monotonic() < end:
            asked = time.time()
            try:
                async with self.http.post(
                    f"{self.bases[worker]}/api/calls",
                    json=body,
                    headers={"Authorization": f"Bearer {OPERATOR}"},
                ) as resp:
                    await resp.read()
                    now, retry = time.time(), resp.headers.get("Retry-After")
                    self.answers.append((now, worker, resp.status, retry, now - asked))
                    if resp.status in (200, 202):
                        self.acked[f"f{i}"] = (worker, callee[3:])
                        return
                    wait = float(resp.headers.get("Retry-After") or 0.2)
            except (TimeoutError, aiohttp.ClientError):
                wait = 0.2
            if self.stopped and time.monotonic() > end - 45:
                return  # the load ended a while ago: this event is given up, never acknowledged
            await asyncio.sleep(min(wait, 0.5))

    def statuses(self, worker: str | None = None, since: float = 0.0, until: float = 1e18) -> Counter[int]:
        return Counter(a[2] for a in self.answers if (worker in (None, a[1])) and since <= a[0] <= until)

    def slowest(self, worker: str, since: float, until: float) -> float:
        """The longest an answer took, of those `worker` gave between `since` and `until`."""
        return max((a[4] for a in self.answers if a[1] == worker and since <= a[0] <= until), default=0.0)

    def without_retry_after(self) -> int:
        return sum(1 for a in self.answers if a[2] == 503 and not a[3])

    def first_card(self, gateway: GatewaySim, since: float, worker: str | None = None) -> float | None:
        """Seconds from `since` to the first card of an event first sent after it (to `worker`)."""
        times = [
            s["at"]
            for s in gateway.submits
            if (sent := self.sent.get(s["destination"])) and sent[1] > since and worker in (None, sent[0])
        ]
        return min(times) - since if times else None


async def settle(database_url: str, timeout: float = 40.0) -> dict[str, str]:
    """Once no delivery is active (or `timeout` has passed): each call's delivery state (and,
    for one that did not reach the phone, why: `failed: every channel failed`)."""
    conn = await asyncpg.connect(database_url)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'active'"):
                break
            await asyncio.sleep(0.2)
        rows = await conn.fetch("SELECT call_id, state, reason FROM deliveries")
        return {r[0]: r[1] if r[1] == "delivered" else f"{r[1]}: {r[2]}" for r in rows}
    finally:
        await conn.close()


async def ledger(http: aiohttp.ClientSession, base: str) -> int:
    """Messages the ledger charged enterprise sf (every channel)."""
    url = f"{base}/api/enterprises/sf/usage?by=channel"
    async with http.get(url, headers={"Authorization": f"Bearer {SF_KEY}"}) as resp:
        return sum(row["messages"] for row in (await resp.json())["rows"])


async def taken_over(http: aiohttp.ClientSession, base: str) -> int:
    """Chains a worker took over from the store since it started (its /metrics counter)."""
    async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {OPERATOR}"}) as resp:
        text = await resp.text()
    name = "mingpian_delivery_chains_taken_over_total"
    return int(sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)))


async def figures(
    fault: str,
    load: Load,
    gateway: GatewaySim,
    database_url: str,
    http: aiohttp.ClientSession,
    base: str,
    began: float,
    worker: str | None = None,
    timeout: float = 40.0,
) -> tuple[Figures, dict[str, Any]]:
    """The line's figures once every delivery has finished, and what explains them (the lost
    events' states, the callees sent twice with their submits)."""
    states = await settle(database_url, timeout)
    lost = {cid: states.get(cid, "missing") for cid in load.acked if states.get(cid) != "delivered"}
    doubles = sent_twice(gateway, (callee for _, callee in load.acked.values()))
    extra = sum(cards([s for s in gateway.submits if s["destination"] == c]) - 1 for c in doubles)
    charged = await ledger(http, base)
    if doubles:  # what the store recorded of each: the attempts, step by step
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT d.recipient, a.step, a.channel, a.state, a.detail, a.started, a.done FROM attempts a"
                " JOIN deliveries d ON d.id = a.delivery WHERE d.recipient = ANY($1::text[]) ORDER BY 1, 2",
                ["+86" + c for c in doubles],
            )
        finally:
            await conn.close()
        for r in rows:
            doubles[r[0][3:]].append(tuple(r)[1:])  # type: ignore[arg-type]
    fig = Figures(
        fault,
        acknowledged=len(load.acked),
        lost=len(lost),
        sent_twice=extra,
        charged_twice=max(0, charged - len(gateway.submits)),
        first_card=load.first_card(gateway, began, worker),
    )
    if doubles:  # on one channel twice (the fencing failed) or on the next one (a fall-over)
        same = sum(1 for subs in doubles.values() if _one_channel_twice(subs))
        fig.notes["sent twice: on one channel"] = same
        fig.notes["sent twice: fall-over after a late receipt"] = len(doubles) - same
    if lost:
        fig.notes["lost: states"] = dict(Counter(lost.values()))
    return fig, {"lost": lost, "doubles": doubles, "charged": charged, "submits": len(gateway.submits)}
