"""The group commit's statements, without a server: for a fixed mix of writes, the text and the
arguments sent to PostgreSQL (the one statement, and the statement per kind of write a flush
takes in a transaction) are those recorded in group_commit_statements.json. Statement shapes
are prepared once per connection and chosen to use the indexes, so a change in how writes are
gathered must not change what goes on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from delivery.pgbatch import Batch
from delivery.rows.attempts import InsertAttempt, MessageId, Receipt, UpdateAttempt
from delivery.rows.calls import AcceptCall, AskPhases, RenewLease, UpdateDelivery
from delivery.rows.events import InboxEvent
from delivery.rows.ledger import RecordCharge, Refund

NOW = 1_790_000_000.0
DAY = "2026-09-21"  # NOW's China day: each row's partition, written by every insert
RECORDED = Path(__file__).with_name("group_commit_statements.json")


def accept_row(did: str, call: str, owner: str = "w1") -> AcceptCall:
    return AcceptCall(
        call_id=call,
        phase="ringing",
        event_at=NOW,
        day=DAY,
        id=did,
        enterprise="ent",
        line="10086",
        recipient="13800138000",
        card="card",
        template="tpl",
        kind="notice",
        data="{}",
        chain='["sms"]',
        step=0,
        state="active",
        reason="",
        channel="",
        created=NOW,
        updated=NOW,
        owner=owner,
        lease_until=NOW + 15,
    )


def every_kind() -> Batch:
    """One write of every kind, none touching a row another writes: one statement."""
    b = Batch()
    b.add(accept_row("d2", "c2"), None)
    b.add(accept_row("d1", "c1"), None)
    b.add(accept_row("d1", "c1"), None)  # a repeat in the same flush
    b.add(InsertAttempt(2, "d1", 0, "sms", "sending", 1, 0, NOW, NOW + 60, None, "", DAY))
    b.add(UpdateAttempt(2, {"units": 1, "state": "submitted", "detail": "m1"}, DAY))  # folded in
    b.add(RecordCharge("d1#0", "ent", None, "10086", "sms", 1, 0, 0.05, "2026-09-21", NOW))
    b.add(MessageId("m2", 2, DAY))
    b.add(MessageId("m1", 2, DAY))
    b.add(Receipt("m9", "DELIVRD", NOW + 1, "8613800138000", DAY))
    b.add(Receipt("m1", "DELIVRD", NOW + 1, "8613800138000", DAY))
    b.add(UpdateDelivery("d0", {"state": "delivered", "channel": "sms", "updated": NOW + 2}, DAY))
    b.add(UpdateDelivery("d0", {"reason": "ok"}))  # merged with the one above, its day kept
    b.add(UpdateDelivery("d7", {"step": 1, "updated": NOW + 2}, "2026-09-20"))  # another day's row
    b.add(UpdateDelivery("d6", {"step": 1, "updated": NOW + 2}))  # its day not known: every partition
    b.add(UpdateAttempt(1, {"state": "delivered", "done": NOW + 2}, DAY))
    b.add(Refund("d5#0"))  # its day not known: every partition
    b.add(Refund("d4#0", ("2026-09-21", "2026-09-21")))  # its charge's day
    b.add(RenewLease("d9", "w1", NOW + 30), None)
    b.add(RenewLease("d9", "w1", NOW + 20), None)  # the later lease wins
    b.add(RenewLease("d8", "w1", NOW + 30), None)
    b.add(AskPhases("c0"), None)
    b.add(AskPhases("c2"), None)
    b.add(InboxEvent("d1", 0, "sent", "", "sms", "", "", NOW + 1, DAY))  # the event stream's inbox
    b.add(InboxEvent("d0", 0, "delivered", "", "sms", "smsc", "", NOW + 2, DAY))
    return b


def touching_twice() -> Batch:
    """Writes to rows the same flush inserts: a statement per kind, in a transaction."""
    b = every_kind()
    b.add(UpdateDelivery("d1", {"state": "failed", "updated": NOW}))
    b.add(Refund("d1#0"))
    b.add(UpdateDelivery("d9", {"state": "expired", "updated": NOW}))
    b.add(RecordCharge("d1#0", "ent", "p", "10086", "sms", 1, 0, 0.05, "2026-09-21", NOW))  # again
    return b


def as_json(value: Any) -> Any:
    return value if isinstance(value, str) else list(value)


def wire(b: Batch) -> dict[str, Any]:
    """What the batch sends, as JSON would keep it (arrays as lists). The ids of refunds and of
    finished deliveries are a set's, in no set order: sorted here. An update's day is one value
    (a constant of its statement), not an array."""
    parts = [
        [
            name,
            text,
            [sorted(c) if name in ("ref", "fin") and not isinstance(c, str) else as_json(c) for c in values],
        ]
        for name, text, values in b._parts()
    ]
    sent: dict[str, Any] = {"statements": b.statements(), "parts": parts, "size": b.size}
    if b.statements() == 1:
        sql, args = b.statement()
        sent["statement"] = [sql, [as_json(a) for a in args]]
    return sent


def recorded() -> dict[str, Any]:
    kinds = {"every_kind": every_kind(), "touching_twice": touching_twice()}
    for b in kinds.values():
        b.clock = lambda: NOW  # the leases' lengths (their ends less now) are then fixed
    return {name: wire(b) for name, b in kinds.items()}


def test_the_statements_are_those_recorded() -> None:
    assert json.loads(json.dumps(recorded())) == json.loads(RECORDED.read_text("utf-8"))


if __name__ == "__main__":  # records them anew (after a deliberate change of a statement)
    RECORDED.write_text(json.dumps(recorded(), indent=1, ensure_ascii=False) + "\n", "utf-8")
