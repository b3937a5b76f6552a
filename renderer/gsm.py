"""The one place that encodes and segments text for SMS, flash SMS and USSD (3GPP TS 23.038/23.040).

Everything here is table-driven and runs in C-level string operations (regex search, str.translate,
bytes slicing, one big-int conversion per segment), because degrading a card is a hot path.

Choices (see docs/legacy.md for the full discussion):
- GSM 7-bit default alphabet + its extension table (each extension character costs ESC 0x1B plus
  one septet). A text with any character outside both tables is sent entirely in UCS-2, coded
  as UTF-16BE: a character outside the BMP (emoji) is a surrogate pair = 2 units.
- SMS: one segment holds 160 septets / 70 units; a concatenated message holds 153 septets / 67
  units per segment behind the 6-octet UDH `05 00 03 ref total seq` (8-bit reference, IEI 0x00).
  A segment never ends between ESC and its character, nor between the halves of a surrogate pair,
  so such a segment carries one unit less.
- `user_data_hex` is the TP-User-Data as it appears in an SMS-SUBMIT TPDU: for GSM-7 the UDH,
  then the septets packed LSB-first with 1 fill bit so the text starts on a septet boundary
  (TS 23.040 §9.2.3.24); `udl` is then counted in septets (UDH + fill = 7 septets). For UCS-2 the
  UDH then the UTF-16BE octets; `udl` is in octets. (An SMPP gateway with data_coding 0 usually
  wants unpacked septets instead: `septets_hex` gives those.)
- Flash SMS = message class 0: DCS 0x10 (GSM-7) / 0x18 (UCS-2) instead of 0x00 / 0x08.
- USSD: one string of at most 182 septets (160 octets packed) or 80 UCS-2 units (160 octets).
  DCS 0x0F (GSM-7, language unspecified) or 0x48 (general data coding, UCS-2, no class), the CBS
  data coding scheme of TS 23.038 §5. Packed per §6.1.2.3: when 7 spare bits would remain, a CR
  pads them so the receiver does not read an '@'.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Encoding = Literal["GSM-7", "UCS-2"]
Channel = Literal["sms", "flash", "ussd"]
CHANNELS: tuple[Channel, ...] = ("ussd", "flash", "sms")

ESC = "\x1b"
# TS 23.038 §6.2.1: the default alphabet in code order; position 0x1B is the escape, not a character.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# TS 23.038 §6.2.1.1: the default extension table (reached by ESC); each costs 2 septets.
EXTENSION_TABLE: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
assert len(BASIC_TABLE) == 128

SMS_SINGLE = {"GSM-7": 160, "UCS-2": 70}
SMS_CONCAT = {"GSM-7": 153, "UCS-2": 67}
USSD_MAX = {"GSM-7": 182, "UCS-2": 80}
DCS: dict[tuple[Channel, Encoding], int] = {
    ("sms", "GSM-7"): 0x00,
    ("sms", "UCS-2"): 0x08,
    ("flash", "GSM-7"): 0x10,
    ("flash", "UCS-2"): 0x18,
    ("ussd", "GSM-7"): 0x0F,
    ("ussd", "UCS-2"): 0x48,
}
UDH_LEN = 6  # 05 00 03 ref total seq
UDH_SEPTETS = 7  # 48 bits of UDH + 1 fill bit
MAX_SEGMENTS = 255  # the 8-bit `total` field of the concatenation IE

# char → its septet(s) as a str of code points < 128 (ESC + code for the extension table)
_TO_SEPTETS: dict[int, str] = {ord(c): chr(i) for i, c in enumerate(BASIC_TABLE) if c != ESC}
_TO_SEPTETS.update({ord(c): ESC + chr(code) for c, code in EXTENSION_TABLE.items()})
_GSM_CHARS = "".join(chr(k) for k in _TO_SEPTETS)
_NON_GSM = re.compile("[^" + re.escape(_GSM_CHARS) + "]")
_EXT = re.compile("[" + re.escape("".join(EXTENSION_TABLE)) + "]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# septet code → its 7 bits, most significant first (for packing a reversed septet string)
_BITS7 = {i: format(i, "07b") for i in range(128)}


def is_gsm7(text: str) -> bool:
    """True when every character is in the default alphabet or its extension table."""
    return _NON_GSM.search(text) is None


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if _NON_GSM.search(text) is None else "UCS-2"


def units(text: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text costs in that encoding."""
    if encoding == "GSM-7":
        return len(text) + len(_EXT.findall(text))
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def measure(text: str) -> tuple[Encoding, int]:
    enc = encoding_of(text)
    return enc, units(text, enc)


