"""What the delivery domain keeps: the store's roles, one protocol per aggregate (delivery/rows/).

A consumer names the roles it uses (the receipts need attempts and receipts, the media library
its rows), so what it depends on is plain, and a test double implements only that. The store
(store.py) plays every role, on either database; open_store.py picks it from the settings.

Every method is a coroutine. `tx()` is an all-or-nothing block; nothing inside it may wait on
I/O other than the store's own (on SQLite it runs without yielding; on PostgreSQL it holds one
connection). `durable()` returns once everything written so far would survive a crash: what the
202 of a call event, a submit and a deliver_sm_resp wait for. Both databases group-commit: the
writes of concurrent call events share commits (groupcommit.py; pgbatch.py and pgflush.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from .metering.ledger import LedgerEntry
from .metering.packages import Charge
from .records import Attempt, Delivery
from .rows.console import Page, SessionRow
from .rows.funnel import FunnelFact
from .rows.links import InsertLink, Open
from .rows.reach import LastDelivered


class Lifetime(Protocol):
    shared: bool  # several processes use it: leases decide which runs a chain (not SQLite)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def tx(self) -> AbstractAsyncContextManager[Any]: ...
    async def durable(self) -> None: ...
    async def ping(self) -> None:
        """Raise if the database does not answer (readiness), over the store's own connections."""
        ...

    async def snapshot(self) -> list[str]:
        """Every row of every table as text, sorted (tests compare two)."""
        ...


class DocumentStore(Protocol):
    """Enterprises, lines, staff, cards and packages as JSON documents; the audit log; API keys."""

    generation: int  # bumped on every configuration change: derived caches compare it

    async def put(self, kind: str, enterprise: str, id: str, body: dict[str, Any]) -> None: ...
    async def get(self, kind: str, enterprise: str, id: str) -> dict[str, Any] | None: ...
    async def put_new(self, kind: str, enterprise: str, id: str, body: dict[str, Any]) -> bool:
        """Insert unless one has the key; whether it did (concurrent inserts: one wins)."""
        ...

    async def get_for_update(self, kind: str, enterprise: str, id: str) -> dict[str, Any] | None:
        """Inside a transaction: the document from the database, held until the transaction ends."""
        ...

    async def find(self, kind: str, id: str) -> tuple[str, dict[str, Any]] | None: ...
    async def list(self, kind: str, enterprise: str | None = None) -> list[dict[str, Any]]: ...
    async def delete(self, kind: str, enterprise: str, id: str) -> bool: ...
    async def delete_enterprise(self, enterprise: str) -> None: ...
    async def claim_chatbot(self, enterprise: str, bot: str) -> bool:
        """Make `bot` (delivery.replies.bot_id of an address; "" for none) the enterprise's one
        chatbot, releasing its previous one; False, changing nothing, if another enterprise owns it."""
        ...

    async def audit(
        self, actor: str, enterprise: str, target: str, action: str, detail: dict[str, Any]
    ) -> None: ...
    async def audit_log(self, enterprise: str, limit: int = 200) -> list[dict[str, Any]]: ...
    async def add_key(self, key_hash: str, enterprise: str | None, label: str) -> None: ...
    async def key(self, key_hash: str) -> tuple[str, str | None] | None: ...


class MediaStore(Protocol):
    """The media library's rows (the files: delivery/library/)."""

    async def add_media(self, enterprise: str, row: dict[str, Any], quota: int) -> str:
        """ "added", "exists" (this enterprise has that file already: nothing changes) or
        "over_quota" (its files would pass `quota` bytes); atomic across workers."""
        ...

    async def media(self, enterprise: str, id: str) -> dict[str, Any] | None: ...
    async def media_list(self, enterprise: str) -> list[dict[str, Any]]: ...
    async def media_used(self, enterprise: str) -> int: ...
    async def media_named(self, enterprise: str, name: str) -> dict[str, Any] | None:
        """The enterprise's file of that name (a fetched photo is named by its URL)."""
        ...

    async def delete_media(self, enterprise: str, id: str) -> dict[str, Any] | None:
        """The row removed, or None."""
        ...

    async def media_users(self, id: str) -> int:
        """Rows (of any enterprise) naming the file `id`: 0 means it can go."""
        ...


