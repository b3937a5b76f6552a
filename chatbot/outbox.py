"""The outbox worker: drains committed replies to the MaaP, in order per conversation.

Each conversation's queue is served head-first by at most one sender at a time (the store's
claim leases the head), so replies arrive in commit order; different conversations go out in
parallel up to `concurrency`. Failures back off exponentially with full jitter (capped), and
nothing is dropped for a platform outage: only a permanent refusal (e.g. errorCode 20002, bad
parameters) marks a message failed so the conversation's later replies are not blocked forever.
Every attempt reuses the message's stable ID, so a resend after a timeout or a crash is
deduplicated by the MaaP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from infra import jsonio
from infra.outage import log_failure

from .maap import SendResult
from .store import OutboxItem, Store

log = logging.getLogger("mingpian.chatbot.outbox")
Sender = Callable[[dict[str, Any]], Awaitable[SendResult]]


def backoff(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [base/2, min(cap, base·2^attempts)]."""
    high = min(cap, base * (2 ** min(attempts, 30)))
    return (rng or random).uniform(min(base / 2, high), high)


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        send: Sender,
        *,
        concurrency: int = 64,
        lease: float = 30.0,
        base_backoff: float = 0.2,
        max_backoff: float = 60.0,
        poll: float = 0.05,
        prune: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.send = send
        self.concurrency = concurrency
        self.lease = lease
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.poll = poll
        self.prune = prune
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.delivered = 0
        self.retried = 0
        self.failed = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatbot-outbox")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._inflight:
            # In-flight sends finish or are cancelled; either way their rows stay pending until
            # acknowledged, so the next start resends them (same message IDs).
            for t in self._inflight:
                t.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        last_prune = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            claimed = 0
            free = self.concurrency - len(self._inflight)
            if free > 0:
                try:
                    items = await self.store.claim(free, time.time(), self.lease)
                except Exception as exc:  # a store hiccup (Redis restart) must not kill the worker
                    log_failure(log, exc, "outbox claim failed")
                    items = []
                    await asyncio.sleep(self.poll * 10)
                claimed = len(items)
                for item in items:
                    t = asyncio.get_running_loop().create_task(self._deliver(item))
                    self._inflight.add(t)
                    t.add_done_callback(self._inflight.discard)
            if self.prune is not None and time.monotonic() - last_prune > 60:
                last_prune = time.monotonic()
                try:
                    await self.prune()
                except Exception as exc:
                    log_failure(log, exc, "outbox prune failed")
            if claimed == 0 or claimed >= free:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            result = await self.send(jsonio.loads(item.body))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in sending must not lose the message: retry it
            log_failure(log, exc, "outbox send crashed for %s", item.message_id)  # an outage: one line
            result = SendResult("retry", f"{type(exc).__name__}: {exc}")
        now = time.time()
        try:
            if result.outcome == "ok":
                await self.store.sent(item, now)
                self.delivered += 1
            elif result.outcome == "retry":
                delay = backoff(item.attempts, self.base_backoff, self.max_backoff)
                if result.hold and result.retry_after is not None:  # a quota: wait until it renews
                    delay = result.retry_after
                elif result.retry_after is not None:
                    delay = max(delay, min(result.retry_after, self.max_backoff))
                await self.store.retry(item, now + delay, result.detail)
                self.retried += 1
                log.info(
                    "outbox: %s retry in %.2fs (attempt %d): %s",
                    item.message_id,
                    delay,
                    item.attempts + 1,
                    result.detail,
                )
            else:
                await self.store.give_up(item, now, result.detail)
                self.failed += 1
                log.error("outbox: %s refused by the MaaP, not retried: %s", item.message_id, result.detail)
        except Exception as exc:
            log_failure(
                log, exc, "outbox: recording the outcome of %s failed; the lease will expire", item.message_id
            )
        self._wake.set()
