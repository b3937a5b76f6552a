"""Where a waiting delivery chain sleeps and what wakes it: a receipt for its attempt, an
opt-out of its recipient, or a later phase of its call. Waking is a hint, never a command: the
chain re-reads the store and decides."""

from __future__ import annotations

import asyncio
import time


class Wakeups:
    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def wait(self, delivery: str, deadline: float) -> None:
        """Sleep until poked or until `deadline` (a time.time() value)."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._waiting[delivery] = wake
        timer = loop.call_later(
            max(0.0, deadline - time.time()), lambda: wake.done() or wake.set_result(None)
        )
        try:
            await wake
        finally:
            timer.cancel()
            if self._waiting.get(delivery) is wake:
                del self._waiting[delivery]

    def poke(self, delivery: str) -> None:
        wake = self._waiting.get(delivery)
        if wake is not None and not wake.done():
            wake.set_result(None)