class CallStore(Protocol):
    """Call events, their deliveries, and leases: which worker runs each active chain."""

    async def accept_call(self, d: Delivery, owner: str = "", lease_until: float = 0.0) -> bool:
        """Record a call event (`d.call_id`, `d.phase`, `d.event_at`) and its new delivery, leased
        to `owner` (the worker that will run its chain) until then; False, and nothing written,
        if that call id and phase were seen before. Returns once durable."""
        ...

    async def call_phases(self, call_id: str) -> set[str]: ...
    async def call_seen(self, call_id: str, phase: str, day: str) -> bool:
        """Whether that call event was accepted on `day` (a day's partition on PostgreSQL)."""
        ...

    async def delivery(self, id: str, day: str = "") -> Delivery | None:
        """By id (with its `day`, PostgreSQL reads that day's partition alone)."""
        ...

    async def deliveries_of_call(self, call_id: str) -> list[Delivery]: ...
    async def active_deliveries(self) -> list[str]: ...
    async def queue(self) -> tuple[int, int]:
        """(active deliveries, of which the current attempt waits for a receipt): for monitoring."""
        ...

    async def update_delivery(self, id: str, *, day: str = "", **fields: Any) -> None:
        """`day`: the delivery's, so PostgreSQL updates that day's partition alone."""
        ...

    # leases: which worker runs each active delivery's chain
    async def claim_chains(self, owner: str, now: float, until: float, limit: int) -> list[str]:
        """Active deliveries whose lease ran out (their worker died or let go), now `owner`'s."""
        ...

    async def renew(self, owner: str, deliveries: list[str], until: float) -> set[str]:
        """Extend `owner`'s leases; the deliveries it still holds."""
        ...

    async def release(self, owner: str, deliveries: list[str]) -> None: ...


class AttemptStore(Protocol):
    """Attempts, the message ids of their submits, and receipts."""

    async def attempt(self, delivery: str, step: int, day: str = "") -> Attempt | None: ...
    async def attempt_receipts(self, id: int, day: str = "") -> tuple[Attempt | None, int, list[str]]:
        """The attempt, its message ids' count and the receipt stats they got (one read)."""
        ...

    async def attempts(self, delivery: str, day: str = "") -> list[Attempt]: ...
    async def add_attempt(
        self,
        delivery: str,
        step: int,
        channel: str,
        segments: int,
        units: int,
        deadline: float,
        day: str = "",
    ) -> Attempt:
        """`day`: the delivery's, written with the row (its partition on PostgreSQL)."""
        ...

    async def update_attempt(self, id: int, *, day: str = "", **fields: Any) -> None: ...
    async def add_message_ids(self, attempt: int, ids: list[str], day: str = "") -> None: ...
    async def receipt(self, message_id: str, stat: str, source: str = "") -> None:
        """Store a receipt; `source` is the recipient it is about (E.164), where the gateway says."""
        ...

    async def adopt_receipts(
        self, attempt: int, recipient: str, since: float, limit: int, day: str = ""
    ) -> int:
        """Receipts about `recipient` stored since `since` that match no message id: recorded as
        `attempt`'s (at most `limit`), for an attempt whose message ids a crash lost. How many."""
        ...

    async def attempt_of_message(self, message_id: str) -> tuple[int, str] | None:
        """The attempt a message id was given to, and the attempt's day."""
        ...

    async def waiting_attempts_of(self, message_ids: list[str]) -> list[int]:
        """The attempts of these message ids that still wait for a receipt."""
        ...


class ReachStore(Protocol):
    """Opt-outs, taps, impressions, replies already counted, delivery reports."""

    async def opt_out(self, enterprise: str, number: str, channel: str, text: str) -> None: ...
    async def opted_out(self, enterprise: str, number: str) -> bool: ...
    async def optouts(self, enterprise: str) -> list[dict[str, Any]]: ...
    async def active_for(self, enterprise: str, recipient: str) -> list[str]: ...
    async def last_delivered(
        self, enterprise: str | Sequence[str], recipient: str, kind: str | None
    ) -> LastDelivered | None: ...
    async def first_reply(self, key: str, now: float, keep: float = 7 * 86400) -> bool: ...
    async def count_tap(self, enterprise: str, card: str, button: str, day: str) -> None: ...
    async def taps(self, enterprise: str) -> list[dict[str, Any]]: ...
    async def count_impression(self, enterprise: str, card: str, day: str, taps: int = 0) -> None: ...
    async def impressions(self, enterprise: str) -> list[dict[str, Any]]: ...
    async def delivery_stats(self, enterprise: str) -> list[dict[str, Any]]: ...


