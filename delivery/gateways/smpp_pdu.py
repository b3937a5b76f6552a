"""SMPP 3.4 PDUs: the one SMPP codec of the project (PDUs, framing, GSM-7 septets).

Why our own codec: the asyncio libraries on PyPI do not fit. aiosmpplib maps `data_coding` to an
enum of alphabets, so class-0 (flash) 0x10/0x18 can neither be sent nor parsed, and it has no
SMSC side for the simulator; smpplib is blocking and thread-based. The PDUs we need are few
(bind, submit_sm, deliver_sm, enquire_link, unbind, generic_nack), so the codec is small and
shared by the client (smpp_client.py) and the SMSC of the gateway simulator (simulators/smsc.py).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

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


class PduReader:
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
        r = PduReader(body)
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
        r = PduReader(body)
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
    from renderer import gsm  # deferred: the tables are built on first use only

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


# -- framing -------------------------------------------------------------------------------------


async def read_pdu(reader: asyncio.StreamReader) -> Pdu:
    head = await reader.readexactly(16)
    length, cmd, status, seq = HEADER.unpack(head)
    if length < 16 or length > MAX_PDU:
        raise PduError(f"bad command_length {length}")
    body = await reader.readexactly(length - 16) if length > 16 else b""
    return Pdu(cmd, status, seq, body)
