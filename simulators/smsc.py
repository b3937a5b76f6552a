"""A gateway simulator: an SMSC speaking SMPP 3.4 on a TCP port, with a small HTTP control API.

The delivery tests and benchmark drive it: it accepts binds and submits, sends delivery
receipts (deliver_sm, esm_class 0x04) after a delay, and fails, delays, rejects or drops on
command (rules, first match wins). The same control app serves Kannel's `/cgi-bin/sendsms`
(with `dlr-url` callbacks), for the HTTP gateway channel. It counts what it received per
destination so a run can check that nothing was sent twice or lost. Receipts for an ESME that
is not bound are kept and sent when it binds again, as a store-and-forward SMSC does. With
several sessions of one account bound, receipts and replies go to the first (or, with
`spread_deliveries`, take turns over them).

An account's limits, as an SMSC enforces them: `bind_limits` (sessions bound at once per
system_id; one more is refused with ESME_RBINDFAIL) and `rate_limits` (submits accepted per
system_id in any one second; one more is answered ESME_RTHROTTLED, 0x58). `received` keeps
every submit_sm as it arrived (time, session, command_status), for measuring rates and spreading.

With `verify` (the default) every PDU an ESME sends is also read by an independent codec
(smppcheck.py, PyPI `smpplib`) and every submit_sm's addresses as a Chinese SMSC reads them; a
misnumbered submit is refused (0x0A invalid source / 0x0B invalid destination address) as a real
SMSC would, and every problem is kept in `problems` and in the module's `PROBLEMS`, which the
test suite checks after each test (tests/conftest.py). The benchmarks turn it off (the cost of a
second parser is not the server's).

Run alone: `python -m simulators.smsc --smpp-port 2775 --http-port 8775`.

One module past ~500 lines on purpose: an SMSC (binds, submits, receipts, limits) and its control
API share the session state; split, each would reach into the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

import aiohttp
from aiohttp import web

from delivery.gateways import smpp_pdu as smpp
from delivery.gateways import smpp_receipts
from delivery.gateways.smpp_pdu import Pdu, ShortMessage

PROBLEMS: list[str] = []  # every verifying simulator's, for the suite's after-test check
STATUS_INVSRCADR, STATUS_INVDSTADR = 0x0A, 0x0B


def channel_of(sm: ShortMessage) -> str:
    if smpp.TLV_USSD_SERVICE_OP in sm.tlvs:
        return "ussd"
    if sm.data_coding in (0x10, 0x18, 0xF0, 0x14):
        return "flash"
    return "sms"


@dataclass(slots=True)
class Rule:
    action: str = "deliver"  # deliver | fail | drop | reject
    channel: str = "*"
    destination: str = "*"
    delay: float = 0.0
    stat: str = ""  # receipt stat for fail (UNDELIV by default)
    status: int = smpp.STATUS_SUBMITFAIL  # command_status for reject
    times: int | None = None  # apply this many times, then the rule is spent

    def matches(self, channel: str, destination: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and self.channel in ("*", channel)
            and self.destination in ("*", destination)
        )

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Rule:
        r = cls(
            **{
                k: d[k]
                for k in ("action", "channel", "destination", "delay", "stat", "status", "times")
                if k in d
            }
        )
        if r.action not in ("deliver", "fail", "drop", "reject"):
            raise ValueError(f"unknown action {r.action!r}")
        return r


@dataclass(slots=True)
class _Session:
    system_id: str
    writer: asyncio.StreamWriter
    receives: bool
    id: int = 0  # the bind's number (1, 2, …) in this simulator's life
    outstanding: int = 0  # submit_sm received and not answered yet (with `answer_delay`)
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    unacked: dict[int, bytes] = field(default_factory=dict)  # deliver_sm sent, no resp yet (by seq)

    def deliver(self, body: bytes) -> None:
        seq = next(self.seq)
        self.unacked[seq] = body
        self.writer.write(Pdu(smpp.DELIVER_SM, 0, seq, body).encode())


@dataclass(frozen=True, slots=True)
class Received:
    """One submit_sm as it arrived: when (time.time()), on which bind, and the answer's status."""

    at: float
    bind: int
    status: int