class LedgerStore(Protocol):
    """The metering ledger."""

    async def record_charge(self, key: str, charge: Charge, e: LedgerEntry) -> None: ...
    async def mark_refunded(self, key: str, at: float = 0.0) -> None:
        """`at`: when the charge was taken (its ledger row's day on PostgreSQL; 0: not known)."""
        ...

    async def usage(self, enterprise: str, by: tuple[str, ...]) -> list[dict[str, Any]]: ...
    async def package_totals(self) -> list[tuple[str, str, int, int]]: ...
    async def durable(self) -> None: ...


class ConsoleStore(Protocol):
    """Paged lists, bulk writes, keys held, sign-in sessions."""

    async def page(
        self,
        kind: str,
        enterprise: str | None,
        q: str = "",
        limit: int = 50,
        offset: int = 0,
        unverified: bool = False,
    ) -> Page: ...
    async def after(self, kind: str, enterprise: str, after: str, limit: int) -> list[dict[str, Any]]:
        """The enterprise's next `limit` documents in id order after id `after` ("" first)."""
        ...

    async def put_many(self, kind: str, enterprise: str, items: list[tuple[str, dict[str, Any]]]) -> None: ...
    async def keys_of(self, enterprise: str) -> list[dict[str, Any]]: ...
    async def drop_key(self, enterprise: str, short: str) -> bool: ...
    async def add_session(
        self, hash: str, key_hash: str, enterprise: str | None, csrf: str, expires: float
    ) -> None: ...
    async def session(self, hash: str) -> SessionRow | None: ...
    async def drop_session(self, hash: str) -> None: ...


class LinkStore(Protocol):
    """Short links and their opens (shortlinks.py)."""

    async def add_link(self, link: InsertLink) -> None:
        """Write a link; inside a `tx()` it commits with the block's other writes."""
        ...

    async def link(self, code: str) -> Sequence[Any] | None:
        """The link's row (rows/links.py LINK_COLUMNS), or None."""
        ...

    async def add_opens(self, opens: Sequence[Open]) -> list[tuple[str, bool]]:
        """Write opens, durably; (id, first open of its link) for each one written now."""
        ...

    async def link_opens(self, code: str, limit: int = 1000) -> list[dict[str, Any]]: ...


class FunnelStore(Protocol):
    """The delivery funnel's facts and daily counters (funnel.py, rows/funnel.py)."""

    async def durable(self) -> None: ...

    async def funnel_fact(self, fact: FunnelFact) -> bool:
        """Record a fact and count it, once per (delivery, step, fact): True when it was new."""
        ...

    async def step_of_message(self, message_id: str) -> tuple[str, int, str, str] | None:
        """(delivery, step, channel, enterprise) of the attempt a message id was given to."""
        ...

    async def funnel_days(self, enterprise: str, first: str, last: str) -> list[dict[str, Any]]: ...
    async def funnel_sealed(self, enterprise: str, first: str, last: str) -> set[str]: ...
    async def funnel_sent(self, enterprise: str, start: float, end: float) -> list[tuple[str, str, int, int]]:
        """(day, channel, sent, delivered) of the attempts started in [start, end)."""
        ...

    async def funnel_seal(
        self, enterprise: str, days: list[str], counts: list[tuple[str, str, int, int]]
    ) -> None: ...


class ReceiptStore(Lifetime, AttemptStore, Protocol):
    """What the receipts use."""


class IntakeStore(Lifetime, DocumentStore, CallStore, Protocol):
    """What the intake of call events uses."""


class LibraryStore(Lifetime, MediaStore, Protocol):
    """What the media library uses."""


class MeterStore(DocumentStore, LedgerStore, Protocol):
    """What metering uses: packages (documents) and the ledger."""


class ReviewStore(DocumentStore, ConsoleStore, Protocol):
    """What card reviews use: documents, read back a card's versions in id order."""


class DryRunStore(DocumentStore, ReachStore, Protocol):
    """What a dry run reads: cards and opt-outs."""


class DeliveryStore(
    Lifetime,
    DocumentStore,
    MediaStore,
    CallStore,
    AttemptStore,
    ReachStore,
    LedgerStore,
    ConsoleStore,
    LinkStore,
    FunnelStore,
    Protocol,
):
    """Every role: what the service, the chains and the web layer hold."""
