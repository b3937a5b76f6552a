"""An asyncio ESME (client) session for SMPP 3.4: one bound transceiver kept up.

Several of them make an account's pool (smpp_pool.py); each session keeps its own state
(`state`, `detail`: what the pool reports and logs), its own window of outstanding submits and
its own throttling backoff: after ESME_RTHROTTLED (0x58) or ESME_RMSGQFUL (0x14) no submit goes
out on that session until the backoff has passed (exponential with jitter, capped; reset by an
accepted submit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from infra.outage import log_failure

from .smpp_pdu import (
    BIND_TRANSCEIVER,
    DELIVER_SM,
    ENQUIRE_LINK,
    GENERIC_NACK,
    RESP,
    STATUS_INVCMDID,
    STATUS_INVMSGLEN,
    STATUS_MSGQFUL,
    STATUS_OK,
    STATUS_SYSERR,
    STATUS_THROTTLED,
    SUBMIT_SM,
    UNBIND,
    Bind,
    Pdu,
    PduError,
    PduReader,
    ShortMessage,
    read_pdu,
)
from .smpp_rate import SubmitRate

log = logging.getLogger("mingpian.delivery.smpp")


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status: int
    message_id: str = ""
    detail: str = ""
    sent: bool = True  # False: it never left (not bound, paused, no rate slot): safe to try again
    answered: bool = True  # False: sent, and the session ended or timed out before its answer

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


class BindRefused(ConnectionError):
    """The SMSC answered the bind with an error status."""


class NotConnected(ConnectionError):
    """Nothing was written: there is no connection."""


DeliverHandler = Callable[[ShortMessage], Awaitable[None]]
THROTTLING = frozenset({STATUS_THROTTLED, STATUS_MSGQFUL})
BACKOFF_FIRST, BACKOFF_CAP = 0.05, 2.0  # seconds: a throttled session's first and longest pause
RECONNECT_FIRST, RECONNECT_CAP = 0.05, 5.0  # seconds between connection attempts


def jittered(delay: float) -> float:
    """Half fixed, half random ("equal jitter"): sessions and processes that were throttled or
    dropped together do not all come back in the same instant."""
    return delay / 2 + random.uniform(0, delay / 2)


class SmppClient:
    """One bind_transceiver session kept up: reconnect with backoff, enquire_link keep-alive,
    a window of outstanding submits matched by sequence_number, a pause after throttling, and
    every deliver_sm answered only after `on_deliver` returned (the receipt is stored:
    at-least-once, deduped by us)."""

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        on_deliver: DeliverHandler,
        *,
        system_type: str = "",
        keepalive: float = 30.0,
        timeout: float = 5.0,
        window: int = 256,
        name: str = "",
        on_state: Callable[[SmppClient], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.name = name or f"{system_id}@{host}:{port}"
        self.on_state = on_state  # called on every change of `state`
        self.system_id, self.password, self.system_type = system_id, password, system_type
        self.on_deliver = on_deliver
        self.keepalive, self.timeout = keepalive, timeout
        self._window = asyncio.Semaphore(window)
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._out: list[bytes] = []  # PDUs written during this event-loop iteration, sent at its end
        self._writer: asyncio.StreamWriter | None = None
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False
        self.state = "connecting"  # connecting | bound | refused | down | closed
        self.detail = ""  # why it is not bound
        self.submits = 0  # submit_sm sent on this session
        self._hold_until = 0.0  # time.monotonic() before which no submit goes out (throttled)
        self._throttles = 0  # throttling answers in a row (the backoff's exponent)
        self._throttled_at = 0.0  # when the current backoff began

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def hold(self) -> float:
        """Seconds until this session may submit again after throttling (0: now)."""
        return max(0.0, self._hold_until - time.monotonic())

    def _set_state(self, state: str, detail: str = "") -> None:
        if (state, detail) == (self.state, self.detail):
            return  # a refusal or an unreachable SMSC retried every few seconds is logged once
        self.state, self.detail = state, detail
        if state == "bound":
            log.info("SMPP %s: bound", self.name)
        elif state in ("refused", "down"):
            log.warning("SMPP %s: %s", self.name, detail)
        if self.on_state is not None:
            self.on_state(self)

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="smpp-client")

    async def wait_bound(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._bound.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        self._set_state("closed")
        w = self._writer
        if w is not None and self.bound:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._request(UNBIND, b""), 1.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for t in list(self._handlers):
            t.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _run(self) -> None:
        delay = RECONNECT_FIRST
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                self._set_state("down", f"connect failed: {exc}")
                await asyncio.sleep(jittered(delay))
                delay = min(delay * 2, RECONNECT_CAP)
                continue
            self._writer = writer
            reading = asyncio.get_running_loop().create_task(self._read(reader))
            try:
                bind = Bind(self.system_id, self.password, self.system_type).encode()
                resp = await asyncio.wait_for(self._request(BIND_TRANSCEIVER, bind), self.timeout)
                if resp.status != STATUS_OK:
                    raise BindRefused(
                        f"bind refused: command_status 0x{resp.status:02X} (a wrong password, or the"
                        " account's bind limit is below delivery_smpp_binds × server processes)"
                    )
                delay = RECONNECT_FIRST
                self._bound.set()
                self._set_state("bound")
                while not reading.done():
                    done, _ = await asyncio.wait({reading}, timeout=self.keepalive)
                    if not done:
                        await asyncio.wait_for(self._request(ENQUIRE_LINK, b""), self.timeout)
            except BindRefused as exc:
                if not self._closing:
                    self._set_state("refused", str(exc))
            except (OSError, ConnectionError, TimeoutError, PduError) as exc:
                if not self._closing:
                    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    self._set_state("down", f"session lost: {why}")
            finally:
                self._bound.clear()
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
                writer.close()
                self._writer = None
                self._out = []
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("SMPP session closed"))
                self._pending.clear()
            if not self._closing:
                if self.state == "bound":  # the SMSC closed or unbound without an error
                    self._set_state("down", "session closed by the SMSC")
                await asyncio.sleep(jittered(delay))
                delay = min(delay * 2, RECONNECT_CAP)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        n = 0
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, PduError):
            while True:
                pdu = await read_pdu(reader)
                n += 1
                if n % 32 == 0:  # a buffered burst is read without suspending: let others run
                    await asyncio.sleep(0)
                if pdu.command_id & RESP:
                    fut = self._pending.pop(pdu.seq, None)
                    if fut is not None and not fut.done():
                        fut.set_result(pdu)
                elif pdu.command_id == DELIVER_SM:
                    t = asyncio.get_running_loop().create_task(self._deliver(pdu))
                    self._handlers.add(t)
                    t.add_done_callback(self._handlers.discard)
                elif pdu.command_id == ENQUIRE_LINK:
                    self._write(Pdu(ENQUIRE_LINK | RESP, 0, pdu.seq))
                elif pdu.command_id == UNBIND:
                    self._write(Pdu(UNBIND | RESP, 0, pdu.seq))
                    return
                else:
                    self._write(Pdu(GENERIC_NACK, STATUS_INVCMDID, pdu.seq))

    async def _deliver(self, pdu: Pdu) -> None:
        try:
            sm = ShortMessage.decode(pdu.body)
        except PduError:
            self._write(Pdu(DELIVER_SM | RESP, STATUS_INVMSGLEN, pdu.seq, b"\0"))
            return
        try:
            await self.on_deliver(sm)
        except Exception as exc:  # not stored: a system error makes the SMSC redeliver it later
            log_failure(log, exc, "handling deliver_sm failed")  # an outage: one line, not one per PDU
            self._write(Pdu(DELIVER_SM | RESP, STATUS_SYSERR, pdu.seq, b"\0"))
            return
        self._write(Pdu(DELIVER_SM | RESP, STATUS_OK, pdu.seq, b"\0"))

    def _write(self, pdu: Pdu) -> None:
        """Queue a PDU for this session's socket. Every PDU written during one event-loop
        iteration (the submits of the chains one commit released, the responses to a burst of
        receipts) leaves in one send at the end of it: one system call instead of dozens."""
        if self._writer is None:
            raise NotConnected("SMPP not connected")
        if not self._out:
            asyncio.get_running_loop().call_soon(self._send_out, self._writer)
        self._out.append(pdu.encode())

    def _send_out(self, writer: asyncio.StreamWriter) -> None:
        data, self._out = b"".join(self._out), []
        if writer is self._writer and data:  # (a session that dropped meanwhile loses them)
            writer.write(data)

    async def _request(self, command: int, body: bytes, timeout: float | None = None) -> Pdu:
        """Send a request and wait for its response. The timeout is a timer on the future, not
        asyncio.wait_for, which would cost a task per submit on Python 3.11."""
        seq = self._next_seq()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Pdu] = loop.create_future()
        self._pending[seq] = fut
        try:
            self._write(Pdu(command, 0, seq, body))
        except NotConnected:
            self._pending.pop(seq, None)
            raise
        timer = None
        if timeout is not None:
            timer = loop.call_later(
                timeout, lambda: fut.done() or fut.set_exception(TimeoutError(f"no response in {timeout:g}s"))
            )
        try:
            return await fut
        finally:
            self._pending.pop(seq, None)
            if timer is not None:
                timer.cancel()

    async def submit(
        self, sm: ShortMessage, *, deadline: float | None = None, rate: SubmitRate | None = None
    ) -> SubmitResult:
        """submit_sm → the SMSC's answer; a lost session or no answer is status SYSERR.

        In order: a free place in the window, the end of a throttling pause (checked inside the
        window, so every submit queued there honours a pause begun meanwhile), then the
        account's rate slot (taken last, just before the PDU leaves, so waiting for the window
        never bunches submits up). `deadline` (time.monotonic()) bounds the pause and the slot:
        one further off answers THROTTLED, unsent."""
        now = time.monotonic()
        if not self.bound and not await self.wait_bound(self.timeout if deadline is None else deadline - now):
            return SubmitResult(STATUS_SYSERR, detail="SMPP not bound", sent=False)
        async with self._window:
            while (pause := self.hold()) > 0:
                if deadline is not None and time.monotonic() + pause > deadline:
                    return SubmitResult(
                        STATUS_THROTTLED, detail="SMPP throttled: pausing past the deadline", sent=False
                    )
                await asyncio.sleep(pause)
            if rate is not None:
                left = self.timeout if deadline is None else deadline - time.monotonic()
                try:
                    slot = await rate.acquire(max(0.0, left))
                except Exception as exc:  # e.g. Redis unreachable: not sent, try again later
                    why = f"submit rate: {type(exc).__name__}: {exc}"
                    return SubmitResult(STATUS_THROTTLED, detail=why[:300], sent=False)
                if not slot:
                    return SubmitResult(
                        STATUS_THROTTLED,
                        detail=f"submit rate {rate.rate:g}/s: no free slot before the deadline",
                        sent=False,
                    )
            if not self.bound:
                return SubmitResult(STATUS_SYSERR, detail="SMPP not bound", sent=False)
            sent = time.monotonic()
            self.submits += 1
            try:
                resp = await self._request(SUBMIT_SM, sm.encode(), self.timeout)
            except NotConnected:
                return SubmitResult(STATUS_SYSERR, detail="SMPP not bound", sent=False)
            except (ConnectionError, TimeoutError, OSError) as exc:  # it may have reached the SMSC
                return SubmitResult(STATUS_SYSERR, detail=f"{type(exc).__name__}: {exc}", answered=False)
        self._note(resp.status, sent)
        mid = PduReader(resp.body).cstr(65) if resp.body else ""
        return SubmitResult(
            resp.status, mid, "" if resp.status == 0 else f"command_status 0x{resp.status:02X}"
        )

    def _note(self, status: int, sent: float) -> None:
        """Throttling answers lengthen this session's backoff; an accepted submit ends it. Only
        a submit sent after the current backoff began counts: the rest of a window that was
        already out when the first throttle came back says nothing new."""
        if sent < self._throttled_at:
            return
        if status in THROTTLING:
            self._throttles += 1
            now = time.monotonic()
            self._throttled_at = now
            pause = jittered(min(BACKOFF_FIRST * 2 ** (self._throttles - 1), BACKOFF_CAP))
            self._hold_until = max(self._hold_until, now + pause)
            log.debug("SMPP %s: throttled (0x%02X): %.3fs pause", self.name, status, pause)
        elif status == STATUS_OK:
            self._throttles = 0