def clean(text: str) -> str:
    """Replace lone surrogates (JSON allows "\\ud800") by U+FFFD so every text encodes."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def to_septets(text: str) -> str:
    """The unpacked septet string (code points 0–127) of a GSM-7 text."""
    return text.translate(_TO_SEPTETS)


def pack_septets(septets: str, fill_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets (TS 23.038 §6.1.2.1), after `fill_bits` zero bits."""
    if not septets:
        return b""
    value = int(septets[::-1].translate(_BITS7), 2) << fill_bits
    return value.to_bytes((7 * len(septets) + fill_bits + 7) >> 3, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> str:
    """Inverse of pack_septets (for tests and peers): `count` septets after the fill bits."""
    value = int.from_bytes(data, "little") >> fill_bits
    return "".join(chr((value >> (7 * i)) & 0x7F) for i in range(count))


def cut(text: str, limit: int, encoding: Encoding) -> str:
    """The longest prefix of `text` costing at most `limit` units, cut on a character boundary
    (never between ESC and its character, never inside a surrogate pair)."""
    if limit <= 0:
        return ""
    if encoding == "GSM-7":
        sept = text.translate(_TO_SEPTETS)
        if len(sept) <= limit:
            return text
        head = sept[:limit]
        if head[-1] == ESC:
            head = head[:-1]
        return text[: len(head) - head.count(ESC)]
    raw = text.encode("utf-16-be", "surrogatepass")
    if len(raw) <= 2 * limit:
        return text
    end = 2 * limit
    if 0xD8 <= raw[end - 2] <= 0xDB:  # would end on a high surrogate
        end -= 2
    return raw[:end].decode("utf-16-be", "surrogatepass")


class Segment(NamedTuple):
    """One SMS (or the one USSD string) as a gateway sends it (immutable; cheap to build)."""

    seq: int
    text: str
    units: int  # septets / UTF-16 units of this segment's text
    capacity: int  # units this segment could hold
    udh_hex: str  # "" for a single-segment message and for USSD
    udl: int  # TP-UDL: septets incl. UDH+fill (GSM-7) or octets incl. UDH (UCS-2)
    user_data_hex: str  # TP-UD: UDH + packed septets / UTF-16BE octets

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "text": self.text,
            "units": self.units,
            "capacity": self.capacity,
            "udhHex": self.udh_hex,
            "udl": self.udl,
            "userDataHex": self.user_data_hex,
        }


@dataclass(frozen=True, slots=True)
class Encoded:
    """A text encoded for one channel: its encoding, DCS and segments."""

    channel: Channel
    encoding: Encoding
    dcs: int
    units: int  # total units of the text
    segments: tuple[Segment, ...]
    fits: bool  # USSD: within one screen; SMS/flash: within MAX_SEGMENTS

    @property
    def remaining(self) -> int:
        """Units still free in the last segment (negative when a USSD string overflows)."""
        last = self.segments[-1]
        return last.capacity - last.units

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "encoding": self.encoding,
            "dcs": self.dcs,
            "dcsHex": f"{self.dcs:02X}",
            "units": self.units,
            "segmentCount": len(self.segments),
            "remaining": self.remaining,
            "segments": [s.to_json() for s in self.segments],
        }


