"""The delivery's own records: one `Delivery` per call event and phase, one `Attempt` per channel
tried, as stored (store.py) and as the API shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra import jsonio

# A report's outcome of an attempt: its state, except that a card taken back counts as revoked.
OUTCOME = "CASE WHEN a.revoke IN ('requested', 'revoked') THEN 'revoked' ELSE a.state END"
FINAL = frozenset({"delivered", "displayed", "failed", "dropped", "blocked", "skipped"})

# A media library row (the store's `media` table), in column order.
MEDIA_FIELDS = ("id", "kind", "ext", "content_type", "bytes", "width", "height", "seconds", "name", "created")
MEDIA_COLUMNS = ", ".join(MEDIA_FIELDS)


@dataclass(slots=True)
class Delivery:
    id: str
    call_id: str
    phase: str
    enterprise: str
    line: str
    recipient: str
    card: str
    template: str
    kind: str
    data: dict[str, Any]
    chain: list[str]
    step: int
    state: str
    reason: str
    channel: str
    event_at: float
    created: float
    updated: float
    # Its China day, the partition of its rows on PostgreSQL (migration 0014): the day of the
    # call event's own time, so every retry of the event names the same day (docs/scaling.md).
    day: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "phase": self.phase,
            "enterprise": self.enterprise,
            "line": self.line,
            "recipient": self.recipient,
            "card": self.card,
            "template": self.template,
            "kind": self.kind,
            "chain": self.chain,
            "step": self.step,
            "state": self.state,
            "reason": self.reason,
            "channel": self.channel,
            "created": self.created,
            "updated": self.updated,
        }


@dataclass(slots=True)
class Attempt:
    id: int
    delivery: str
    step: int
    channel: str
    state: str  # sending | submitted | delivered | failed | timeout | error | unknown | refused
    segments: int
    units: int
    started: float
    deadline: float
    done: float | None
    detail: str
    revoke: str = ""  # a 5G card taken back: requested | revoked | failed | refused ("" : not)
    day: str = ""  # its delivery's day (its partition on PostgreSQL)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": self.step,
            "channel": self.channel,
            "state": self.state,
            "segments": self.segments,
            "units": self.units,
            "started": self.started,
            "deadline": self.deadline,
            "done": self.done,
            "detail": self.detail,
            "revoke": self.revoke,
        }


def delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    r = list(row)
    r[9] = jsonio.loads(r[9])
    r[10] = jsonio.loads(r[10])
    return Delivery(*r)


def attempt_stats(rows: Any) -> list[dict[str, Any]]:
    """Report rows (day, channel, outcome, attempts, mean seconds) from either store's query."""
    return [
        {
            "day": r[0],
            "channel": r[1],
            "outcome": r[2],
            "attempts": r[3],
            "mean_seconds": round(r[4], 3) if r[4] is not None else None,
        }
        for r in rows
    ]
