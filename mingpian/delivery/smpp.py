"""SMPP 3.4 PDUs and an asyncio ESME (client) session: the one SMPP codec of the project.

Why our own codec: the asyncio libraries on PyPI do not fit. aiosmpplib maps `data_coding` to an
enum of alphabets, so class-0 (flash) 0x10/0x18 can neither be sent nor parsed, and it has no
SMSC side for the simulator; smpplib is blocking and thread-based. The PDUs we need are few
(bind, submit_sm, deliver_sm, enquire_link, unbind, generic_nack), so the codec is small and
shared by the client here and the SMSC in gatewaysim.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("mingpian.delivery.smpp")

GENERIC_NACK = 0x80000000
BIND_RECEIVER, BIND_TRANSMITTER, SUBMIT_SM, DELIVER_SM, UNBIND = 0x01, 0x02, 0x04, 0x05, 0x06
BIND_TRANSCEIVER, ENQUIRE_LINK = 0x09, 0x15
RESP = 0x80000000
BINDS = (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER)

# TLV tags (SMPP 3.4 §5.3.2)
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_USER_MESSAGE_REFERENCE = 0x0204
TLV_SAR_MSG_REF_NUM, TLV_SAR_TOTAL_SEGMENTS, TLV_SAR_SEGMENT_SEQNUM = 0x020C, 0x020E, 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427
TLV_USSD_SERVICE_OP = 0x0501
USSN_REQUEST = 3  # network-initiated notify: what a calling card uses

ESM_UDHI = 0x40
ESM_RECEIPT = 0x04
STATUS_OK, STATUS_INVMSGLEN, STATUS_INVCMDID, STATUS_BINDFAIL = 0x00, 0x01, 0x03, 0x0D
STATUS_SYSERR, STATUS_INVBNDSTS, STATUS_SUBMITFAIL = 0x08, 0x04, 0x45
STATUS_THROTTLED, STATUS_MSGQFUL = 0x58, 0x14
RETRYABLE = frozenset({STATUS_THROTTLED, STATUS_MSGQFUL, STATUS_SYSERR})
MAX_PDU = 64 * 1024
HEADER = struct.Struct("!IIII")
FAILED_STATS = frozenset({"UNDELIV", "EXPIRED", "DELETED", "REJECTD", "UNKNOWN"})


class PduError(ValueError):
    pass


@dataclass(slots=True)
class Pdu:
    command_id: int
    status: int
    seq: int
    body: bytes = b""

    def encode(self) -> bytes:
        return HEADER.pack(16 + len(self.body), self.command_id, self.status, self.seq) + self.body


def cstr(value: str | bytes) -> bytes:
    raw = value.encode("ascii") if isinstance(value, str) else value
    if b"\0" in raw:
        raise PduError("C-octet string contains NUL")
    return raw + b"\0"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def cstr(self, limit: int = 256) -> str:
        end = self.data.find(b"\0", self.pos, self.pos + limit)
        if end < 0:
            raise PduError("unterminated C-octet string")
        out = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return out

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise PduError("PDU body too short")
        self.pos += 1
        return self.data[self.pos - 1]

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError("PDU body too short")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def tlvs(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        while self.pos + 4 <= len(self.data):
            tag, length = struct.unpack_from("!HH", self.data, self.pos)
            self.pos += 4
            out[tag] = self.raw(length)
        return out


@dataclass(slots=True)
class Bind:
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34

    def encode(self) -> bytes:
        return (
            cstr(self.system_id)
            + cstr(self.password)
            + cstr(self.system_type)
            + bytes((self.interface_version, 0, 0))
            + b"\0"
        )

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        r = _Reader(body)
        return cls(r.cstr(16), r.cstr(9), r.cstr(13), r.u8())


@dataclass(slots=True)
class ShortMessage:
    """submit_sm and deliver_sm share one body layout (SMPP 3.4 §4.4.1, §4.6.1)."""

    source: str
    destination: str
    short_message: bytes = b""
    data_coding: int = 0
    esm_class: int = 0
    registered_delivery: int = 0
    service_type: str = ""
    source_ton: int = 1
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    protocol_id: int = 0
    priority: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        sm = self.short_message
        tlvs = dict(self.tlvs)
        if len(sm) > 254:
            tlvs[TLV_MESSAGE_PAYLOAD], sm = sm, b""
        body = (
            cstr(self.service_type)
            + bytes((self.source_ton, self.source_npi))
            + cstr(self.source)
            + bytes((self.dest_ton, self.dest_npi))
            + cstr(self.destination)
            + bytes((self.esm_class, self.protocol_id, self.priority))
            + b"\0\0"
            + bytes((self.registered_delivery, 0, self.data_coding, 0, len(sm)))
            + sm
        )
        return body + b"".join(struct.pack("!HH", t, len(v)) + v for t, v in tlvs.items())

    @classmethod
    def decode(cls, body: bytes) -> ShortMessage:
        r = _Reader(body)
        service_type = r.cstr(6)
        s_ton, s_npi, source = r.u8(), r.u8(), r.cstr(21)
        d_ton, d_npi, dest = r.u8(), r.u8(), r.cstr(21)
        esm, pid, prio = r.u8(), r.u8(), r.u8()
        r.cstr(17), r.cstr(17)  # schedule_delivery_time, validity_period
        reg, _replace, dcs, _default_id, sm_len = r.u8(), r.u8(), r.u8(), r.u8(), r.u8()
        sm = r.raw(sm_len)
        tlvs = r.tlvs()
        if not sm and TLV_MESSAGE_PAYLOAD in tlvs:
            sm = tlvs[TLV_MESSAGE_PAYLOAD]
        return cls(source, dest, sm, dcs, esm, reg, service_type, s_ton, s_npi, d_ton, d_npi, pid, prio, tlvs)

    @property
    def udh(self) -> bytes:
        if self.esm_class & ESM_UDHI and self.short_message:
            return self.short_message[: self.short_message[0] + 1]
        return b""

    @property
    def payload(self) -> bytes:
        return self.short_message[len(self.udh) :]

    def text(self) -> str:
        """The text, decoded by data_coding (UCS-2 for 0x08/0x18, else unpacked GSM-7)."""
        data = self.payload
        if self.data_coding & 0x0C == 0x08 or self.data_coding == 0x48:
            return data.decode("utf-16-be", "replace")
        return septets_to_text(data)


# -- GSM-7 as one septet per octet (the SMPP "SMSC default alphabet" convention) ------------------


def _gsm_tables() -> tuple[dict[int, bytes], dict[int, str]]:
    from renderer import gsm

    to: dict[int, bytes] = {}
    back: dict[int, str] = {}
    for code, ch in enumerate(gsm.BASIC_TABLE):
        if ch != gsm.ESC:
            to[ord(ch)] = bytes((code,))
            back[code] = ch
    for ch, code in gsm.EXTENSION_TABLE.items():
        to[ord(ch)] = bytes((0x1B, code))
        back[0x1B00 | code] = ch
    return to, back


_TO_GSM, _FROM_GSM = _gsm_tables()


def text_to_septets(text: str) -> bytes:
    return b"".join(_TO_GSM.get(ord(c), b"?") for c in text)


def septets_to_text(data: bytes) -> str:
    out, i = [], 0
    while i < len(data):
        b = data[i]
        if b == 0x1B and i + 1 < len(data):
            out.append(_FROM_GSM.get(0x1B00 | data[i + 1], " "))
            i += 2
            continue
        out.append(_FROM_GSM.get(b, "?"))
        i += 1
    return "".join(out)


# -- delivery receipts (SMPP 3.4 Appendix B) -----------------------------------------------------

_RECEIPT = re.compile(r"id:(?P<id>\S+).*?stat:(?P<stat>[A-Z]+)(?:.*?err:(?P<err>\S+))?", re.S)
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    stat: str
    err: str = "000"

    @property
    def final(self) -> bool:
        return self.stat == "DELIVRD" or self.stat in FAILED_STATS


def parse_receipt(sm: ShortMessage) -> Receipt | None:
    """A receipt from a deliver_sm with esm_class 0x04: TLVs first, the text as the fallback."""
    if not sm.esm_class & ESM_RECEIPT:
        return None
    text = sm.short_message.decode("latin-1", "replace")
    m = _RECEIPT.search(text)
    mid = sm.tlvs.get(TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0").decode("latin-1")
    state = sm.tlvs.get(TLV_MESSAGE_STATE)
    stat = MESSAGE_STATES.get(state[0], "UNKNOWN") if state else (m.group("stat") if m else "")
    mid = mid or (m.group("id") if m else "")
    if not mid or not stat:
        return None
    return Receipt(mid, stat, (m.group("err") or "000") if m else "000")


def receipt_text(
    message_id: str, stat: str, submit: str, done: str, err: str = "000", text: str = ""
) -> bytes:
    dlvrd = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{submit} done date:{done} "
        f"stat:{stat} err:{err} text:{text[:20]}"
    ).encode("latin-1", "replace")


# -- framing -------------------------------------------------------------------------------------


async def read_pdu(reader: asyncio.StreamReader) -> Pdu:
    head = await reader.readexactly(16)
    length, cmd, status, seq = HEADER.unpack(head)
    if length < 16 or length > MAX_PDU:
        raise PduError(f"bad command_length {length}")
    body = await reader.readexactly(length - 16) if length > 16 else b""
    return Pdu(cmd, status, seq, body)


# -- the client session --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status: int
    message_id: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


DeliverHandler = Callable[[ShortMessage], Awaitable[None]]


class SmppClient:
    """One bind_transceiver session kept up: reconnect with backoff, enquire_link keep-alive,
    a window of outstanding submits matched by sequence_number, and every deliver_sm answered
    only after `on_deliver` returned (the receipt is stored: at-least-once, deduped by us)."""

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        on_deliver: DeliverHandler,
        *,
        system_type: str = "",
        keepalive: float = 30.0,
        timeout: float = 5.0,
        window: int = 256,
    ) -> None:
        self.host, self.port = host, port
        self.system_id, self.password, self.system_type = system_id, password, system_type
        self.on_deliver = on_deliver
        self.keepalive, self.timeout = keepalive, timeout
        self._window = asyncio.Semaphore(window)
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="smpp-client")

    async def wait_bound(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._bound.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        w = self._writer
        if w is not None and self.bound:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._request(UNBIND, b""), 1.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for t in list(self._handlers):
            t.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.05
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                log.warning("SMPP connect to %s:%s failed: %s", self.host, self.port, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._writer = writer
            reading = asyncio.get_running_loop().create_task(self._read(reader))
            try:
                bind = Bind(self.system_id, self.password, self.system_type).encode()
                resp = await asyncio.wait_for(self._request(BIND_TRANSCEIVER, bind), self.timeout)
                if resp.status != STATUS_OK:
                    raise ConnectionError(f"bind refused: status 0x{resp.status:02X}")
                delay = 0.05
                self._bound.set()
                while not reading.done():
                    done, _ = await asyncio.wait({reading}, timeout=self.keepalive)
                    if not done:
                        await asyncio.wait_for(self._request(ENQUIRE_LINK, b""), self.timeout)
            except (OSError, ConnectionError, TimeoutError, PduError) as exc:
                if not self._closing:
                    log.warning("SMPP session lost: %s", exc)
            finally:
                self._bound.clear()
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
                writer.close()
                self._writer = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("SMPP session closed"))
                self._pending.clear()
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        n = 0
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, PduError):
            while True:
                pdu = await read_pdu(reader)
                n += 1
                if n % 32 == 0:  # a buffered burst is read without suspending: let others run
                    await asyncio.sleep(0)
                if pdu.command_id & RESP:
                    fut = self._pending.pop(pdu.seq, None)
                    if fut is not None and not fut.done():
                        fut.set_result(pdu)
                elif pdu.command_id == DELIVER_SM:
                    t = asyncio.get_running_loop().create_task(self._deliver(pdu))
                    self._handlers.add(t)
                    t.add_done_callback(self._handlers.discard)
                elif pdu.command_id == ENQUIRE_LINK:
                    self._write(Pdu(ENQUIRE_LINK | RESP, 0, pdu.seq))
                elif pdu.command_id == UNBIND:
                    self._write(Pdu(UNBIND | RESP, 0, pdu.seq))
                    return
                else:
                    self._write(Pdu(GENERIC_NACK, STATUS_INVCMDID, pdu.seq))

    async def _deliver(self, pdu: Pdu) -> None:
        try:
            sm = ShortMessage.decode(pdu.body)
        except PduError:
            self._write(Pdu(DELIVER_SM | RESP, STATUS_INVMSGLEN, pdu.seq, b"\0"))
            return
        try:
            await self.on_deliver(sm)
        except Exception:  # not stored: a system error makes the SMSC redeliver it later
            log.exception("handling deliver_sm failed")
            self._write(Pdu(DELIVER_SM | RESP, STATUS_SYSERR, pdu.seq, b"\0"))
            return
        self._write(Pdu(DELIVER_SM | RESP, STATUS_OK, pdu.seq, b"\0"))

    def _write(self, pdu: Pdu) -> None:
        if self._writer is None:
            raise ConnectionError("SMPP not connected")
        self._writer.write(pdu.encode())

    async def _request(self, command: int, body: bytes, timeout: float | None = None) -> Pdu:
        """Send a request and wait for its response. The timeout is a timer on the future, not
        asyncio.wait_for, which would cost a task per submit on Python 3.11."""
        seq = self._next_seq()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Pdu] = loop.create_future()
        self._pending[seq] = fut
        try:
            self._write(Pdu(command, 0, seq, body))
        except ConnectionError:
            self._pending.pop(seq, None)
            raise
        timer = None
        if timeout is not None:
            timer = loop.call_later(
                timeout, lambda: fut.done() or fut.set_exception(TimeoutError(f"no response in {timeout:g}s"))
            )
        try:
            return await fut
        finally:
            self._pending.pop(seq, None)
            if timer is not None:
                timer.cancel()

    async def submit(self, sm: ShortMessage) -> SubmitResult:
        """submit_sm → the SMSC's answer; a lost session or no answer is status SYSERR."""
        if not self.bound and not await self.wait_bound(self.timeout):
            return SubmitResult(STATUS_SYSERR, detail="SMPP not bound")
        async with self._window:
            try:
                resp = await self._request(SUBMIT_SM, sm.encode(), self.timeout)
            except (ConnectionError, TimeoutError, OSError) as exc:
                return SubmitResult(STATUS_SYSERR, detail=f"{type(exc).__name__}: {exc}")
        mid = _Reader(resp.body).cstr(65) if resp.body else ""
        return SubmitResult(
            resp.status, mid, "" if resp.status == 0 else f"command_status 0x{resp.status:02X}"
        )
