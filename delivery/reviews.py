"""Card versions and the operator's review: nothing an enterprise shows goes out before the
operator approved it.

What is reviewed is a card's design and fixed content: its template, data, media, class, phase
and the lines or group it targets. Staff data (a person's name, title, number on a staff card) is
data, not a version: the person's details fill the approved design.

Every create or change of a card is a new version. It waits (`pending`) unless it is approved on
creation: made by the operator (the reviewer made it), or a `notification` card of an enterprise
the operator trusts for those. Meanwhile the version approved before is the one sent: the stored
`card` document is always the approved version's content (with its `version`), so the path of a
call event reads nothing new. A refused version is never sent; a newer edit of a card whose
version still waits replaces it in the queue (`replaced`).

Documents kept (kinds of the store's documents, all written in one transaction per change):
- `card`: what is sent, the approved version's content and its `version`;
- `card_version`: every version, id `<card>#<number, five digits>` (a card's versions are
  contiguous in id order: no id character sorts before `#`);
- `card_review`: one summary per card (its latest version, the approved one, the last decision);
- `card_pending`: the operator's queue, one entry per card whose latest version waits.
A card stored before versions existed is its approved version 1.
"""

from __future__ import annotations

import time
from typing import Any

from .storage import ReviewStore

CLASSES = ("notification", "marketing")  # 通知 / 营销: marketing cards are always reviewed
VERSION, REVIEW, PENDING = "card_version", "card_review", "card_pending"
SERVER_KEPT = ("version", "review")  # a card's fields the server keeps: ignored in what is sent
DECISIONS = {"approve": "approved", "refuse": "refused"}
MAX_VERSIONS = 10_000  # versions of one card read back at most (far past any real history)


class NotPending(Exception):
    """The version decided on does not wait for a decision (decided already, or replaced)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def version_id(card: str, n: int) -> str:
    return f"{card}#{n:05d}"


DEFAULTS = {"class": "notification", "kind": "identity"}  # what a card without these fields is


def same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two cards have the same reviewed content (a field left out is its default)."""
    return a is not None and b is not None and normal(a) == normal(b)


def normal(body: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **content(body)}


def content(body: dict[str, Any]) -> dict[str, Any]:
    """A card's reviewed content: the body without the fields the server keeps."""
    return {k: v for k, v in body.items() if k not in SERVER_KEPT}


def card_class(body: dict[str, Any]) -> str:
    return str(body.get("class") or "notification")


def approved_on_creation(enterprise: dict[str, Any], body: dict[str, Any], by_operator: bool) -> str:
    """Who approves a new version as it is made ("" : nobody, it waits for the operator)."""
    if by_operator:
        return "operator"
    if card_class(body) == "notification" and enterprise.get("notification_trusted"):
        return "trusted"
    return ""


async def versions(store: ReviewStore, enterprise: str, card: str) -> list[dict[str, Any]]:
    """Every version of a card, oldest first."""
    out: list[dict[str, Any]] = []
    after = f"{card}#"
    while len(out) < MAX_VERSIONS:
        page = await store.after(VERSION, enterprise, after, 200)
        mine = [v for v in page if v.get("card") == card]
        out += mine
        if len(mine) < len(page) or len(page) < 200:
            break
        after = version_id(card, mine[-1]["version"])
    return out


async def review_of(store: ReviewStore, enterprise: str, card: str) -> dict[str, Any] | None:
    """The card's summary; a card from before versions, its approved version 1."""
    summary = await store.get(REVIEW, enterprise, card)
    if summary is not None:
        return summary
    doc = await store.get("card", enterprise, card)
    if doc is None:
        return None
    return {"card": card, "latest": 1, "approved": int(doc.get("version", 1)), "state": "approved"}


async def version_body(
    store: ReviewStore, enterprise: str, card: str, n: int | None = None
) -> dict[str, Any] | None:
    """A version's content (the latest one when `n` is None), or None."""
    summary = await review_of(store, enterprise, card)
    if summary is None:
        return None
    n = int(summary["latest"]) if n is None else n
    version = await store.get(VERSION, enterprise, version_id(card, n))
    if version is not None:
        return dict(version["body"])
    doc = await store.get("card", enterprise, card)  # a card from before versions: version 1
    return content(doc) if doc is not None and int(doc.get("version", 1)) == n else None


async def submit(
    store: ReviewStore,
    enterprise: dict[str, Any],
    body: dict[str, Any],
    who: str,
    by_operator: bool,
) -> dict[str, Any]:
    """Record a new version of a card (inside the caller's transaction); approved at once, or
    queued for the operator. Returns the version."""
    eid, card, now = enterprise["id"], body["id"], time.time()
    summary = await review_of(store, eid, card)
    approver = approved_on_creation(enterprise, body, by_operator)
    # The same content again is no new version (nor a new review), unless it is now approved as
    # made where the latest version was not (the operator saving a waiting version as it is).
    unchanged = not approver or (summary or {}).get("state") == "approved"
    if summary is not None and unchanged and same(await version_body(store, eid, card), body):
        latest = await store.get(VERSION, eid, version_id(card, int(summary["latest"])))
        return latest or {"card": card, "version": int(summary["latest"]), "state": summary["state"]}
    if summary is not None and summary.get("state") == "approved" and not await store.get(REVIEW, eid, card):
        await _record_first(store, eid, card)  # a card from before versions: its version 1 first
    if summary:
        n = int(summary["latest"]) + 1
    else:  # a new card; one deleted before keeps its history, so numbering goes on after it
        earlier = await versions(store, eid, card)
        n = int(earlier[-1]["version"]) + 1 if earlier else 1
    version: dict[str, Any] = {
        "card": card,
        "version": n,
        "class": card_class(body),
        "state": "approved" if approver else "pending",
        "body": content(body),
        "made_by": who,
        "made_at": now,
    }
    if approver:
        version |= {"decided_by": who if approver == "operator" else "trusted", "decided_at": now, "note": ""}
    if summary and summary.get("state") == "pending":  # the edit it replaces never goes out
        await _set_state(store, eid, card, int(summary["latest"]), "replaced", who, now, "")
    await store.put(VERSION, eid, version_id(card, n), version)
    if approver:
        await _approve(store, eid, card, n, version["body"], summary)
        await store.delete(PENDING, eid, card)
    else:
        await store.put(PENDING, eid, card, {"card": card, "version": n, "class": version["class"],
                                             "made_by": who, "made_at": now})  # fmt: skip
    await store.put(REVIEW, eid, card, {
        "card": card,
        "latest": n,
        "approved": n if approver else (summary or {}).get("approved"),
        "state": version["state"],
        "class": version["class"],
        "made_by": who,
        "made_at": now,
        **({"decided_by": version["decided_by"], "decided_at": now, "note": ""} if approver else {}),
    })  # fmt: skip
    return version


