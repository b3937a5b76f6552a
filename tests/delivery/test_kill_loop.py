"""Crash safety under load: a real `mingpian serve` (the embedded default, SQLite) is killed with
SIGKILL ten times while call events keep coming, and restarted each time. Chain `[ussd, sms]`,
receipts half a second after each submit, so kills land in every window: between the attempt
row and the submit, between the SMSC's answer and the recording of the message id, between a
receipt and its acknowledgement. Afterwards every acknowledged event is delivered (0 lost), no
recipient got a card twice (the SMSC counts submits per recipient) and the ledger charges
exactly what the SMSC was sent (0 charged twice).

The second loop mixes the load as a switch sends it (a pre-call event, then the hang-up event of
the same call, retried until acknowledged), over a chain `[ussd, flash, sms]` whose steps the
SMSC drops or fails for some callees (so chains fall over) and whose SMS is a long card (several
segments). Every callee's submits are then sorted by what explains them: the segments of one
message, a fall-over to the next channel, two cards (pre-call and hang-up), or a submit that was
in flight at a kill (its attempt row still `sending` when the server died). Anything else is a
repeat, and there must be none."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from simulators.smsc import GatewaySim, Rule
from tests.support.processes import free_port, serve
from tests.support.templates import TEMPLATES

from .support import OPERATOR, SF_KEY, SF_LINE, auth, seed_doc

KILLS = 10
USSD_TIMEOUT = 3.0


def _callee(i: int) -> str:
    return f"+86137{i:08d}"


def _cards(submits: list[dict[str, Any]]) -> int:
    """Cards a person got: a long SMS is several submits (segments) but one card; its first
    segment's UDH ends with sequence number 01."""
    return sum(1 for s in submits if not s["udh"] or s["udh"].endswith("01"))


async def _load(base: dict[str, str], acked: dict[str, str], stop: asyncio.Event) -> None:
    """Call events one after another (a new call id and recipient each) to whichever server is
    up; only a 202 counts as acknowledged."""
    i = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while not stop.is_set():
            call_id = f"kl{i}"
            body = {"call_id": call_id, "caller": SF_LINE, "callee": _callee(i), "phase": "ended"}
            i += 1
            try:
                async with http.post(f"{base['url']}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
                    if resp.status == 202:
                        acked[call_id] = _callee(i - 1)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.05)  # the server is down: the caller would retry later
            await asyncio.sleep(0.01)


def _settings(tmp_path: Path, gateway: GatewaySim, policy: dict[str, Any]) -> dict[str, str]:
    """A `mingpian serve` on SQLite (its file in tmp_path/data), seeded with enterprise sf on
    `policy` and plenty of units, bound to the simulator."""
    seed = tmp_path / "seed.yaml"
    now = time.time()
    pool = {"id": "pool1", "kind": "pool", "units": 100_000, "price": 5.0, "policy": "stop",
            "valid_from": now - 86400, "valid_to": now + 30 * 86400}  # fmt: skip
    doc = seed_doc(policy=policy, packages=[pool])
    seed.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return {
        "MINGPIAN_PORT": str(free_port()),
        "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
        "MINGPIAN_DATA_DIR": str(tmp_path / "data"),
        "MINGPIAN_DELIVERY_SEED": str(seed),
        "MINGPIAN_DELIVERY_SMPP": f"127.0.0.1:{gateway.smpp_port}",
        "MINGPIAN_DELIVERY_SMPP_PASSWORD": "secret",
        "MINGPIAN_LOG_LEVEL": "WARNING",
        "MINGPIAN_LOG_FORMAT": "text",
    }


async def _final(http: aiohttp.ClientSession, url: str, call_id: str, end: float) -> dict[str, Any]:
    while True:
        async with http.get(f"{url}/api/calls/{call_id}", headers=auth(OPERATOR)) as resp:
            d = (await resp.json())["deliveries"][0]
        if d["state"] != "active" or time.monotonic() > end:
            return d  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


