"""SMPP delivery receipts (SMPP 3.4 Appendix B): parsed from a deliver_sm, and written by the
gateway simulator (simulators/smsc.py) in the same format an SMSC uses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .smpp_pdu import ESM_RECEIPT, FAILED_STATS, TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID, ShortMessage

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
