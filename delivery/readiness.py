"""Whether a card version can go out, one answer per way it can go out: `ready`, `waiting` (for
whom, since when), `refused` (by whom, why), `expired` (no longer the version sent), or
`unconfigured` (the server or the enterprise has no such channel).

Two approvers decide. The operator reviews the version itself (reviews.py): until it is approved
nothing of it is sent, on any channel. Each carrier reviews the files a 5G card names
(chatbot/approval.py): a waiting or refused file keeps the card off 5G on that carrier, and the
chain goes on to USSD, flash and SMS. The delivery chain asks the same questions as it goes (it
only ever sends the approved version, and the 5G send refuses unapproved files), so what this
module says is what the next call does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.approval import NotApproved

# The carrier's verdict on a 5G body: None when every file it names is approved.
CarrierCheck = Callable[[], Awaitable["NotApproved | None"]]
# A carrier's refusal of this version after it was sent (refusals.py): its document, or None.
CarrierRefusal = Callable[[], Awaitable["dict[str, Any] | None"]]
# The card-SMS template's review per vendor (cardsms_readiness below, from its document)
CardSmsCheck = Callable[[], Awaitable["Readiness"]]
STATES = ("ready", "waiting", "refused", "expired", "unconfigured")
GONE = {"superseded": "a later version was approved", "replaced": "a later edit replaced it",
        "withdrawn": "the card was deleted"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Readiness:
    channel: str
    state: str  # one of STATES
    by: str = ""  # who it waits for or who refused: "operator", or "carrier:<platform>"
    why: str = ""
    since: float | None = None
    vendors: list[dict[str, Any]] | None = None  # card SMS: each vendor's review of the template

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.vendors is None:
            del out["vendors"]
        return out


def cardsms_readiness(doc: dict[str, Any] | None, vendors: list[dict[str, Any]]) -> Readiness:
    """Card SMS goes out to the phones of every vendor that approved its template: ready when one
    did, refused when all did refuse, else waiting for the vendors (or for its submission)."""
    if doc is None:
        return Readiness(
            "cardsms", "waiting", "vendors", "not registered with the vendors yet", None, vendors
        )
    if doc.get("state") == "error":
        return Readiness("cardsms", "waiting", "vendors", f"not submitted: {doc.get('why', '')}",
                         doc.get("submitted_at"), vendors)  # fmt: skip
    states = [v["state"] for v in vendors]
    refused = "; ".join(f"{v['vendor']}: {v['why']}" for v in vendors if v["state"] == "refused")
    if "approved" in states:
        return Readiness("cardsms", "ready", "", refused, doc.get("submitted_at"), vendors)
    if states and all(s == "refused" for s in states):
        return Readiness("cardsms", "refused", "vendors", refused, doc.get("submitted_at"), vendors)
    return Readiness("cardsms", "waiting", "vendors", "the vendors are reviewing the template",
                     doc.get("submitted_at"), vendors)  # fmt: skip


def of_version(version: dict[str, Any], chain: list[str]) -> list[Readiness] | None:
    """What the operator's review says for every channel; None when the version is the approved
    one and each channel's own conditions decide."""
    state = version.get("state", "approved")
    if state == "approved":
        return None
    if state == "pending":
        said = ("waiting", "the operator has not reviewed this version yet", version.get("made_at"))
    elif state == "refused":
        said = ("refused", version.get("note", ""), version.get("decided_at"))
    else:
        said = ("expired", GONE.get(state, state), version.get("decided_at"))
    return [Readiness(ch, said[0], "operator", said[1], said[2]) for ch in chain]


async def readiness(
    version: dict[str, Any],
    chain: list[str],
    configured: set[str],
    chatbot: str,
    carrier: CarrierCheck | None,
    refusal: CarrierRefusal | None = None,
    cardsms: CardSmsCheck | None = None,
) -> list[Readiness]:
    """One answer per channel of the enterprise's chain for this version; `carrier` checks the
    5G body's files on the chatbot's platform (None: no MaaP hosts media), `refusal` whether the
    carrier refused the card itself after a send."""
    reviewed = of_version(version, chain)
    if reviewed is not None:
        return reviewed
    out: list[Readiness] = []
    for ch in chain:
        if ch not in configured:
            out.append(Readiness(ch, "unconfigured", "", f"channel {ch} not configured"))
        elif ch == "cardsms" and cardsms is not None:
            out.append(await cardsms())
        elif ch == "rcs" and not chatbot:
            out.append(Readiness(ch, "unconfigured", "", "the enterprise has no chatbot for 5G messages"))
        elif ch == "rcs" and refusal is not None and (doc := await refusal()) is not None:
            out.append(Readiness(ch, "refused", f"carrier:{doc['carrier']}", doc.get("description", ""),
                                 doc.get("at")))  # fmt: skip
        elif ch == "rcs" and carrier is not None and (refused := await carrier()) is not None:
            state = refused.state if refused.state in STATES else "waiting"  # "unsubmitted": not yet asked
            why = refused.what + (f": {refused.description}" if refused.description else "")
            out.append(Readiness(ch, state, f"carrier:{refused.platform}", why))
        else:
            out.append(Readiness(ch, "ready"))
    return out
