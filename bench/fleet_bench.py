"""Fleet benchmark: call events → cards at the SMSC, one worker on SQLite vs PostgreSQL + Redis,
and two workers under gunicorn, with the CPU each component spends per call event.

One run, against the same gateway simulator (SMPP, in this process) and the same load generator
(its own process; bench/delivery_bench.py's), for each configuration:
 (a) `mingpian serve`, SQLite (the embedded default);
 (b) `mingpian serve` on PostgreSQL + Redis (a throw-away initdb cluster and redis-server);
 (c) `mingpian serve --workers 2` on the same PostgreSQL + Redis;
1. POST /api/calls (`ringing`, a fresh call id and callee each), closed loop: events/s;
2. POST /api/calls, open loop at 1,600 events/s (80% of the 2,000 target), or at 80% of the
   closed-loop rate when that is lower: p50/p99 from the event's scheduled send time to its
   submit_sm at the simulator;
3. (c) only: the open loop again with receipts 0.5 s after the submit (chains wait in their
   worker) and one gunicorn worker killed with SIGKILL half way; gunicorn starts another, and the
   killed worker's chains are taken over when their leases run out (`delivery_lease`, 15 s).
   The simulator counts submits per callee: none for an acknowledged event is a loss, two or
   more a double send (said apart: the same channel twice, or a fall-over to the next channel,
   with what the store recorded of the first attempt). Acknowledged events, SMSC submits and the
   messages the usage report charges are compared.

CPU per call event comes from the processes' own counters (/proc/<pid>/stat utime + stime, the
children they reaped included): the server (its whole process tree: gunicorn's master and
workers), PostgreSQL (the postmaster and every backend and auxiliary process) and redis-server,
each as a delta over the phase (load, drain and a 1.2 s settle) divided by the events
acknowledged in it. PostgreSQL's writes come from pg_stat_database (transactions committed,
tuples inserted / updated / deleted) and the WAL position; Redis's from INFO (commands
processed, reads from clients, and per command). The load generator, this process and the
rest of the machine are shown too: everything shares the same cores. With the default 5 s per
phase the whole run takes about a minute and a half.

Run: .venv/bin/python bench/fleet_bench.py [--seconds 5] [--concurrency 32] [--configs a,b,c]
     [--statements]   (PostgreSQL statements per event from pg_stat_statements: a diagnostic run)

A long script on purpose: three configurations, their servers, PostgreSQL and Redis, and the
per-component CPU and write counters are one measurement; its helpers live in benchlib.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import asyncpg  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from benchlib import children, free_port, machine_cpu, redis_server, tree_cpu, wait_port  # noqa: E402
from delivery_bench import TARGET, callee, drain, generate, seed, usage_messages  # noqa: E402

from simulators.servers import PostgresCluster, pg_bin  # noqa: E402
from simulators.smsc import GatewaySim, Rule  # noqa: E402

OPEN_RATE = 0.8 * TARGET  # 1,600 events/s
SETTLE = 1.2  # s after a drain: the last receipts, and PostgreSQL's statistics (sent ≤ 1/s per backend)
CPU_TARGET_US = 600.0
P99_TARGET_MS = 100.0
KILL_RECEIPT_DELAY = 0.5  # s: in the kill phase receipts come late, so chains wait in the worker
LEASE = 15.0  # the delivery_lease default: how long a dead worker's chains wait to be taken over
PG_FIELDS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "wal")


@dataclass
class Sample:
    at: float
    cpu: dict[str, float]
    machine: tuple[float, float]
    pg: dict[str, int] = field(default_factory=dict)
    redis: dict[str, int] = field(default_factory=dict)
    statements: dict[str, tuple[int, float]] = field(default_factory=dict)  # query → (calls, ms)


@dataclass
class Costs:
    """What one phase cost, per acknowledged call event."""

    events: int
    seconds: float
    cpu_us: dict[str, float]  # component → µs per event
    machine_busy: float  # CPU seconds the whole machine was busy
    machine_cores: float  # cores' worth of wall time
    pg: dict[str, float]  # per event
    redis: dict[str, float]  # per event: "commands", "reads" (from clients) and each command
    statements: dict[str, tuple[float, float]] = field(default_factory=dict)  # per event: calls, ms

    @property
    def fleet_us(self) -> float:
        return sum(self.cpu_us.get(k, 0.0) for k in ("workers", "postgres", "redis"))


class Meters:
    """Reads the counters of the server's process tree, PostgreSQL and redis-server."""

    def __init__(
        self, server: int, pg: PostgresCluster | None, db_url: str, redis_pid: int, redis_url: str,
        statements: bool = False,
    ) -> None:  # fmt: skip
        self.server, self.pg, self.db_url, self.statements = server, pg, db_url, statements
        self.redis_pid, self.redis_url = redis_pid, redis_url
        self._conn: asyncpg.Connection | None = None
        self._redis: aioredis.Redis | None = None

    async def start(self) -> None:
        if self.db_url:
            self._conn = await asyncpg.connect(self.db_url)
            if self.statements:
                await self._conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if self.redis_url:
            self._redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        if self._redis is not None:
            await self._redis.aclose()

    def postmaster(self) -> int:
        assert self.pg is not None
        return int((self.pg.data / "postmaster.pid").read_text().split()[0])

    async def sample(self) -> Sample:
        t = os.times()
        cpu = {
            "workers": tree_cpu(self.server),
            "load generator": t.children_user + t.children_system,  # the only child reaped meanwhile
            "bench (simulator)": t.user + t.system,
        }
        if self.db_url:
            cpu["postgres"] = tree_cpu(self.postmaster())
        if self.redis_url:
            cpu["redis"] = tree_cpu(self.redis_pid)
        s = Sample(time.monotonic(), cpu, machine_cpu())
        if self._conn is not None:  # one statement: one transaction of ours in each delta
            row = await self._conn.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
                "(pg_current_wal_lsn() - '0/0')::bigint AS wal FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
            assert row is not None
            s.pg = {k: int(row[k]) for k in PG_FIELDS}
            if self.statements:
                rows = await self._conn.fetch(
                    "SELECT query, sum(calls)::bigint, sum(total_exec_time) FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "GROUP BY query"
                )
                s.statements = {r[0]: (int(r[1]), float(r[2])) for r in rows}
        if self._redis is not None:
            stats = await self._redis.info("stats")
            commands = await self._redis.info("commandstats")
            s.redis = {
                "commands": int(stats["total_commands_processed"]),
                "reads": int(stats["total_reads_processed"]),
            }
            s.redis.update({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in commands.items()})
        return s