async def decide(
    store: ReviewStore, enterprise: str, card: str, n: int, decision: str, note: str, who: str
) -> dict[str, Any]:
    """The operator's decision on a pending version (inside the caller's transaction). Raises
    NotPending, changing nothing, if it no longer waits; of two operators deciding at once, one
    decides and the other hears NotPending (the queue entry is the claim)."""
    now = time.time()
    version = await store.get(VERSION, enterprise, version_id(card, n))
    if version is None:
        raise KeyError(card)
    pending = await store.get(PENDING, enterprise, card)
    if version["state"] != "pending" or pending is None or pending.get("version") != n:
        raise NotPending(version["state"])
    if not await store.delete(PENDING, enterprise, card):  # another decision took it first
        raise NotPending("decided")
    state = DECISIONS[decision]
    await _set_state(store, enterprise, card, n, state, who, now, note)
    summary = await review_of(store, enterprise, card) or {}
    if state == "approved":
        await _approve(store, enterprise, card, n, version["body"], summary)
    await store.put(REVIEW, enterprise, card, {
        **summary,
        "latest": n,
        "approved": n if state == "approved" else summary.get("approved"),
        "state": state,
        "decided_by": who,
        "decided_at": now,
        "note": note,
    })  # fmt: skip
    return {**version, "state": state, "decided_by": who, "decided_at": now, "note": note}


async def withdraw(store: ReviewStore, enterprise: str, card: str) -> None:
    """A deleted card leaves the queue; its versions stay as history."""
    await store.delete(PENDING, enterprise, card)
    summary = await store.get(REVIEW, enterprise, card)
    if summary is not None and summary.get("state") == "pending":
        await _set_state(store, enterprise, card, int(summary["latest"]), "withdrawn", "", time.time(), "")
    await store.delete(REVIEW, enterprise, card)


async def reinstate(store: ReviewStore, eid: str, card: str, n: int) -> bool:
    """An earlier approved version (an experiment's winner) becomes what is sent again, inside
    the caller's transaction; False if `n` never went through review."""
    version = await store.get(VERSION, eid, version_id(card, n))
    summary = await review_of(store, eid, card)
    if summary is None or int(summary.get("approved") or 0) == n:
        return summary is not None
    if version is None or version.get("state") not in ("approved", "superseded"):
        return False
    await _approve(store, eid, card, n, version["body"], summary)
    await store.put(VERSION, eid, version_id(card, n), {**version, "state": "approved"})
    if await store.get(REVIEW, eid, card) is not None:
        await store.put(REVIEW, eid, card, {**summary, "approved": n})
    return True


async def _approve(
    store: ReviewStore, eid: str, card: str, n: int, body: dict[str, Any], summary: dict[str, Any] | None
) -> None:
    """Version `n` becomes what is sent; the one approved before it is superseded."""
    before = (summary or {}).get("approved")
    if before and before != n:
        old = await store.get(VERSION, eid, version_id(card, int(before)))
        if old is not None and old["state"] == "approved":
            await store.put(VERSION, eid, version_id(card, int(before)), {**old, "state": "superseded"})
    await store.put("card", eid, card, {**body, "version": n})


async def _set_state(
    store: ReviewStore, eid: str, card: str, n: int, state: str, who: str, now: float, note: str
) -> None:
    old = await store.get(VERSION, eid, version_id(card, n))
    if old is not None:
        extra = {"decided_by": who, "decided_at": now, "note": note} if who else {}
        await store.put(VERSION, eid, version_id(card, n), {**old, "state": state, **extra})


async def _record_first(store: ReviewStore, eid: str, card: str) -> None:
    """The card as stored before versions existed, as its approved version 1."""
    doc = await store.get("card", eid, card)
    if doc is None or await store.get(VERSION, eid, version_id(card, 1)) is not None:
        return
    await store.put(VERSION, eid, version_id(card, 1), {
        "card": card, "version": 1, "class": card_class(doc), "state": "approved", "body": content(doc),
        "made_by": "", "made_at": 0.0, "decided_by": "", "decided_at": 0.0, "note": "",
    })  # fmt: skip
    await store.put("card", eid, card, {**content(doc), "version": 1})


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """What a version changes against another (the approved one), field by field: JSON paths
    with the value before and after (None where there was none), in path order."""
    old, new = (_flat(normal(before)) if before else {}), _flat(normal(after))
    return [
        {"path": path, "before": old.get(path), "after": new.get(path)}
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    ]


def _flat(value: Any, path: str = "$") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= _flat(v, f"{path}.{k}")
        return out
    return {path: value}