class GatewaySim:
    def __init__(self, *, system_id: str = "mingpian", password: str = "secret", verify: bool = True) -> None:
        self.accounts = {system_id: password}
        self.verify = verify
        self.problems: list[str] = []  # what the independent reading found wrong (with `verify`)
        self.rules: list[Rule] = []
        self.submits: list[dict[str, Any]] = []
        self.by_destination: dict[str, int] = {}
        self.receipts_sent = 0
        self.mo_sent = 0
        self.redelivered = 0  # deliver_sm sent again after a session closed without acknowledging them
        # s after which a deliver_sm the ESME answered with an error goes out again, as an SMSC's
        # retry schedule does; None: only when the session closes and binds again
        self.retry_refused: float | None = None
        self.binds = 0
        self.binds_refused = 0  # over an account's bind limit
        self.bind_limits: dict[str, int] = {}  # system_id → sessions bound at once at most
        self.rate_limits: dict[str, float] = {}  # system_id → submits accepted per second at most
        self.received: list[Received] = []  # every submit_sm (accepted, rejected or throttled)
        self.throttled = 0  # submits answered ESME_RTHROTTLED for the rate limit
        self.enquire_links = 0
        self.answer_enquire_link = True  # False: a stalled SMSC (the link looks dead)
        self.answer_delay = 0.0  # seconds before a submit_sm is answered (a slow SMSC)
        self.bind_delay = 0.0  # seconds before a bind is answered (an SMSC slow to take us back)
        self.max_outstanding = 0  # most submit_sm one session had unanswered at once
        self._accepted: dict[str, list[float]] = {}  # system_id → accept times (rate limit)
        self.spread_deliveries = False  # deliver_sm take turns over an account's sessions
        self.deliveries: dict[int, int] = {}  # bind → deliver_sm sent on it
        self._turn = itertools.count()
        self._ids = itertools.count(1)
        self._sessions: list[_Session] = []
        self._queued: dict[str, list[tuple[int, bytes]]] = {}  # system_id → undelivered deliver_sm
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.smpp_port = 0
        self._listeners: list[asyncio.Queue[dict[str, Any]]] = []
        # told (destination as submitted, text) of each message it reports DELIVRD: e.g. the
        # card-SMS simulator, which draws a card when the text carries one of its parse links
        self.on_delivered: list[Callable[[str, str], None]] = []
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._client, host, port)
        self.smpp_port = self._server.sockets[0].getsockname()[1]
        return self.smpp_port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            s.writer.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._http is not None:
            await self._http.close()

    def reset(self) -> None:
        self.rules.clear()
        self.submits.clear()
        self.by_destination.clear()
        self.receipts_sent = 0
        self.received.clear()
        self.throttled = 0

    def bound(self, system_id: str | None = None) -> int:
        """Sessions bound now (of one account, or all)."""
        return sum(1 for s in self._sessions if system_id is None or s.system_id == system_id)

    def set_rules(self, rules: list[Rule]) -> None:
        self.rules = list(rules)

    def kick(self) -> None:
        """Drop every session (an SMSC restart): clients must reconnect and rebind."""
        for s in list(self._sessions):
            s.writer.close()

    def submitted(self, destination: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
        return [
            s
            for s in self.submits
            if (destination is None or s["destination"] == destination)
            and (channel is None or s["channel"] == channel)
        ]

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- SMPP side ---------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session: _Session | None = None
        try:
            while True:
                pdu = await smpp.read_pdu(reader)
                cmd = pdu.command_id
                if self.verify and cmd != smpp.SUBMIT_SM:  # submit_sm: checked in _submit
                    self._problems(pdu)
                if cmd in smpp.BINDS:
                    bind = smpp.Bind.decode(pdu.body)
                    if self.bind_delay > 0:
                        await asyncio.sleep(self.bind_delay)
                    ok = self.accounts.get(bind.system_id) == bind.password
                    limit = self.bind_limits.get(bind.system_id)
                    if ok and limit is not None and self.bound(bind.system_id) >= limit:
                        ok = False
                        self.binds_refused += 1
                    status = smpp.STATUS_OK if ok else smpp.STATUS_BINDFAIL
                    writer.write(Pdu(cmd | smpp.RESP, status, pdu.seq, smpp.cstr("mpsim")).encode())
                    if ok:
                        self.binds += 1
                        session = _Session(bind.system_id, writer, cmd != smpp.BIND_TRANSMITTER, self.binds)
                        self._sessions.append(session)
                        self._flush(session)
                elif session is None:
                    writer.write(
                        Pdu(
                            cmd | smpp.RESP if cmd < smpp.RESP else smpp.GENERIC_NACK,
                            smpp.STATUS_INVBNDSTS,
                            pdu.seq,
                        ).encode()
                    )
                elif cmd == smpp.SUBMIT_SM:
                    self._submit(session, pdu)
                elif cmd == smpp.ENQUIRE_LINK:
                    self.enquire_links += 1
                    if self.answer_enquire_link:
                        writer.write(Pdu(smpp.ENQUIRE_LINK | smpp.RESP, 0, pdu.seq).encode())
                elif cmd == smpp.UNBIND:
                    writer.write(Pdu(smpp.UNBIND | smpp.RESP, 0, pdu.seq).encode())
                    break
                elif cmd == smpp.DELIVER_SM | smpp.RESP:
                    if pdu.status == smpp.STATUS_OK:
                        session.unacked.pop(pdu.seq, None)
                    elif self.retry_refused is not None and (body := session.unacked.pop(pdu.seq, None)):
                        self.redelivered += 1
                        loop = asyncio.get_running_loop()
                        loop.call_later(self.retry_refused, self._deliver, session.system_id, body)
                elif cmd & smpp.RESP:
                    continue  # enquire_link_resp
                else:
                    writer.write(Pdu(smpp.GENERIC_NACK, smpp.STATUS_INVCMDID, pdu.seq).encode())
        except (asyncio.IncompleteReadError, ConnectionError, smpp.PduError):
            pass
        finally:
            if session is not None and session in self._sessions:
                self._sessions.remove(session)
            if session is not None and session.unacked:
                # As an SMSC does: what the ESME never acknowledged goes out again on its next bind.
                self.redelivered += len(session.unacked)
                for body in session.unacked.values():
                    self._deliver(session.system_id, body)
            writer.close()

    def _problems(self, pdu: Pdu, sm: ShortMessage | None = None) -> list[str]:
        from . import smppcheck  # smpplib: the test extra's; the benchmarks run without it

        found = smppcheck.problems(pdu.encode(), sm)
        for p in found:
            line = f"0x{pdu.command_id:08X} #{pdu.seq}: {p}"
            self.problems.append(line)
            PROBLEMS.append(line)
        return found

    def _rule(self, channel: str, destination: str) -> Rule:
        for r in self.rules:
            if r.matches(channel, destination):
                if r.times is not None:
                    r.times -= 1
                return r
        return Rule()

    def _submit(self, session: _Session, pdu: Pdu) -> None:
        try:
            sm = ShortMessage.decode(pdu.body)
        except smpp.PduError:
            session.writer.write(Pdu(smpp.SUBMIT_SM | smpp.RESP, smpp.STATUS_INVMSGLEN, pdu.seq).encode())
            return
        if self.verify and (found := self._problems(pdu, sm)):
            bad_address = [p for p in found if p.startswith(("source_addr", "destination_addr"))]
            if bad_address:
                status = STATUS_INVSRCADR if bad_address[0].startswith("source") else STATUS_INVDSTADR
                self.received.append(Received(time.time(), session.id, status))
                session.writer.write(Pdu(smpp.SUBMIT_SM | smpp.RESP, status, pdu.seq, b"\0").encode())
                return
        if self._over_rate(session.system_id):
            self.throttled += 1
            self.received.append(Received(time.time(), session.id, smpp.STATUS_THROTTLED))
            session.writer.write(
                Pdu(smpp.SUBMIT_SM | smpp.RESP, smpp.STATUS_THROTTLED, pdu.seq, b"\0").encode()
            )
            return
        channel = channel_of(sm)
        rule = self._rule(channel, sm.destination)
        if rule.action == "reject":
            self.received.append(Received(time.time(), session.id, rule.status))
            session.writer.write(Pdu(smpp.SUBMIT_SM | smpp.RESP, rule.status, pdu.seq, b"\0").encode())
            return
        self.received.append(Received(time.time(), session.id, smpp.STATUS_OK))
        mid = f"{next(self._ids):08X}"
        udh = sm.udh
        if self.answer_delay > 0:
            session.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, session.outstanding)
            self._spawn(
                self._answer_later(session, Pdu(smpp.SUBMIT_SM | smpp.RESP, 0, pdu.seq, smpp.cstr(mid)))
            )
        else:
            session.writer.write(Pdu(smpp.SUBMIT_SM | smpp.RESP, 0, pdu.seq, smpp.cstr(mid)).encode())
        rec = {
            "message_id": mid,
            "channel": channel,
            "source": sm.source,
            "source_ton": sm.source_ton,
            "source_npi": sm.source_npi,
            "destination": sm.destination,
            "dest_ton": sm.dest_ton,
            "dest_npi": sm.dest_npi,
            "text": sm.text(),
            "data_coding": sm.data_coding,
            "esm_class": sm.esm_class,
            "registered_delivery": sm.registered_delivery,
            "udh": udh.hex().upper(),
            "ussd_service_op": sm.tlvs[smpp.TLV_USSD_SERVICE_OP][0]
            if smpp.TLV_USSD_SERVICE_OP in sm.tlvs
            else None,
            "at": time.time(),
            "action": rule.action,
            "bind": session.id,
        }
        self.submits.append(rec)
        self.by_destination[sm.destination] = self.by_destination.get(sm.destination, 0) + 1
        for q in self._listeners:
            q.put_nowait(rec)
        if sm.registered_delivery & 0x03 and rule.action != "drop":
            stat = "DELIVRD" if rule.action == "deliver" else (rule.stat or "UNDELIV")
            if rule.delay + self.answer_delay > 0:
                delay = rule.delay + self.answer_delay  # never before the submit's answer
                self._spawn(self._receipt_later(session.system_id, sm, mid, stat, delay))
            else:
                self._receipt(session.system_id, sm, mid, stat)

    def _over_rate(self, system_id: str) -> bool:
        """One more accepted submit would make more than the account's rate in the last second."""
        limit = self.rate_limits.get(system_id)
        if limit is None:
            return False
        now = time.monotonic()
        times = self._accepted.setdefault(system_id, [])
        while times and times[0] <= now - 1.0:
            times.pop(0)
        if len(times) >= limit:
            return True
        times.append(now)
        return False

    async def _answer_later(self, session: _Session, resp: Pdu) -> None:
        await asyncio.sleep(self.answer_delay)
        session.outstanding -= 1
        if not session.writer.is_closing():
            session.writer.write(resp.encode())

    async def _receipt_later(
        self, system_id: str, sm: ShortMessage, mid: str, stat: str, delay: float
    ) -> None:
        await asyncio.sleep(delay)
        self._receipt(system_id, sm, mid, stat)

    def _receipt(self, system_id: str, sm: ShortMessage, mid: str, stat: str) -> None:
        now = time.strftime("%y%m%d%H%M")
        state = {v: k for k, v in smpp_receipts.MESSAGE_STATES.items()}[stat]
        dsm = ShortMessage(
            sm.destination,
            sm.source,
            smpp_receipts.receipt_text(mid, stat, now, now),
            esm_class=smpp.ESM_RECEIPT,
            source_ton=sm.dest_ton,
            source_npi=sm.dest_npi,
            dest_ton=sm.source_ton,
            dest_npi=sm.source_npi,
            tlvs={smpp.TLV_RECEIPTED_MESSAGE_ID: smpp.cstr(mid), smpp.TLV_MESSAGE_STATE: bytes((state,))},
        )
        self.receipts_sent += 1
        self._deliver(system_id, dsm.encode())
        if stat == "DELIVRD":
            for hook in self.on_delivered:
                hook(sm.destination, sm.text())

    def send_mo(self, source: str, destination: str, text: str) -> None:
        """A subscriber's reply (mobile-originated), e.g. "TD" or "1". A Chinese mobile number
        is given in international form (86…, TON 1) as an SMSC does; the line as dialled (TON 0)."""
        src, ton = (f"86{source}", 1) if len(source) == 11 and source.startswith("1") else (source, 0)
        if all(ord(c) < 128 for c in text):
            sm = ShortMessage(src, destination, smpp.text_to_septets(text), 0x00, source_ton=ton, dest_ton=0)
        else:
            sm = ShortMessage(src, destination, text.encode("utf-16-be"), 0x08, source_ton=ton, dest_ton=0)
        self.mo_sent += 1
        for system_id in self.accounts:
            self._deliver(system_id, sm.encode())

    def _deliver(self, system_id: str, body: bytes) -> None:
        ready = [
            s for s in self._sessions if s.system_id == system_id and s.receives and not s.writer.is_closing()
        ]
        if ready:
            s = ready[next(self._turn) % len(ready)] if self.spread_deliveries else ready[0]
            s.deliver(body)
            self.deliveries[s.id] = self.deliveries.get(s.id, 0) + 1
            return
        self._queued.setdefault(system_id, []).append((0, body))

    def _flush(self, session: _Session) -> None:
        if not session.receives:
            return
        for _, body in self._queued.pop(session.system_id, []):
            session.deliver(body)

    # -- Kannel HTTP side (smsbox sendsms) ------------------------------------------------------
    async def _sendsms(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if request.method == "POST":
            q.update({k: str(v) for k, v in (await request.post()).items()})
        if self.accounts.get(q.get("username", "")) != q.get("password"):
            return web.Response(status=403, text="Authorization failed for sendsms")
        if not q.get("to") or "text" not in q:
            return web.Response(status=400, text="Missing receiver number or text")
        channel = "flash" if q.get("mclass") == "0" else "sms"
        rule = self._rule(channel, q["to"])
        if rule.action == "reject":
            return web.Response(status=403, text="Rejected by the SMSC")
        mid = f"{next(self._ids):08X}"
        rec = {
            "message_id": mid,
            "channel": channel,
            "source": q.get("from", ""),
            "destination": q["to"],
            "text": q["text"],
            "data_coding": {"0": 0x00, "2": 0x08}.get(q.get("coding", "0"), 0)
            | (0x10 if channel == "flash" else 0),
            "esm_class": 0,
            "registered_delivery": 1 if q.get("dlr-url") else 0,
            "udh": q.get("udh", ""),
            "ussd_service_op": None,
            "at": time.time(),
            "action": rule.action,
            "via": "kannel",
        }
        self.submits.append(rec)
        self.by_destination[q["to"]] = self.by_destination.get(q["to"], 0) + 1
        url = q.get("dlr-url")
        if url and rule.action != "drop":
            dlr_type = "1" if rule.action == "deliver" else "2"
            self._spawn(self._dlr(url.replace("%d", dlr_type).replace("%p", q["to"]), rule.delay))
        return web.Response(status=202, text="0: Accepted for delivery")

    async def _dlr(self, url: str, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._http is None:
            self._http = aiohttp.ClientSession()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._http.get(url) as resp:
                await resp.read()
        self.receipts_sent += 1

    # -- HTTP control API ----------------------------------------------------------------------
    def control_app(self) -> web.Application:
        app = web.Application()

        async def get_submits(request: web.Request) -> web.Response:
            dest = request.query.get("destination")
            return web.json_response(
                {
                    "submits": self.submitted(dest),
                    "byDestination": self.by_destination,
                    "receiptsSent": self.receipts_sent,
                    "binds": self.binds,
                    "bindsRefused": self.binds_refused,
                    "bound": self.bound(),
                    "throttled": self.throttled,
                }
            )

        async def post_limits(request: web.Request) -> web.Response:
            """`{"system_id": "mingpian", "binds": 2, "rate": 50}`: null or absent lifts a limit."""
            try:
                body = await request.json()
                system_id = str(body.get("system_id", next(iter(self.accounts))))
                for key, limits, kind in (
                    ("binds", self.bind_limits, int),
                    ("rate", self.rate_limits, float),
                ):
                    if body.get(key) is None:
                        limits.pop(system_id, None)
                    else:
                        limits[system_id] = kind(body[key])
            except (ValueError, TypeError, AttributeError) as exc:
                return web.json_response({"error": "invalid_limits", "message": str(exc)}, status=400)
            return web.json_response({"binds": self.bind_limits, "rate": self.rate_limits})

        async def post_rules(request: web.Request) -> web.Response:
            try:
                body = await request.json()
                rules = [Rule.from_json(r) for r in body.get("rules", [])]
            except (ValueError, TypeError, AttributeError) as exc:
                return web.json_response({"error": "invalid_rules", "message": str(exc)}, status=400)
            self.set_rules(rules)
            return web.json_response({"rules": len(rules)})

        async def post_reset(request: web.Request) -> web.Response:
            self.reset()
            return web.json_response({"reset": True})

        async def post_mo(request: web.Request) -> web.Response:
            try:
                body = await request.json()
                self.send_mo(str(body["from"]), str(body["to"]), str(body["text"]))
            except (ValueError, KeyError, TypeError) as exc:
                return web.json_response({"error": "invalid_mo", "message": str(exc)}, status=400)
            return web.json_response({"sent": True})

        app.router.add_get("/control/submits", get_submits)
        app.router.add_post("/control/rules", post_rules)
        app.router.add_post("/control/limits", post_limits)
        app.router.add_post("/control/reset", post_reset)
        app.router.add_post("/control/mo", post_mo)
        app.router.add_get("/cgi-bin/sendsms", self._sendsms)
        app.router.add_post("/cgi-bin/sendsms", self._sendsms)
        return app


async def _main(args: argparse.Namespace) -> None:
    sim = GatewaySim(
        system_id=args.system_id, password=args.password, verify=find_spec("smpplib") is not None
    )
    port = await sim.start(args.host, args.smpp_port)
    runner = web.AppRunner(sim.control_app())
    await runner.setup()
    await web.TCPSite(runner, args.host, args.http_port).start()
    print(
        f"gateway simulator: SMPP on {args.host}:{port}, control on http://{args.host}:{args.http_port}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await sim.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--smpp-port", type=int, default=2775)
    p.add_argument("--http-port", type=int, default=8775)
    p.add_argument("--system-id", default="mingpian")
    p.add_argument("--password", default="secret")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
