"""Where a waiting delivery chain sleeps and what wakes it: a receipt for its attempt, an
opt-out of its recipient, or a later phase of its call. Waking is a hint, never a command: the
chain re-reads the store and decides.

On a fleet the chain may wait in another worker than the one that heard the receipt: `announce`
wakes it here if it runs here, and otherwise tells the other workers (`broadcast`, through the
shared counters' fan-out), whose `poke` wakes it where it runs. A chain that runs here but is
not waiting at that moment (it is reading the store) is remembered as poked: its next `wait`
returns at once, so a wake between its read and its wait is never lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from infra.outage import log_failure

log = logging.getLogger("mingpian.delivery")


class Wakeups:
    def __init__(self, broadcast: Callable[[str], Awaitable[None]] | None = None) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._poked: set[str] = set()  # chains running here, poked while not waiting
        self.broadcast = broadcast
        self.local: Callable[[str], bool] = lambda delivery: False  # does its chain run here?
        self._background: set[asyncio.Task[Any]] = set()

    async def wait(self, delivery: str, deadline: float) -> None:
        """Sleep until poked or until `deadline` (a time.time() value)."""
        if delivery in self._poked:
            self._poked.discard(delivery)
            return
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._waiting[delivery] = wake
        delay = max(0.0, deadline - time.time())
        timer = loop.call_later(delay, lambda: wake.done() or wake.set_result(None))
        try:
            await wake
        finally:
            timer.cancel()
            if self._waiting.get(delivery) is wake:
                del self._waiting[delivery]

    def poke(self, delivery: str) -> None:
        """Wake the chain if it runs in this process."""
        wake = self._waiting.get(delivery)
        if wake is not None:
            if not wake.done():
                wake.set_result(None)
        elif self.local(delivery):
            self._poked.add(delivery)

    def forget(self, delivery: str) -> None:
        """Its chain ended here."""
        self._poked.discard(delivery)

    def announce(self, delivery: str) -> None:
        """Wake the chain wherever it runs: here, or (not here) in another worker."""
        if delivery in self._waiting or self.local(delivery):
            self.poke(delivery)
        elif self.broadcast is not None:
            t = asyncio.get_running_loop().create_task(
                self.broadcast(delivery), context=contextvars.Context()
            )
            self._background.add(t)
            t.add_done_callback(self._background.discard)
            t.add_done_callback(_unheard)


def _unheard(t: asyncio.Task[None]) -> None:
    """A wake that did not reach the others (Redis is away): their chains still wake at their
    deadline and read the store. Noted as an outage, not logged per wake."""
    if not t.cancelled() and t.exception() is not None:
        log_failure(log, t.exception(), "delivery wakeups: telling the other workers failed")  # type: ignore[arg-type]
