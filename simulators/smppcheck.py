"""Every PDU an ESME sends, read by a codec nobody here wrote (PyPI `smpplib`), and every
submit_sm's addresses read as a Chinese carrier's SMSC reads them.

The gateway simulator shares our own codec (delivery/gateways/smpp_pdu.py), so a mistake made
the same way on both sides would pass unseen; this module is the second opinion. `problems()`
answers what is wrong with one PDU, in words: the independent parser refused it, a field decodes
differently than ours says, or an address is numbered so that the SMSC would route it elsewhere
(national digits with TON 1 are read as a foreign number: the bug this guards against).

The SMSC's reading (home country 86):
- TON 1 / NPI 1: digits with the country code, here `86` and a valid national number;
- TON 2 / NPI 1: a national number (11-digit mobile, fixed line without the trunk 0, 400/800);
- TON 3 or 0 / NPI 0: a service code (95555, 10086, 106…), never a subscriber's number;
- TON 5 / NPI 0: an alphanumeric sender (at most 11 characters, with a letter);
anything else is misnumbered.
"""

from __future__ import annotations

import re
from typing import Any

from smpplib import smpp as smpplib_smpp

HOME = "86"
_NATIONAL = re.compile(r"^(1[3-9][0-9]{9}|[48]00[0-9]{7}|10[0-9]{8}|[2-9][0-9]{8,10})$")
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_SERVICE = re.compile(r"^(9[0-9]{2,5}|1[0-2][0-9]{1,4}|106[0-9]{2,17})$")
_ALNUM = re.compile(r"^[A-Za-z0-9 ._-]*[A-Za-z][A-Za-z0-9 ._-]*$")


def decode(raw: bytes) -> Any:
    """The PDU as smpplib parses it (raises on what it cannot parse)."""
    return smpplib_smpp.parse_pdu(raw, sequence=0)


def reading(ton: int, npi: int, digits: str) -> str:
    """What the SMSC routes to: `+86…` (a subscriber), `service:95555`, `alnum:Name`; or raises
    ValueError saying why the address is misnumbered."""
    if ton == 1 and npi == 1:
        if digits.startswith(HOME) and _NATIONAL.match(digits[len(HOME) :]):
            return "+" + digits
        raise ValueError(f"TON 1 (international) {digits!r} is not +{HOME} and a national number")
    if ton == 2 and npi == 1:
        if _NATIONAL.match(digits):
            return "+" + HOME + digits
        raise ValueError(f"TON 2 (national) {digits!r} is not a national number")
    if ton in (0, 3) and npi == 0:
        if _SERVICE.match(digits) and not _MOBILE.match(digits):
            return "service:" + digits
        raise ValueError(f"TON {ton} / NPI 0 {digits!r} is not a service code")
    if ton == 5 and npi == 0:
        if len(digits) <= 11 and _ALNUM.match(digits):
            return "alnum:" + digits
        raise ValueError(f"TON 5 (alphanumeric) {digits!r} is not a name of at most 11 characters")
    raise ValueError(f"TON {ton} / NPI {npi} with {digits!r} is not how this SMSC numbers anything")


def problems(raw: bytes, ours: Any = None) -> list[str]:
    """What is wrong with one PDU from an ESME (empty: nothing). `ours`: our codec's decoding
    of a submit_sm (a ShortMessage), compared field by field with smpplib's."""
    try:
        p = decode(raw)
    except Exception as exc:  # smpplib raises its own and builtin errors alike
        return [f"smpplib cannot parse the PDU: {type(exc).__name__}: {exc}"]
    if p is None:
        return [f"smpplib does not know command 0x{int.from_bytes(raw[4:8], 'big'):08X}"]
    if p.command != "submit_sm":
        return []
    out: list[str] = []
    src, dst = p.source_addr.decode("latin-1"), p.destination_addr.decode("latin-1")
    for what, ton, npi, digits in (
        ("source_addr", p.source_addr_ton, p.source_addr_npi, src),
        ("destination_addr", p.dest_addr_ton, p.dest_addr_npi, dst),
    ):
        if what == "source_addr" and (ton, npi, digits) == (0, 0, ""):
            continue  # SMPP 3.4 §5.2.8: unknown, the SMSC fills in the account's default
        try:
            reading(ton, npi, digits)
        except ValueError as exc:
            out.append(f"{what}: {exc}")
    if dst and not (p.dest_addr_ton in (1, 2) and p.dest_addr_npi == 1):
        out.append(f"destination_addr {dst!r} is not a subscriber's number (TON {p.dest_addr_ton})")
    if ours is not None:
        mine = (ours.source, ours.source_ton, ours.source_npi, ours.destination, ours.dest_ton, ours.dest_npi)
        theirs = (src, p.source_addr_ton, p.source_addr_npi, dst, p.dest_addr_ton, p.dest_addr_npi)
        if mine != theirs:
            out.append(f"our codec reads {mine}, smpplib reads {theirs}")
        body = p.short_message or p.message_payload or b""
        if (ours.data_coding, ours.esm_class, bytes(ours.short_message)) != (
            p.data_coding,
            p.esm_class,
            body,
        ):
            out.append("our codec and smpplib disagree on data_coding, esm_class or the message")
    return out
