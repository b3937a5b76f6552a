"""PostgreSQL failover under call events: a real `mingpian serve` (Redis counters) writes to a
primary with a streaming standby, through one URL naming both (`target_session_attrs=read-write`).
The primary's postmaster is killed with SIGKILL as a crashed host would be, the standby is
promoted with `pg_ctl promote` a moment later (what Patroni does in production), and the worker
finds the new primary by itself: its pool drops the dead connections and opens new ones to the
writable server, and the writes its chains made meanwhile are committed there.

With synchronous replication no acknowledged call event is lost: every event answered 2xx is a
delivery on the new primary, and it is delivered. With asynchronous replication what the
standby had not received when the primary died is lost; the number is printed. Either way no
card goes out twice (the SMSC counts submits per callee), requests meanwhile are answered 503
with Retry-After (never 500), the outage is one line of the log, `/readyz` says what it waits
for, and the seconds from the kill to the first card of a new call event are printed."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from delivery.drivers.pghosts import HOST_TIMEOUT, HostChooser, NoWritableServer, hosts_of, session_attrs
from delivery.store import PgDeliveryStore
from infra.outage import Unavailable, backend_of, outages
from simulators.faults import Figures, ledger
from simulators.servers import PostgresCluster, RedisServer, pg_bin
from simulators.smsc import GatewaySim, Rule
from tests.support.processes import free_port, serve
from tests.support.templates import TEMPLATES

from .support import OPERATOR, SF_LINE, auth, seed_doc

BEFORE = 2.0  # s of call events before the kill
PROMOTE_AFTER = 2.0  # s from the kill to `pg_ctl promote` (a failover manager noticing)
AFTER = 2.0  # s of call events once cards go out again
FIRST_CARD_WITHIN = 30.0  # s from the kill to the first card of a new call event
SENDERS = 4  # call events in flight at once
# s after the kill from which a call event is "new": a server being fenced still takes the events
# of the moment its sessions take to read the new setting
SETTLED = 0.5


class Pair:
    """A primary and its streaming standby, one database on both, and the URL naming both.
    `mode`: sync (a synchronous standby) or async, the primary then killed; fenced (async, the
    primary made read-only and left running, the standby promoted once it has all the WAL)."""

    def __init__(self, bindir: Path, mode: str) -> None:
        self.mode = mode
        sync = mode == "sync"
        self.sync = sync
        # synchronous_commit on: a commit waits for its WAL (and, with a synchronous standby,
        # for the standby's); fsync stays off, as in every test server (no host crashes here).
        self.primary = PostgresCluster(bindir, settings={"synchronous_commit": "on"})
        self.standby: PostgresCluster | None = None
        self.primary.start()
        self.database = self.primary.create_database().rpartition("/")[2]
        self.standby = self.primary.standby()
        self.primary.wait_streaming()
        if sync:
            self.primary.make_synchronous()
        self.url = self.primary.multi_host_url(self.standby, database=self.database)

    def stop(self) -> None:
        for server in (self.primary, self.standby):
            if server is not None:
                server.stop()


@pytest.fixture(params=["sync", "async", "fenced"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL not found: run scripts/system-deps.sh (Debian package postgresql)")
    servers = Pair(bindir, request.param)
    try:
        yield servers
    finally:
        servers.stop()


class Load:
    """Call events, each a new call and callee, from SENDERS senders; what each was answered."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.acked: dict[str, tuple[str, float]] = {}  # call id → (callee, first sent at)
        self.first_sent: dict[str, float] = {}  # callee → when its event was first posted
        self.statuses: dict[int, int] = {}
        self.without_retry_after = 0
        self.stop = asyncio.Event()
        self._n = 0

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            await asyncio.gather(*(self._sender(http) for _ in range(SENDERS)))

    async def _sender(self, http: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            self._n += 1
            call_id, callee = f"fo{self._n}", f"+86137{self._n:08d}"
            body = {"call_id": call_id, "caller": SF_LINE, "callee": callee, "phase": "ended"}
            self.first_sent[callee] = time.time()
            while not self.stop.is_set():  # as a switch does: the same event until acknowledged
                async with http.post(f"{self.base}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
                    self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                    if resp.status in (200, 202):
                        self.acked[call_id] = (callee, self.first_sent[callee])
                        break
                    if resp.status == 503 and "Retry-After" not in resp.headers:
                        self.without_retry_after += 1
                await asyncio.sleep(0.1)  # a 503: try again shortly (the test's patience, not 2 s)
            await asyncio.sleep(0.01)


async def _readyz(base: str, stop: asyncio.Event, seen: list[tuple[float, int, Any]]) -> None:
    """Ask `/readyz` every 0.2 s: (when, status, what `checks.database` said)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        while not stop.is_set():
            async with http.get(f"{base}/readyz") as resp:
                body = await resp.json()
            seen.append((time.monotonic(), resp.status, body.get("checks", {}).get("database")))
            await asyncio.sleep(0.2)


def _settings(tmp_path: Path, url: str, redis: RedisServer, gateway: GatewaySim) -> dict[str, str]:
    seed = tmp_path / "seed.yaml"
    now = time.time()
    units = {"id": "pool1", "kind": "pool", "units": 100_000, "price": 5.0, "policy": "stop",
             "valid_from": now - 86400, "valid_to": now + 30 * 86400}  # fmt: skip
    doc = seed_doc(policy={"chain": ["sms"], "timeouts": {"sms": 20}}, packages=[units])
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return {
        "MINGPIAN_PORT": str(free_port()),
        "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
        "MINGPIAN_DATA_DIR": str(tmp_path / "data"),
        "MINGPIAN_DATABASE_URL": url,
        "MINGPIAN_DELIVERY_COUNTERS": "redis",
        "MINGPIAN_REDIS_URL": redis.url,
        "MINGPIAN_DELIVERY_SEED": str(seed),
        "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{gateway.smpp_port}",
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_LOG_FORMAT": "text",
    }


async def _until(check: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def _callee(destination: str) -> str:
    """The E.164 number a submit went to (the SMSC sees national numbers of +86)."""
    return destination if destination.startswith("+") else "+86" + destination


def _cards(submits: list[dict[str, Any]]) -> int:
    """Cards a person got: a long SMS is several submits (segments), its first one's UDH ends 01."""
    return sum(1 for s in submits if not s["udh"] or s["udh"].endswith("01"))


async def test_a_failover_loses_no_acknowledged_event_when_synchronous_and_sends_nothing_twice(
    pair: Pair, redis_server: RedisServer, gateway: GatewaySim, tmp_path: Path
) -> None:
    sync = pair.sync
    gateway.set_rules([Rule("deliver", delay=0.2)])
    gateway.retry_refused = 1.0  # a receipt refused during the outage comes again (an SMSC retries)
    settings = _settings(tmp_path, pair.url, redis_server, gateway)
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{settings['MINGPIAN_PORT']}"
    proc = await asyncio.to_thread(serve, settings, log)
    load = Load(base)
    stalled: dict[str, Any] = {}  # asynchronous: deliveries whose last writes the failover lost
    ready: list[tuple[float, int, Any]] = []
    stop_ready = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def is_ready() -> bool:
                async with http.get(f"{base}/readyz") as resp:
                    return resp.status == 200

            await _until(is_ready, 20, "the worker ready")
        tasks = [asyncio.create_task(load.run()), asyncio.create_task(_readyz(base, stop_ready, ready))]
        await asyncio.sleep(BEFORE)
        assert load.acked, f"no call event acknowledged before the kill: {load.statuses}"
        killed = time.time()  # (or fenced)
        assert pair.standby is not None
        if pair.mode == "fenced":
            await asyncio.to_thread(pair.primary.fence)
            await asyncio.sleep(PROMOTE_AFTER)
            await asyncio.to_thread(pair.standby.wait_replayed, pair.primary)
        else:
            pair.primary.kill()
            await asyncio.sleep(PROMOTE_AFTER)
        await asyncio.to_thread(pair.standby.promote)
        promoted = time.time()

        def first_new_card() -> float | None:
            """When the SMSC got its first card for a call event first posted after the kill."""
            times = [
                s["at"]
                for s in gateway.submits
                if load.first_sent.get(_callee(s["destination"]), 0) > killed + SETTLED
            ]
            return min(times) if times else None

        async def card_out() -> bool:
            return first_new_card() is not None

        await _until(card_out, FIRST_CARD_WITHIN + 5, "a card of a new call event out again")
        out_again = first_new_card()
        assert out_again is not None
        await asyncio.sleep(AFTER)
        load.stop.set()
        await tasks[0]

        conn = await asyncpg.connect(pair.standby.url(pair.database))
        try:

            async def settled() -> bool:
                n = await conn.fetchval("SELECT count(*) FROM deliveries WHERE state = 'active'")
                return bool(n == 0)

            try:
                await _until(settled, 15, "every delivery finished")
            except AssertionError:
                active = await conn.fetch(
                    "SELECT d.id, d.call_id, d.step, d.owner, d.lease_until, a.state, a.detail, m.message_id,"
                    " m.stat FROM deliveries d LEFT JOIN attempts a ON a.delivery = d.id"
                    " LEFT JOIN message_ids m ON m.attempt = a.id WHERE d.state = 'active'"
                )
                unacked = sum(len(s.unacked) for s in gateway._sessions)
                if pair.mode != "async":
                    raise AssertionError(
                        f"still active ({unacked} unacked): {[tuple(r) for r in active][:3]}"
                    ) from None
                # Asynchronous replication: a chain's last writes (its attempt's message id)
                # committed on the primary just before it died are not on the new one; the
                # chain waits out its receipt deadline. Measured, not refused.
                stalled = {r["call_id"]: (r["state"], r["detail"]) for r in active}
            rows = await conn.fetch("SELECT call_id, state FROM deliveries")
        finally:
            await conn.close()
        stop_ready.set()
        await tasks[1]
        async with aiohttp.ClientSession() as http:
            charged = await ledger(http, base)
    finally:
        load.stop.set()
        stop_ready.set()
        for task in tasks:
            if not task.done():
                task.cancel()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()

    states = {r["call_id"]: r["state"] for r in rows}
    lost = sorted(set(load.acked) - set(states))
    doubles = {
        callee: [(s["channel"], s["udh"]) for s in subs]
        for callee, _ in load.acked.values()
        if _cards(subs := [s for s in gateway.submits if _callee(s["destination"]) == callee]) > 1
    }
    undelivered = {cid: st for cid, st in states.items() if cid in load.acked and st != "delivered"}
    text = log.read_text()
    outage_lines = re.findall(r"PostgreSQL is unavailable", text)
    waits = {d["code"] for _, status, d in ready if status == 503 and isinstance(d, dict)}
    fig = Figures(  # the fault suite's line (simulators/faults.py)
        f"PostgreSQL primary {'fenced (read-only)' if pair.mode == 'fenced' else 'killed'}, the standby"
        f" promoted ({'synchronous' if sync else 'asynchronous'} replication)",
        acknowledged=len(load.acked),
        lost=len(lost),
        sent_twice=sum(
            _cards([s for s in gateway.submits if _callee(s["destination"]) == c]) - 1 for c in doubles
        ),
        charged_twice=max(0, charged - len(gateway.submits)),
        first_card=out_again - killed,
        notes={
            "after the promotion": f"{out_again - promoted:.1f} s",
            "answers": dict(sorted(load.statuses.items())),
            "/readyz waited for": sorted(waits),
            "deliveries whose last writes were lost (waiting for their receipt deadline)": len(stalled),
        },
    )
    print(f"\n{fig.line()}")
    assert not doubles, f"cards sent twice: {doubles}"
    if sync or pair.mode == "fenced":  # a fenced primary streams all it wrote before the promotion
        assert not lost, f"acknowledged but lost with synchronous replication: {lost}"
    assert not set(undelivered) - set(stalled), f"acknowledged but not delivered: {undelivered}"
    assert out_again - killed <= FIRST_CARD_WITHIN
    assert set(load.statuses) <= {200, 202, 503}, load.statuses
    # a call event during the failover is answered 503 with Retry-After, or waits for the held
    # flush to commit on the promoted standby (which of the two is a matter of timing); /readyz
    # says what it waits for either way (below)
    assert load.without_retry_after == 0
    assert len(outage_lines) == 1, "\n".join(line for line in text.splitlines() if "mingpian.outage" in line)
    during = text[text.find("PostgreSQL is unavailable") :]  # the failover and after it
    assert "Traceback" not in during and " ERROR " not in during, during[-3000:]
    assert waits and waits <= {"database_not_writable", "database_unreachable"}, ready
    said = next(d for _, s, d in ready if s == 503 and isinstance(d, dict))
    assert re.search(r"[\u4e00-\u9fff]", said["message"]) and said["state"] == "waiting", said
    assert ready[-1][1] == 200, ready[-5:]


# -- the host choice (drivers/pghosts.py) ---------------------------------------------------------
def test_a_multi_host_url_names_its_hosts_and_asks_for_a_writable_one() -> None:
    url = "postgresql://u:p%40ss@db1:5433,[::1]:5434,db3/mingpian?sslmode=prefer"
    assert hosts_of(url) == [("db1", 5433), ("::1", 5434), ("db3", None)]
    assert session_attrs(url) == "read-write"
    assert session_attrs(url + "&target_session_attrs=primary") == "primary"
    assert not HostChooser("postgresql://u@db1/mingpian").several


async def test_a_host_that_never_answers_costs_its_own_bound_once_then_goes_last(
    postgres_cluster: PostgresCluster,
) -> None:
    """A dead host that drops packets (here: accepts and never says a word) is given up after
    HOST_TIMEOUT and the next host is tried within the same connect; the next connect tries the
    host that was writable first."""
    silent: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"postgresql://{postgres_cluster.user}@127.0.0.1:{port},127.0.0.1:{postgres_cluster.port}/postgres"
    chooser = HostChooser(url)
    try:
        started = time.monotonic()
        conn = await chooser.connect(timeout=10)
        took = time.monotonic() - started
        assert await conn.fetchval("SELECT NOT pg_is_in_recovery()")
        await conn.close()
        assert HOST_TIMEOUT <= took < HOST_TIMEOUT + 2, took
        assert chooser.order()[0] == ("127.0.0.1", postgres_cluster.port)
        started = time.monotonic()
        conn = await chooser.connect(timeout=10)
        await conn.close()
        assert time.monotonic() - started < 1.0
        # nothing answers: the last host's error, an outage (not a bug) for the server
        server.close()
        dead = HostChooser(f"postgresql://u@127.0.0.1:{port},127.0.0.1:{free_port()}/postgres")
        with pytest.raises(OSError) as refused:
            await dead.connect()
        assert backend_of(refused.value) == "database"
    finally:
        server.close()
        for writer in silent:
            writer.close()


async def test_the_store_follows_a_fenced_primary_to_the_promoted_standby_pool_and_listener() -> None:
    """The store alone: a write refused as read-only by a fenced primary is an outage
    (Unavailable) and drops the pool, whose next connections find no writable server until the
    standby is promoted, then write there; the listener connects again to the new primary and
    hears its notifications, and what it may have missed meanwhile (here an opt-out whose
    announcement never came) is read again."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL not found: run scripts/system-deps.sh (Debian package postgresql)")
    pair = Pair(bindir, "async")
    store = PgDeliveryStore(pair.url)
    driver = store.db
    heard: list[str] = []
    driver.listen(heard.append)
    insert = "INSERT INTO calls VALUES ($1, 'ended', 1.0)"
    missed = ("sf", "+8613700000001")
    try:
        await store.start()
        await driver.run(insert, "before")
        pair.primary.sql(
            f"INSERT INTO optouts VALUES ('{missed[0]}', '{missed[1]}', 1, 'sms', 'TD')", pair.database
        )
        assert not await store.opted_out(*missed)
        await asyncio.to_thread(pair.primary.fence)
        refused: BaseException | None = None
        took: list[str] = []  # written before the session read the new setting: kept, as committed
        for i in range(100):  # the sessions read the new setting at their next statement
            try:
                await driver.run(insert, f"fenced{i}")
                took.append(f"fenced{i}")
            except Unavailable as exc:
                refused = exc
                break
            await asyncio.sleep(0.02)
        assert isinstance(refused, Unavailable), "the fenced primary took a write"
        assert isinstance(refused.__cause__, asyncpg.ReadOnlySQLTransactionError)
        with pytest.raises(NoWritableServer) as none:  # a new connection: no host takes writes
            await driver.run(insert, "meanwhile")
        assert none.value.standbys == 2
        assert pair.standby is not None
        await asyncio.to_thread(pair.standby.wait_replayed, pair.primary)
        await asyncio.to_thread(pair.standby.promote)
        await driver.run(insert, "after")
        assert pair.standby.sql(
            "SELECT string_agg(call_id, ',' ORDER BY call_id) FROM calls", pair.database
        ) == ",".join(sorted(["after", "before", *took]))
        end = time.monotonic() + 10
        while "rollback" not in heard and time.monotonic() < end:  # the listener connected again
            await asyncio.sleep(0.05)
        assert "rollback" in heard
        pair.standby.sql("SELECT pg_notify('mingpian_delivery', 'from the new primary')", pair.database)
        while "from the new primary" not in heard and time.monotonic() < end:
            await asyncio.sleep(0.05)
        assert "from the new primary" in heard and "relisten" in heard
        while not await store.opted_out(*missed) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        assert await store.opted_out(*missed), "an opt-out whose announcement was missed"
    finally:
        await store.stop()
        pair.stop()
        outages.clear()  # the process's record: the next test starts with none