def _stop(stop: asyncio.Event, load: asyncio.Task[Any], proc: subprocess.Popen[bytes]) -> None:
    """The load ends, then the server, gently if it will."""
    stop.set()
    if not load.done():
        load.cancel()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def test_ten_kills_under_load_lose_nothing_and_send_nothing_twice(
    tmp_path: Path, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("deliver", delay=0.5)])
    settings = _settings(
        tmp_path, gateway, {"chain": ["ussd", "sms"], "timeouts": {"ussd": USSD_TIMEOUT, "sms": 20}}
    )

    def start() -> subprocess.Popen[bytes]:
        return serve(settings, tmp_path / "server.log")

    base = {"url": f"http://127.0.0.1:{settings['MINGPIAN_PORT']}"}
    acked: dict[str, str] = {}
    stop = asyncio.Event()
    rng = random.Random(7)
    proc = start()
    load = asyncio.create_task(_load(base, acked, stop))
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.6, 1.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = await asyncio.to_thread(start)
        await asyncio.sleep(1.0)
        stop.set()
        await load
        assert len(acked) >= 100, f"too little load to mean anything: {len(acked)} events acknowledged"
        async with aiohttp.ClientSession() as http:
            end = time.monotonic() + 40  # the last USSD timeouts and SMS receipts
            finals = {cid: await _final(http, base["url"], cid, end) for cid in acked}
            lost = {cid: (d["state"], d["reason"]) for cid, d in finals.items() if d["state"] != "delivered"}
            assert not lost, f"acknowledged but not delivered: {lost}"
            doubles = {
                callee: [(s["channel"], s["udh"]) for s in gateway.submitted(callee[3:])]
                for callee in acked.values()
                if _cards(gateway.submitted(callee[3:])) > 1
            }
            assert not doubles, f"sent twice: {doubles}"
            async with http.get(
                f"{base['url']}/api/enterprises/sf/usage?by=channel", headers=auth(SF_KEY)
            ) as r:
                charged = sum(row["messages"] for row in (await r.json())["rows"])
        # every card the SMSC was sent (acknowledged or not: an event stored just before a kill is
        # delivered all the same) is charged once; failed ones were refunded
        assert charged == len(gateway.submits), (charged, len(gateway.submits))
    finally:
        _stop(stop, load, proc)


# -- a mixed load: pre-call and hang-up cards, fall-overs, long SMS ------------------------------
MIXED_KILLS = 6
MIXED_POLICY = {"chain": ["ussd", "flash", "sms"], "timeouts": {"ussd": 1.5, "flash": 1.5, "sms": 20}}


def _fate(i: int, destination: str) -> list[Rule]:
    """What the SMSC does with callee i's submits (before the catch-all delivery): a quarter get
    the card by USSD; a quarter never hear back on USSD (timeout, then flash); a quarter fall
    over twice to a long SMS; a quarter are told USSD and flash failed (a receipt), then SMS."""
    kind = i % 4
    drop_ussd = Rule("drop", channel="ussd", destination=destination)
    fail = [Rule("fail", channel=c, destination=destination, delay=0.3) for c in ("ussd", "flash")]
    return [[], [drop_ussd], [fail[1], drop_ussd], fail][kind]


async def _mixed_call(
    http: aiohttp.ClientSession,
    base: dict[str, str],
    i: int,
    acked: set[str],
    gateway: GatewaySim,
    ring: bool,
) -> None:
    """One call: maybe a pre-call (ringing) event, then its hang-up (ended) event a moment later;
    each retried until acknowledged, as a switch does."""
    callee = _callee(i)
    gateway.rules[:0] = _fate(i, callee[3:])
    for n, phase in enumerate(["ringing", "ended"] if ring else ["ended"]):
        if n:
            await asyncio.sleep(0.2 + (i % 7) * 0.3)
        body = {"call_id": f"mx{i}", "caller": SF_LINE, "callee": callee, "phase": phase}
        for _ in range(50):
            try:
                async with http.post(f"{base['url']}/api/calls", json=body, headers=auth(OPERATOR)) as resp:
                    if resp.status in (200, 202):
                        acked.add(f"mx{i}:{phase}")
                        break
            except (TimeoutError, aiohttp.ClientError):
                pass  # the server is down: try again
            await asyncio.sleep(0.2)