def costs(a: Sample, b: Sample, events: int) -> Costs:
    n = max(events, 1)
    cpu = {k: (b.cpu[k] - a.cpu[k]) * 1e6 / n for k in a.cpu}
    pg = {k: (b.pg[k] - a.pg[k]) / n for k in a.pg}
    if pg:
        pg["xact_commit"] -= 1 / n  # our own reading of the statistics
    redis = {k: (b.redis.get(k, 0) - a.redis.get(k, 0)) / n for k in b.redis}
    if redis:
        redis["commands"] -= 2 / n  # our two INFO commands
        redis["reads"] -= 2 / n
        redis.pop("info", None)
    ours = ("pg_stat_statements", "pg_stat_database")  # the bench's own readings
    statements = {
        q: ((c - a.statements.get(q, (0, 0.0))[0]) / n, (ms - a.statements.get(q, (0, 0.0))[1]) / n)
        for q, (c, ms) in b.statements.items()
        if not any(o in q for o in ours)
    }
    return Costs(
        events,
        b.at - a.at,
        cpu,
        b.machine[0] - a.machine[0],
        b.machine[1] - a.machine[1],
        pg,
        {k: v for k, v in redis.items() if v > 0},
        {q: v for q, v in statements.items() if v[0] > 0},
    )


def show_costs(title: str, c: Costs) -> None:
    parts = [f"{k} {c.cpu_us[k]:.0f}" for k in ("workers", "postgres", "redis") if k in c.cpu_us]
    print(
        f"  CPU per event, {title} ({c.events} events, {c.seconds:.1f} s): "
        + ", ".join(parts)
        + f" → fleet {c.fleet_us:.0f} µs (target ≤ {CPU_TARGET_US:.0f}: "
        + ("meets" if c.fleet_us <= CPU_TARGET_US else "misses")
        + ")"
    )
    ours = sum(c.cpu_us.values()) * c.events / 1e6
    print(
        f"    beside it: load generator {c.cpu_us['load generator']:.0f} µs, bench process (simulator) "
        f"{c.cpu_us['bench (simulator)']:.0f} µs; the machine was busy {c.machine_busy:.1f} of "
        f"{c.machine_cores:.1f} core-s, {max(0.0, c.machine_busy - ours):.1f} of it other work"
    )
    if c.pg:
        p = c.pg
        print(
            f"    PostgreSQL per event: {p['xact_commit']:.2f} transactions committed "
            f"({p['xact_rollback']:.2f} rolled back), tuples {p['tup_inserted']:.2f} inserted / "
            f"{p['tup_updated']:.2f} updated / {p['tup_deleted']:.2f} deleted, WAL {p['wal'] / 1024:.1f} kB"
        )
    if c.statements:
        total = sum(v[0] for v in c.statements.values())
        print(f"    PostgreSQL statements per event: {total:.1f} (pg_stat_statements), each × mean time:")
        for q, (calls, ms) in sorted(c.statements.items(), key=lambda kv: -kv[1][0])[:40]:
            if calls < 0.02:
                break
            text = " ".join(q.split())
            print(f"      {calls:5.2f} × {ms / calls * 1000 if calls else 0:6.0f} µs  {text[:96]}")
    if c.redis:
        top = sorted(((v, k) for k, v in c.redis.items() if k not in ("commands", "reads")), reverse=True)
        print(
            f"    Redis per event: {c.redis['commands']:.2f} commands processed (those run by scripts "
            f"included) in {c.redis.get('reads', 0):.2f} reads from clients: "
            + ", ".join(f"{k} {v:.2f}" for v, k in top[:7])
        )