def default_reference(text: str) -> int:
    """A deterministic 8-bit concatenation reference (gateways may substitute their own)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) & 0xFF


def encode(text: str, channel: Channel = "sms", reference: int | None = None) -> Encoded:
    """Encode and (for SMS / flash) segment `text`."""
    if channel == "ussd":
        return _encode_ussd(text)
    enc = encoding_of(text)
    dcs = DCS[(channel, enc)]
    if enc == "GSM-7":
        sept = text.translate(_TO_SEPTETS)
        total = len(sept)
        if total <= 160:
            packed = pack_septets(sept)
            seg = Segment(1, text, total, 160, "", total, packed.hex().upper())
            return Encoded(channel, enc, dcs, total, (seg,), True)
        chunks = _split_septets(sept)
        texts = _texts_by_septets(text, chunks)
    else:
        raw = text.encode("utf-16-be", "surrogatepass")
        total = len(raw) >> 1
        if total <= 70:
            seg = Segment(1, text, total, 70, "", len(raw), raw.hex().upper())
            return Encoded(channel, enc, dcs, total, (seg,), True)
        chunks_b = _split_utf16(raw)
        texts = [c.decode("utf-16-be", "surrogatepass") for c in chunks_b]
    ref = default_reference(text) if reference is None else reference & 0xFF
    count = len(texts)
    segs = []
    for i, part in enumerate(texts, 1):
        udh = bytes((5, 0, 3, ref, min(count, 255), min(i, 255)))
        if enc == "GSM-7":
            ps = chunks[i - 1]
            n = len(ps)
            ud = udh + pack_septets(ps, 1)
            segs.append(Segment(i, part, n, 153, udh.hex().upper(), UDH_SEPTETS + n, ud.hex().upper()))
        else:
            body = chunks_b[i - 1]
            ud = udh + body
            segs.append(Segment(i, part, len(body) >> 1, 67, udh.hex().upper(), len(ud), ud.hex().upper()))
    return Encoded(channel, enc, dcs, total, tuple(segs), count <= MAX_SEGMENTS)


def _split_septets(sept: str) -> list[str]:
    out = []
    start, n = 0, len(sept)
    while start < n:
        chunk = sept[start : start + 153]
        if chunk[-1] == ESC:  # never end between ESC and its character
            chunk = chunk[:-1]
        out.append(chunk)
        start += len(chunk)
    return out


def _texts_by_septets(text: str, chunks: list[str]) -> list[str]:
    out, pos = [], 0
    for c in chunks:
        chars = len(c) - c.count(ESC)
        out.append(text[pos : pos + chars])
        pos += chars
    return out


def _split_utf16(raw: bytes) -> list[bytes]:
    out = []
    start, n = 0, len(raw)
    while start < n:
        end = min(start + 134, n)
        if end < n and 0xD8 <= raw[end - 2] <= 0xDB:  # keep a surrogate pair together
            end -= 2
        out.append(raw[start:end])
        start = end
    return out


def _encode_ussd(text: str) -> Encoded:
    enc = encoding_of(text)
    limit = USSD_MAX[enc]
    if enc == "GSM-7":
        sept = text.translate(_TO_SEPTETS)
        n = len(sept)
        padded = sept
        if n % 8 == 7 or (n % 8 == 0 and sept.endswith("\r")):
            # §6.1.2.3.1: 7 spare bits are filled with CR, not zeros that would read as '@';
            # a wanted final CR on an octet boundary gets a second CR.
            padded = sept + "\r"
        ud = pack_septets(padded)
        seg = Segment(1, text, n, limit, "", len(padded), ud.hex().upper())
    else:
        raw = text.encode("utf-16-be", "surrogatepass")
        n = len(raw) >> 1
        seg = Segment(1, text, n, limit, "", len(raw), raw.hex().upper())
    return Encoded("ussd", enc, DCS[("ussd", enc)], n, (seg,), n <= limit)


def capacity(channel: Channel, encoding: Encoding, segments: int = 1) -> int:
    """Units a message may cost to fit in `segments` SMS (or one USSD screen).

    For more than one segment this is the nominal 153/67 per segment; a text may need one unit
    less per boundary when a pair would straddle it (use `encode` to know exactly)."""
    if channel == "ussd":
        return USSD_MAX[encoding]
    if segments <= 1:
        return SMS_SINGLE[encoding]
    return SMS_CONCAT[encoding] * segments