async def _mixed_load(
    base: dict[str, str], acked: set[str], stop: asyncio.Event, gateway: GatewaySim
) -> None:
    calls: list[asyncio.Task[None]] = []
    rng = random.Random(11)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while not stop.is_set():
            i = len(calls)
            calls.append(asyncio.create_task(_mixed_call(http, base, i, acked, gateway, rng.random() < 0.6)))
            await asyncio.sleep(0.05)
        await asyncio.gather(*calls)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _classify(db: Path, submits: list[dict[str, Any]], in_flight: set[int]) -> tuple[Counter[str], list[Any]]:
    """Callees by what explains their submits, and the repeats nothing explains.

    Each submit is matched to its attempt by its message id (recorded after the submit's answer,
    or adopted from the receipt after a restart). Within an attempt every segment (UDH) goes at
    most once and there are at most as many submits as segments; a delivery's later step follows
    an earlier one that was not delivered (a fall-over), unless that earlier one was in flight
    at a kill (`in_flight`: its row was still `sending`), when the card may show twice. A submit
    no attempt knows must be one in flight at a kill whose receipt never came (the SMSC dropped
    it): its callee had an attempt on that channel in flight. The same submit (channel, UDH,
    text) twice to one person is a repeat unless such an attempt was in flight."""
    attempts = {
        r[0]: r
        for r in _rows(
            db,
            "SELECT a.id, a.delivery, a.step, a.segments, a.channel, d.recipient"
            " FROM attempts a JOIN deliveries d ON d.id = a.delivery",
        )
    }
    owner = dict(_rows(db, "SELECT message_id, attempt FROM message_ids"))
    stat = dict(_rows(db, "SELECT message_id, stat FROM receipts"))
    flying = {(attempts[a][5][3:], attempts[a][4]) for a in in_flight}  # (national number, channel)
    by_callee: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in submits:
        by_callee[s["destination"]].append(s)
    callees: Counter[str] = Counter()
    repeats: list[Any] = []
    for callee, subs in by_callee.items():
        why: set[str] = set()
        same = Counter((s["channel"], s["udh"], s["text"]) for s in subs)
        for (channel, udh, _), n in same.items():
            if n > 1 and (n > 2 or (callee, channel) not in flying):
                repeats.append((callee, channel, udh, f"the same submit {n} times"))
            elif n > 1:
                why.add("the same submit again after one in flight at a kill")
        steps: defaultdict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for s in subs:
            att = attempts.get(owner.get(s["message_id"], -1))
            if att is not None:
                steps[att[1]][att[2]].append(s)
            elif (callee, s["channel"]) in flying:
                why.add("in flight at a kill, no receipt")
            else:
                repeats.append((callee, s["channel"], s["udh"], "a submit no attempt sent"))
        if len(steps) > 1:
            why.add("two cards (pre-call and hang-up)")
        for delivery, by_step in steps.items():
            delivered = None
            for step in sorted(by_step):
                sent = by_step[step]
                att = attempts[owner[sent[0]["message_id"]]]
                udh = [s["udh"] for s in sent]
                if len(set(udh)) < len(udh) or len(sent) > max(1, att[3]):
                    repeats.append((callee, delivery, step, "segments", udh))
                if len(sent) > 1:
                    why.add("segments of one SMS")
                if delivered is not None and delivered in in_flight:
                    why.add("next channel after a delivered step in flight at a kill")
                elif delivered is not None:
                    repeats.append((callee, delivery, step, "sent again after delivered"))
                elif step != min(by_step):
                    why.add("fall-over to the next channel")
                if all(stat.get(s["message_id"]) == "DELIVRD" for s in sent):
                    delivered = att[0]
        callees.update(why or {"one message"})
    return callees, repeats


@pytest.mark.slow
async def test_kills_under_mixed_load_repeat_nothing_but_a_submit_in_flight(
    tmp_path: Path, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("deliver", delay=0.5)])
    settings = _settings(tmp_path, gateway, MIXED_POLICY)
    db = tmp_path / "data" / "delivery.sqlite3"
    base = {"url": f"http://127.0.0.1:{settings['MINGPIAN_PORT']}"}
    acked: set[str] = set()
    in_flight: set[int] = set()  # attempts a restarted server found between their row and the answer
    stop = asyncio.Event()
    rng = random.Random(5)
    proc = serve(settings, tmp_path / "server.log")
    load = asyncio.create_task(_mixed_load(base, acked, stop, gateway))
    try:
        for _ in range(MIXED_KILLS):
            await asyncio.sleep(rng.uniform(0.6, 1.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            in_flight |= {r[0] for r in _rows(db, "SELECT id FROM attempts WHERE state = 'sending'")}
            proc = await asyncio.to_thread(serve, settings, tmp_path / "server.log")
        await asyncio.sleep(1.0)
        stop.set()
        await load
        end = time.monotonic() + 60  # the last timeouts and receipts
        while (
            _rows(db, "SELECT count(*) FROM deliveries WHERE state = 'active'")[0][0]
            and time.monotonic() < end
        ):
            await asyncio.sleep(0.2)
    finally:
        _stop(stop, load, proc)
    assert len(acked) >= 100, f"too little load to mean anything: {len(acked)} events acknowledged"
    states = dict(_rows(db, "SELECT id, state FROM deliveries"))
    assert not {d for d in acked if states.get(d, "active") == "active"}, "acknowledged but never finished"
    callees, repeats = _classify(db, gateway.submits, in_flight)
    people = {s["destination"] for s in gateway.submits}
    print(
        f"\n{len(people)} callees, {len(gateway.submits)} submits, {len(in_flight)} attempts in flight"
        f" at {MIXED_KILLS} kills; callees by class: {dict(callees)}"
    )
    assert not repeats, f"sent again: {repeats}"
    # the load exercised what it is meant to: every legitimate kind of several submits
    for kind in ("segments of one SMS", "fall-over to the next channel", "two cards (pre-call and hang-up)"):
        assert callees[kind] > 0, (kind, dict(callees))
    # only a submit in flight at a kill may go unmatched, or be followed by the next channel
    flight = [k for k in callees if "in flight" in k]
    assert sum(callees[k] for k in flight) <= len(in_flight), (dict(callees), len(in_flight))