# ---- one configuration -------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    closed_rps: float = 0.0
    rate: float = 0.0
    rate_why: str = ""
    p99: float = float("nan")
    closed_costs: Costs | None = None
    open_costs: Costs | None = None
    lost: int = 0
    double: int = 0
    kill: dict[str, Any] = field(default_factory=dict)


async def wait_bound(sim: GatewaySim, n: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while sim.bound() < n and time.monotonic() < end:
        await asyncio.sleep(0.05)


async def db_states(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state")
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}


HIGH_VOLUME = ("calls", "deliveries", "attempts", "message_ids", "receipts", "charges")


async def storage(db_url: str) -> dict[str, tuple[int, int]]:
    """Rows and bytes (with indexes and TOAST) of the tables that grow with every call event."""
    conn = await asyncpg.connect(db_url)
    try:
        out = {}
        for table in HIGH_VOLUME:  # names from the tuple above only
            rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
            size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            out[table] = (int(rows), int(size))
    finally:
        await conn.close()
    return out


async def first_attempts(db_url: str, recipients: list[str]) -> dict[str, int]:
    """Why these recipients got a second submit: their first attempt, as the store has it."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT a.state, a.detail, (SELECT count(*) FROM message_ids m WHERE m.attempt = a.id), "
            "(SELECT count(*) FROM message_ids m JOIN receipts r USING (message_id) WHERE m.attempt = a.id) "
            "FROM deliveries d JOIN attempts a ON a.delivery = d.id AND a.step = 0 "
            "WHERE d.recipient = ANY($1::text[])",
            recipients,
        )
    finally:
        await conn.close()
    out: dict[str, int] = {}
    for state, detail, ids, receipts in rows:
        if ids == 0:
            what = f"{state}, no message id stored (the kill came between submit_sm and storing its id)"
        elif receipts == 0:
            what = (
                f"{state}, its receipt never stored: sent to the killed worker's session and lost "
                "with it (the simulator does not resend an unanswered deliver_sm)"
            )
        else:
            what = f"{state} ({detail}) though its receipt is stored"
        out[what] = out.get(what, 0) + 1
    return out


async def kill_phase(
    sim: GatewaySim, tmp: Path, calls: str, server: subprocess.Popen[bytes], rate: float,
    a: argparse.Namespace, p: int, db_url: str,
) -> dict[str, Any]:  # fmt: skip
    """Open loop with one gunicorn worker killed half way; what reached the SMSC, per callee."""
    sim.set_rules([Rule("deliver", delay=KILL_RECEIPT_DELAY)])
    first = len(sim.submits)
    load = asyncio.ensure_future(generate(tmp, calls, "open", a.seconds, p, rate=rate))
    await asyncio.sleep(a.seconds / 2)
    workers = children(server.pid)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    replaced = float("nan")
    while time.monotonic() - killed_at < 30:
        now = children(server.pid)
        if victim not in now and len(now) >= len(workers):
            replaced = time.monotonic() - killed_at
            break
        await asyncio.sleep(0.05)
    opened = await load
    d = await drain(sim, p, opened["sent"], timeout=LEASE * 3)
    # the chains of the killed worker end once taken over; wait for them (or say they did not)
    end = time.monotonic() + LEASE * 3
    states = await db_states(db_url)
    while states.get("active", 0) and time.monotonic() < end:
        await asyncio.sleep(0.5)
        states = await db_states(db_url)
    sim.set_rules([])
    by_dest: dict[str, list[str]] = {}
    for s in sim.submits[first:]:
        by_dest.setdefault(s["destination"], []).append(s["channel"])
    phase = {callee(p, i)[3:]: i for i in range(int(rate * a.seconds))}
    acked = {callee(p, i)[3:] for i in opened["sent"]}
    doubled = [dest for dest in phase if len(by_dest.get(dest, [])) > 1]
    why = await first_attempts(db_url, ["+86" + dest for dest in doubled])
    same = sum(1 for dest in phase if len(by_dest.get(dest, [])) > len(set(by_dest.get(dest, []))))
    fallover = sum(1 for dest in phase if len(set(by_dest.get(dest, []))) > 1)
    return {
        "victim": victim,
        "replaced": replaced,
        "scheduled": len(phase),
        "acked": len(acked),
        "errors": opened["errors"],
        "lost": sum(1 for dest in acked if dest not in by_dest),
        "same_channel_twice": same,
        "fell_over": fallover,
        "double": sum(1 for dest in phase if len(by_dest.get(dest, [])) > 1),
        "unacked_sent": sum(1 for dest in phase if dest in by_dest and dest not in acked),
        "submits": len(sim.submits) - first,
        "p50": d["p50"],
        "p99": d["p99"],
        "max": d["max"],
        "drain_s": d["drain_s"],
        "states": states,
        "why": why,
        "examples": [(dest, by_dest[dest]) for dest in doubled][:3],
    }


async def run_config(
    label: str, title: str, sim: GatewaySim, tmp: Path, a: argparse.Namespace, p: int, *,
    workers: int = 1, pg: PostgresCluster | None = None, redis_url: str = "", redis_pid: int = 0,
    statements: bool = False,
) -> Result:  # fmt: skip
    res = Result(label)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_DATA_DIR": str(tmp / f"var-{label}"),
            "MINGPIAN_LOG_LEVEL": "WARNING",
            "MINGPIAN_LOG_FORMAT": "text",
            "MINGPIAN_DELIVERY_SEED": str(tmp / "seed.yaml"),
            "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{sim.smpp_port}",
            "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        }
    )
    db_url = ""
    if pg is not None:
        db_url = pg.create_database()
        env.update(
            {
                "MINGPIAN_DATABASE_URL": db_url,
                "MINGPIAN_REDIS_URL": redis_url,
                "MINGPIAN_STORE": "redis",
                "MINGPIAN_DELIVERY_COUNTERS": "redis",
                "MINGPIAN_MEDIA_STORE": "redis",
            }
        )
    cmd = [sys.executable, "-m", "mingpian", "serve"] + (["--workers", str(workers)] if workers > 1 else [])
    log_path = tmp / f"server-{label}.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    calls = f"{base}/api/calls"
    submits0 = len(sim.submits)
    meters = Meters(server.pid, pg, db_url, redis_pid, redis_url, statements)
    acked = 0
    print(f"\n== ({label}) {title} ==", flush=True)
    try:
        await wait_port(port, 60)
        await wait_bound(sim, workers)
        await meters.start()
        warm = await generate(tmp, calls, "closed", 1.0, p, a.concurrency)
        await drain(sim, p, warm["sent"])
        acked += len(warm["sent"])
        await asyncio.sleep(SETTLE)

        m0 = await meters.sample()
        closed = await generate(tmp, calls, "closed", a.seconds, p + 1, a.concurrency)
        c_drain = await drain(sim, p + 1, closed["sent"])
        await asyncio.sleep(SETTLE)
        m1 = await meters.sample()
        acked += len(closed["sent"])
        res.closed_rps = closed["rps"]
        res.closed_costs = costs(m0, m1, len(closed["sent"]))

        res.rate = min(OPEN_RATE, 0.8 * closed["rps"])
        res.rate_why = "1,600/s" if res.rate == OPEN_RATE else "80% of the measured maximum (below 1,600/s)"
        opened = await generate(tmp, calls, "open", a.seconds, p + 2, rate=res.rate)
        o_drain = await drain(sim, p + 2, opened["sent"])
        await asyncio.sleep(SETTLE)
        m2 = await meters.sample()
        acked += len(opened["sent"])
        res.p99 = o_drain["p99"]
        res.open_costs = costs(m1, m2, len(opened["sent"]))
        res.lost = c_drain["lost"] + o_drain["lost"]
        res.double = c_drain["double"] + o_drain["double"]

        print(
            f"POST /api/calls closed c={a.concurrency}: {closed['rps']:6.0f} events/s  202 p50 "
            f"{closed['p50']:.1f} ms p99 {closed['p99']:.1f} ms  errors {closed['errors']}; ringing → "
            f"submit_sm p99 {c_drain['p99']:.0f} ms (backlog drained {c_drain['drain_s']:.2f} s after the "
            f"load); lost {c_drain['lost']}, double {c_drain['double']}"
        )
        show_costs("closed loop", res.closed_costs)
        print(
            f"POST /api/calls open at {res.rate:.0f}/s ({res.rate_why}): {opened['rps']:6.0f} events/s  "
            f"202 p99 {opened['p99']:.1f} ms  errors {opened['errors']}"
        )
        print(
            f"  ringing → submit_sm at the SMSC: p50 {o_drain['p50']:.1f} ms  p99 {o_drain['p99']:.1f} ms  "
            f"max {o_drain['max']:.1f} ms; lost {o_drain['lost']}, double {o_drain['double']}"
        )
        show_costs(f"open loop at {res.rate:.0f}/s", res.open_costs)

        if workers > 1:
            k = await kill_phase(sim, tmp, calls, server, res.rate, a, p + 3, db_url)
            res.kill = k
            acked += k["acked"]
            print(
                f"SIGKILL to worker {k['victim']} half way through {a.seconds:.0f} s open loop at "
                f"{res.rate:.0f}/s (receipts {KILL_RECEIPT_DELAY} s after each submit): gunicorn's "
                f"replacement up {k['replaced']:.1f} s later"
            )
            print(
                f"  events scheduled {k['scheduled']}, acknowledged {k['acked']}, failed at the client "
                f"{k['errors']} (connections the kill cut); submits {k['submits']}"
            )
            print(
                f"  lost (acknowledged, never submitted) {k['lost']}; callees with 2+ submits {k['double']} "
                f"(same channel twice {k['same_channel_twice']}, fell over to another channel "
                f"{k['fell_over']}); sent though unacknowledged (the answer died with the worker) "
                f"{k['unacked_sent']}"
            )
            print(
                f"  ringing → submit_sm: p50 {k['p50']:.1f} ms  p99 {k['p99']:.0f} ms  max {k['max']:.0f} ms "
                f"(taken-over chains wait for their lease); every submit in {k['drain_s']:.1f} s after "
                f"the load; deliveries now: {k['states']}"
            )
            for what, n in k["why"].items():
                print(f"    first attempt of {n} of them: {what}")
            for dest, chans in k["examples"]:
                print(f"    e.g. {dest}: {' + '.join(chans)}")
        await asyncio.sleep(0.5)  # the last receipts
        charged = await usage_messages(base)
        if db_url:
            both = costs(m0, m2, len(closed["sent"]) + len(opened["sent"])).pg
            print(
                f"  PostgreSQL over both phases: {both['xact_commit']:.2f} transactions, tuples "
                f"{both['tup_inserted']:.2f} inserted / {both['tup_updated']:.2f} updated per event "
                "(a backend publishes its counts at most once a second, and an idle one's last "
                "second up to 10 s later, so one phase's counts may hold some of its neighbour's)"
            )
            sizes = await storage(db_url)
            total = sum(b for _, b in sizes.values())
            print(
                f"  storage per acknowledged event (table + indexes, {acked} events): "
                + ", ".join(f"{t} {b / acked:.0f} B ({r / acked:.2f} rows)" for t, (r, b) in sizes.items())
                + f"; {total / acked / 1024:.1f} kB in all"
            )
        submits = len(sim.submits) - submits0
        print(
            f"  events acknowledged {acked}, submits at the SMSC {submits}, messages charged {charged} "
            f"(submits − acknowledged {submits - acked:+d}, charged − submits {charged - submits:+d})"
        )
    finally:
        await meters.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        lines = log_path.read_text(errors="replace").splitlines()
        problems = [ln for ln in lines if "Traceback" in ln or "ERROR" in ln]
        if problems or server.returncode not in (0, -signal.SIGTERM):
            print(f"  server exit {server.returncode}, {len(problems)} error lines; first, then last:")
            print("    " + "\n    ".join(problems[:1] + lines[-12:]))
    return res


# ---- the run -----------------------------------------------------------------------------------


def verdict(ok: bool, yes: str = "meets", no: str = "misses") -> str:
    return yes if ok else no


def summary(results: dict[str, Result]) -> None:
    titles = {
        "a": "1 worker, SQLite",
        "b": "1 worker, PostgreSQL + Redis",
        "c": "2 workers, PostgreSQL + Redis",
    }
    print("\n== summary ==")
    print(
        f"{'':34} {'events/s':>8} {'open at':>8} {'p99 ms':>7}   CPU µs/event (closed │ open loop): "
        "workers  postgres  redis  fleet"
    )
    for label, r in results.items():
        cc, oc = r.closed_costs, r.open_costs
        assert cc is not None and oc is not None

        def pair(key: str, cc: Costs = cc, oc: Costs = oc) -> str:
            if key == "fleet":
                return f"{cc.fleet_us:.0f}│{oc.fleet_us:.0f}"
            if key not in cc.cpu_us:
                return "—"
            return f"{cc.cpu_us[key]:.0f}│{oc.cpu_us[key]:.0f}"

        print(
            f"({label}) {titles[label]:30} {r.closed_rps:8.0f} {r.rate:8.0f} {r.p99:7.1f}   "
            f"{pair('workers'):>39} {pair('postgres'):>9} {pair('redis'):>6} {pair('fleet'):>9}"
        )
    print("targets:")
    if "b" in results:
        b = results["b"]
        print(
            f"  (b) ≥ {TARGET:,.0f} events/s: {verdict(b.closed_rps >= TARGET)} ({b.closed_rps:.0f}); "
            f"p99 ≤ {P99_TARGET_MS:.0f} ms at {b.rate:.0f}/s: {verdict(b.p99 <= P99_TARGET_MS)} "
            f"({b.p99:.1f} ms)"
        )
    for label, r in results.items():
        if label == "a" or r.closed_costs is None or r.open_costs is None:
            continue
        worst = max(r.closed_costs.fleet_us, r.open_costs.fleet_us)
        print(
            f"  ({label}) fleet CPU (workers + postgres + redis) ≤ {CPU_TARGET_US:.0f} µs/event: "
            f"{verdict(worst <= CPU_TARGET_US)} ({r.closed_costs.fleet_us:.0f} closed loop, "
            f"{r.open_costs.fleet_us:.0f} open loop)"
        )
    for label, r in results.items():
        clean = verdict(r.lost == 0 and r.double == 0)
        print(f"  ({label}) nothing lost or sent twice without a kill: {clean} ({r.lost}, {r.double})")
    if "c" in results and results["c"].kill:
        k = results["c"].kill
        print(
            f"  (c) a worker killed: nothing lost: {verdict(k['lost'] == 0)} ({k['lost']}); nothing sent "
            f"twice: {verdict(k['double'] == 0)} ({k['double']}: same channel {k['same_channel_twice']}, "
            f"fall-over {k['fell_over']})"
        )


async def preload_statements(pg: PostgresCluster) -> None:
    """pg_stat_statements must be loaded at the server's start: set it, restart the cluster."""
    conn = await asyncpg.connect(pg.url())
    try:
        await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    finally:
        await conn.close()
    pg._run(pg.bindir / "pg_ctl", "-D", pg.data, "-l", pg.root / "log", "-w", "restart")
    await wait_port(pg.port)


async def main(a: argparse.Namespace) -> None:
    wanted = a.configs.split(",")
    started = time.monotonic()
    print(
        f"fleet bench {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}), shared with other work "
        f"(load average {os.getloadavg()[0]:.2f} at start); {a.seconds:.0f} s per phase, kept short "
        "on purpose. Load generator in its own process, gateway simulator (SMPP) in this one, the "
        "server as `python -m mingpian serve`; PostgreSQL (initdb, fsync and synchronous_commit off) "
        "and redis-server (no persistence) on this machine too."
    )
    sim = GatewaySim(password="secret", verify=False)
    await sim.start()
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        seed(tmp / "seed.yaml")
        if "a" in wanted:
            results["a"] = await run_config("a", "1 worker, SQLite (embedded default)", sim, tmp, a, 60)
        if "b" in wanted or "c" in wanted:
            bindir = pg_bin()
            if bindir is None:
                print("\n(b), (c) skipped: PostgreSQL's initdb not found (scripts/system-deps.sh)")
            else:
                pg = PostgresCluster(bindir)
                pg.start()
                if a.statements:
                    await preload_statements(pg)
                redis_pid: list[int] = []
                try:
                    async with redis_server(tmp, redis_pid.append) as url:
                        if url is None:
                            print("\n(b), (c) skipped: redis-server not found (scripts/system-deps.sh)")
                        else:
                            for label, workers, p in (("b", 1, 70), ("c", 2, 80)):
                                if label not in wanted:
                                    continue
                                async with aioredis.Redis.from_url(url) as r:
                                    await r.flushall()  # each configuration starts from empty counters
                                results[label] = await run_config(
                                    label,
                                    f"{workers} worker{'s' if workers > 1 else ''}"
                                    + (" (`serve --workers 2`)" if workers > 1 else "")
                                    + ", PostgreSQL + Redis",
                                    sim, tmp, a, p, workers=workers, pg=pg, redis_url=url,
                                    redis_pid=redis_pid[0], statements=a.statements,
                                )  # fmt: skip
                finally:
                    pg.stop()
    await sim.stop()
    summary(results)
    print(f"(whole run {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--configs", default="a,b,c", help="which of a, b, c to run")
    ap.add_argument(
        "--statements",
        action="store_true",
        help="also count PostgreSQL statements per event (pg_stat_statements; adds to postgres's CPU)",
    )
    asyncio.run(main(ap.parse_args()))
