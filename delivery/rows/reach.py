"""What people did with the cards: opt-outs, taps, ad impressions, replies already counted, and
the delivery report read from the attempts.

Opt-outs are checked on every call event, so each process keeps them all in memory (they only
grow): a new one is announced through the driver and added to every process's set. When the
driver's listener connected again after losing its connection (a restart or failover of the
database), announcements may have been missed: the table is read again and added to the set.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Sequence
from typing import Any

from infra.outage import unavailable

from ..drivers import RELISTEN, Driver
from ..records import OUTCOME, attempt_stats

# The China Standard Time day an attempt started: the only function the two databases spell apart.
DAY = {
    "sqlite": "date(a.started, 'unixepoch', '+8 hours')",
    "postgresql": "to_char(to_timestamp(a.started + 8 * 3600) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
LastDelivered = tuple[str, float, str, str, int]  # card, when, delivery id, enterprise, step
OPTOUT = "optout:"  # the notification of a new opt-out: optout:<enterprise>|<number>
CATCH_UP = (1.0, 30.0)  # s: first and longest wait between tries to read the opt-outs again
log = logging.getLogger("mingpian.delivery")


class ReachRows:
    db: Driver
    _optouts: set[tuple[str, str]]
    _optouts_task: asyncio.Task[None]  # reading them again (kept: a task nobody holds may vanish)

    async def _load_optouts(self) -> None:
        rows = await self.db.all("SELECT enterprise, number FROM optouts")
        self._optouts = {(r[0], r[1]) for r in rows}

    def _heard_optout(self, payload: str) -> bool:
        """Add the opt-out a notification announces; False if it announces something else (after
        the listener connected again: the opt-outs are read again, and the caller's caches go)."""
        if payload == RELISTEN:  # a fresh context: never a store transaction of the caller's
            self._optouts_task = asyncio.get_running_loop().create_task(
                self._catch_up_optouts(), context=contextvars.Context()
            )
            return False
        if not payload.startswith(OPTOUT):
            return False
        enterprise, _, number = payload[len(OPTOUT) :].partition("|")
        self._optouts.add((enterprise, number))
        return True

    async def _catch_up_optouts(self) -> None:
        """Read every opt-out again, added to the set (one heard meanwhile stays), trying again
        while the database is away."""
        wait, longest = CATCH_UP
        while True:
            try:
                rows = await self.db.all("SELECT enterprise, number FROM optouts")
            except Exception as exc:
                if unavailable(exc) is None:  # a bug, or the store stopped: not tried again
                    log.error("delivery: reading the opt-outs again failed", exc_info=exc)
                    return
                await asyncio.sleep(wait)
                wait = min(wait * 2, longest)
                continue
            self._optouts |= {(r[0], r[1]) for r in rows}
            return

    async def opt_out(self, enterprise: str, number: str, channel: str, text: str) -> None:
        await self.db.run(
            "INSERT INTO optouts VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
            enterprise, number, time.time(), channel, text,
        )  # fmt: skip
        await self.db.notify(f"{OPTOUT}{enterprise}|{number}")  # after the write

    async def opted_out(self, enterprise: str, number: str) -> bool:
        return (enterprise, number) in self._optouts

    async def optouts(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self.db.all(
            "SELECT number, at, channel, text FROM optouts WHERE enterprise=$1 ORDER BY at", enterprise
        )
        return [{"number": r[0], "at": r[1], "channel": r[2], "text": r[3]} for r in rows]

    async def active_for(self, enterprise: str, recipient: str) -> list[str]:
        rows = await self.db.all(
            "SELECT id FROM deliveries WHERE recipient=$1 AND enterprise=$2 AND state='active'",
            recipient, enterprise,
        )  # fmt: skip
        return [r[0] for r in rows]

    async def last_delivered(
        self, enterprise: str | Sequence[str], recipient: str, kind: str | None
    ) -> LastDelivered | None:
        """(card, when, delivery id, enterprise, step) of the latest card (of this kind) delivered
        (or, as card SMS, displayed) to a person by the enterprise — or by any of several (the
        ones behind one 5G chatbot)."""
        ents = [enterprise] if isinstance(enterprise, str) else list(enterprise)
        if not ents:
            return None
        row = await self.db.one(
            "SELECT card, updated, id, enterprise, step FROM deliveries WHERE enterprise = ANY($1::text[]) "
            "AND recipient=$2 AND ($3::text IS NULL OR kind=$3) AND state IN ('delivered', 'displayed') "
            "ORDER BY updated DESC LIMIT 1",
            ents, recipient, kind,
        )  # fmt: skip
        return (row[0], row[1], row[2], row[3], int(row[4])) if row else None

    async def first_reply(self, key: str, now: float, keep: float = 7 * 86400) -> bool:
        """True the first time a reply with this key (e.g. the chatbot's message id) is seen: a
        platform's redelivery of the same tap is not counted twice. Old keys are pruned."""
        await self.db.run("DELETE FROM replies_seen WHERE at < $1", now - keep)
        return (
            await self.db.run("INSERT INTO replies_seen VALUES ($1,$2) ON CONFLICT DO NOTHING", key, now) > 0
        )

    async def count_tap(self, enterprise: str, card: str, button: str, day: str) -> None:
        await self.db.run(
            "INSERT INTO taps VALUES ($1,$2,$3,$4,1) ON CONFLICT (enterprise, card, button, day) "
            "DO UPDATE SET n = taps.n + 1",
            enterprise, card, button, day,
        )  # fmt: skip

    async def taps(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self.db.all(
            "SELECT card, button, day, n FROM taps WHERE enterprise=$1 ORDER BY day, card, n DESC", enterprise
        )
        return [{"card": r[0], "button": r[1], "day": r[2], "taps": r[3]} for r in rows]

    async def count_impression(self, enterprise: str, card: str, day: str, taps: int = 0) -> None:
        await self.db.run(
            "INSERT INTO impressions VALUES ($1,$2,$3,$4,$5) ON CONFLICT (enterprise, card, day) "
            "DO UPDATE SET shown = impressions.shown + excluded.shown, "
            "taps = impressions.taps + excluded.taps",
            enterprise, card, day, 0 if taps else 1, taps,
        )  # fmt: skip

    async def impressions(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self.db.all(
            "SELECT card, day, shown, taps FROM impressions WHERE enterprise=$1 ORDER BY day, card",
            enterprise,
        )
        return [{"card": r[0], "day": r[1], "impressions": r[2], "taps": r[3]} for r in rows]

    async def delivery_stats(self, enterprise: str) -> list[dict[str, Any]]:
        rows = await self.db.all(
            f"SELECT {DAY[self.db.name]} AS day, a.channel, {OUTCOME} AS outcome, count(*), "
            "avg(CASE WHEN a.done IS NOT NULL THEN a.done - a.started END) "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery WHERE d.enterprise=$1 "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            enterprise,
        )
        return attempt_stats(rows)
