"""One SMSC account as this process uses it: `binds` sessions (smpp_client.py), the account's
submit rate (smpp_rate.py) and what happens when the SMSC throttles.

- Every session binds as a transceiver; submits go round-robin over the sessions that are
  bound, preferring those not pausing after a throttle. Receipts and replies arriving on any
  session reach the same `on_deliver`.
- Every submit_sm takes a slot of the account's rate just before it leaves.
- ESME_RTHROTTLED (0x58) / ESME_RMSGQFUL (0x14): the SMSC did not take the message, so it is
  sent again (on another session if one is free, else after this one's pause) until the
  caller's deadline. Nothing else is retried: after a timeout the SMSC may have taken it.
- What comes back when time runs out is retryable: status SYSERR "SMPP not bound" when no
  session is bound (as with a single session), THROTTLED with the reason otherwise.

The account must allow at least `binds` × server processes binds; a session the SMSC refuses
says so in the log and in `health()`, keeps retrying with backoff, and the bound ones carry on.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .smpp_client import THROTTLING, DeliverHandler, SmppClient, SubmitResult
from .smpp_pdu import STATUS_SYSERR, ShortMessage
from .smpp_rate import LocalRate, SubmitRate

MAX_TRIES = 16  # submits of one message at most (throttled answers), however long the deadline


class SmppPool:
    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        on_deliver: DeliverHandler,
        *,
        binds: int = 1,
        window: int = 256,
        rate: SubmitRate | None = None,
        wait: float = 5.0,
        system_type: str = "",
        keepalive: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.account = f"{system_id}@{host}:{port}"
        self.rate: SubmitRate = rate if rate is not None else LocalRate(0)
        self.wait = wait  # longest a submit waits for a session, a pause or a rate slot
        self.sessions = [
            SmppClient(
                host,
                port,
                system_id,
                password,
                on_deliver,
                system_type=system_type,
                keepalive=keepalive,
                timeout=timeout,
                window=window,
                name=f"{self.account} bind {i + 1}/{binds}",
                on_state=self._changed,
            )
            for i in range(binds)
        ]
        self._next = 0
        self._change = asyncio.Event()  # set (and replaced) whenever a session's state changes
        # when no session was bound (time.time() spans): receipts the SMSC holds for us meanwhile
        # come only after a bind, so an attempt's deadline stands still (`unbound`)
        self._unbound_since: float | None = time.time()
        self._unbound: deque[tuple[float, float]] = deque(maxlen=64)

    def start(self) -> None:
        for s in self.sessions:
            s.start()

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions))

    # -- state -----------------------------------------------------------------------------------
    @property
    def bound(self) -> int:
        """How many sessions are bound."""
        return sum(s.bound for s in self.sessions)

    def stats(self) -> dict[str, int]:
        """For monitoring (read only): sessions bound, and sessions configured (`binds`)."""
        return {"bound": self.bound, "configured": len(self.sessions)}

    def _changed(self, _session: SmppClient) -> None:
        change, self._change = self._change, asyncio.Event()
        change.set()
        now, bound = time.time(), self.bound
        if not bound and self._unbound_since is None:
            self._unbound_since = now
        elif bound and self._unbound_since is not None:
            self._unbound.append((self._unbound_since, now))
            self._unbound_since = None

    def unbound(self, since: float, now: float) -> float:
        """Seconds between `since` and `now` (time.time()) with no session bound."""
        spans = [*self._unbound, *([(self._unbound_since, now)] if self._unbound_since is not None else [])]
        return sum(max(0.0, min(end, now) - max(start, since)) for start, end in spans)

    async def wait_bound(self, timeout: float, count: int = 1) -> bool:
        """Wait until at least `count` sessions are bound (False after `timeout`)."""
        end = time.monotonic() + timeout
        while self.bound < count:
            left = end - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._change.wait(), left)
            except TimeoutError:
                return self.bound >= count
        return True

    def health(self) -> dict[str, Any]:
        """The account's sessions for an operator: how many are bound, and why the others are not."""
        return {
            "account": self.account,
            "binds": len(self.sessions),
            "bound": self.bound,
            "sessions": [
                {"name": s.name, "state": s.state, "detail": s.detail, "submits": s.submits}
                for s in self.sessions
            ],
        }

    # -- submits ---------------------------------------------------------------------------------
    def _pick(self) -> SmppClient | None:
        """The next bound session in turn that is not pausing; else the bound one whose pause
        ends first; None when none is bound."""
        n = len(self.sessions)
        best: SmppClient | None = None
        for i in range(n):
            s = self.sessions[(self._next + i) % n]
            if not s.bound:
                continue
            if s.hold() == 0:
                self._next = (self._next + i + 1) % n
                return s
            if best is None or s.hold() < best.hold():
                best = s
        return best

    async def submit(self, sm: ShortMessage, deadline: float | None = None) -> SubmitResult:
        """Submit one short message; `deadline` (time.monotonic()) is when to stop trying,
        by default `wait` from now."""
        end = time.monotonic() + self.wait if deadline is None else deadline
        smsc: SubmitResult | None = None  # the SMSC's last throttling answer
        for tries in range(MAX_TRIES):
            session = self._pick()
            if session is None:
                if not await self.wait_bound(end - time.monotonic()):
                    return smsc or SubmitResult(STATUS_SYSERR, detail="SMPP not bound", sent=False)
                continue
            res = await session.submit(sm, deadline=end, rate=self.rate)
            if res.ok or (res.sent and res.status not in THROTTLING):
                return res
            if res.sent:  # throttled by the SMSC, which did not take it
                smsc = SubmitResult(
                    res.status, detail=f"{res.detail} (throttled; {tries + 1} tries)", sent=True
                )
            elif res.status != STATUS_SYSERR:  # a pause or no rate slot before the deadline
                return smsc or res
            if time.monotonic() >= end:
                break
        return smsc or SubmitResult(STATUS_SYSERR, detail="SMPP not bound", sent=False)
