"""Conversation state, dedupe records and the outbox, behind one interface with two backends.

The engine's exactly-once argument rests on `commit`: the dedupe record for the platform's
message ID, the conversation state (compare-and-set on its version) and the outbound messages
are written in ONE atomic step, or not at all. A crash before it means the platform's retry
runs the turn again; a crash after it means the retry finds the dedupe record, and the outbox
worker (re)sends the committed replies under their stable message IDs.

- `sqlite.py`: the embedded default; one server process per database file.
- `redis.py`: the scale-out store shared by several server processes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..events import StatusReport

if TYPE_CHECKING:  # the MaaP client is built on a store: no import of it at run time
    from ..maap import SharedTokens


class CommitResult(enum.Enum):
    OK = "ok"
    DUPLICATE = "duplicate"  # the dedupe record exists: this delivery was already handled
    CONFLICT = "conflict"  # another turn of the same conversation committed first: recompute


@dataclass(frozen=True, slots=True)
class Loaded:
    seen: bool
    state: dict[str, Any] | None
    version: int


@dataclass(frozen=True, slots=True)
class Commit:
    dedupe_key: str
    conv: str
    expected_version: int
    state: str  # JSON
    outbox: tuple[tuple[str, str], ...]  # (message_id, JSON body), in sending order


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """The head message of one conversation's queue, leased to one worker while in flight."""

    ref: str  # backend row reference
    message_id: str
    conv: str
    body: str
    attempts: int


class Store(Protocol):
    name: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def load(self, conv: str, dedupe_key: str) -> Loaded: ...
    async def commit(self, c: Commit) -> CommitResult: ...
    async def claim(self, limit: int, now: float, lease: float) -> list[OutboxItem]: ...
    async def sent(self, item: OutboxItem, now: float) -> None: ...
    async def retry(self, item: OutboxItem, next_at: float, error: str) -> None: ...
    async def give_up(self, item: OutboxItem, now: float, error: str) -> None: ...
    async def record_status(self, reports: list[StatusReport], now: float, bot: str) -> None:
        """Apply a platform's status reports to the messages of `bot`'s conversations only."""
        ...

    async def first_nonce(self, key: str, now: float, keep: float) -> bool:
        """True the first time a webhook nonce is seen within `keep` seconds (replays: False)."""
        ...

    async def message(self, message_id: str) -> dict[str, Any] | None: ...
    async def pending(self) -> int: ...
    async def prune(self, now: float, dedupe_ttl: float, keep_sent: float) -> None: ...

    # media hosted on a platform (hosting.py): one record per (platform, content hash)
    async def hosted(self, platform: str, digest: str) -> dict[str, Any] | None: ...
    async def put_hosted(
        self, platform: str, digest: str, record: dict[str, Any], until: float, refs: tuple[str, ...] = ()
    ) -> None:
        """Keep a record; `refs` (what the carrier's decisions name: "url:…", "tid:…") find it."""
        ...

    async def hosted_ref(self, ref: str) -> tuple[str, str] | None:
        """(platform, digest) of the record a review decision names; None: none we know."""
        ...

    async def update_hosted(
        self, platform: str, digest: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Apply `change` to a record atomically (None from it: nothing to write); the record as
        it is now, None when there is none. Any process may apply a decision."""
        ...

    async def host_claim(self, platform: str, digest: str, ttl: float) -> str | None:
        """Claim the upload of one file to one platform across processes; None: another holds it."""
        ...

    async def host_release(self, platform: str, digest: str, owner: str) -> None: ...

    # the chatbot's own information on its platform (botinfo.py): one record per (platform, chatbot)
    async def bot_info(self, platform: str, chatbot: str) -> dict[str, Any] | None: ...
    async def update_bot_info(
        self,
        platform: str,
        chatbot: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> tuple[dict[str, Any] | None, bool]:
        """Apply `change` to the record (None when there is none yet) atomically, from any process;
        (the record as it is now, whether `change` wrote it). None from `change`: nothing to write."""
        ...

    def tokens(self) -> SharedTokens | None:
        """The MaaP access-token cache every process shares (Redis); None: each process keeps its
        own (SQLite, one process)."""
        ...


def open_store(
    kind: str,
    *,
    sqlite_path: Any = None,
    redis_url: str = "",
    redis_wait: tuple[int, float] = (0, 0.5),
    sync: str = "NORMAL",
    dedupe_ttl: float = 7 * 86400,
    prefix: str = "mp:",
    migrate: str = "auto",
) -> Store:
    """`migrate` (SQLite): auto, check or off — what opening does with pending schema migrations."""
    if kind == "sqlite":
        from .sqlite import SqliteStore  # deferred: only the configured backend is loaded

        return SqliteStore(sqlite_path, synchronous=sync, migrate=migrate)
    if kind == "redis":
        from .redis import RedisStore  # deferred: the Redis client only where it is used

        return RedisStore(redis_url, dedupe_ttl=dedupe_ttl, prefix=prefix, wait=redis_wait)
    raise ValueError(f"unknown store {kind!r}; expected sqlite or redis")
