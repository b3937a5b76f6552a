"""An asyncio ESME (client) session for SMPP 3.4: one bound transceiver kept up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .smpp_pdu import (
    BIND_TRANSCEIVER,
    DELIVER_SM,
    ENQUIRE_LINK,
    GENERIC_NACK,
    RESP,
    STATUS_INVCMDID,
    STATUS_INVMSGLEN,
    STATUS_OK,
    STATUS_SYSERR,
    SUBMIT_SM,
    UNBIND,
    Bind,
    Pdu,
    PduError,
    PduReader,
    ShortMessage,
    read_pdu,
)

log = logging.getLogger("mingpian.delivery.smpp")


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status: int
    message_id: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


DeliverHandler = Callable[[ShortMessage], Awaitable[None]]


class SmppClient:
    """One bind_transceiver session kept up: reconnect with backoff, enquire_link keep-alive,
    a window of outstanding submits matched by sequence_number, and every deliver_sm answered
    only after `on_deliver` returned (the receipt is stored: at-least-once, deduped by us)."""

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
    ) -> None:
        self.host, self.port = host, port
        self.system_id, self.password, self.system_type = system_id, password, system_type
        self.on_deliver = on_deliver
        self.keepalive, self.timeout = keepalive, timeout
        self._window = asyncio.Semaphore(window)
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

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
        delay = 0.05
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                log.warning("SMPP connect to %s:%s failed: %s", self.host, self.port, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._writer = writer
            reading = asyncio.get_running_loop().create_task(self._read(reader))
            try:
                bind = Bind(self.system_id, self.password, self.system_type).encode()
                resp = await asyncio.wait_for(self._request(BIND_TRANSCEIVER, bind), self.timeout)
                if resp.status != STATUS_OK:
                    raise ConnectionError(f"bind refused: status 0x{resp.status:02X}")
                delay = 0.05
                self._bound.set()
                while not reading.done():
                    done, _ = await asyncio.wait({reading}, timeout=self.keepalive)
                    if not done:
                        await asyncio.wait_for(self._request(ENQUIRE_LINK, b""), self.timeout)
            except (OSError, ConnectionError, TimeoutError, PduError) as exc:
                if not self._closing:
                    log.warning("SMPP session lost: %s", exc)
            finally:
                self._bound.clear()
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
                writer.close()
                self._writer = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("SMPP session closed"))
                self._pending.clear()
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

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
        except Exception:  # not stored: a system error makes the SMSC redeliver it later
            log.exception("handling deliver_sm failed")
            self._write(Pdu(DELIVER_SM | RESP, STATUS_SYSERR, pdu.seq, b"\0"))
            return
        self._write(Pdu(DELIVER_SM | RESP, STATUS_OK, pdu.seq, b"\0"))

    def _write(self, pdu: Pdu) -> None:
        if self._writer is None:
            raise ConnectionError("SMPP not connected")
        self._writer.write(pdu.encode())

    async def _request(self, command: int, body: bytes, timeout: float | None = None) -> Pdu:
        """Send a request and wait for its response. The timeout is a timer on the future, not
        asyncio.wait_for, which would cost a task per submit on Python 3.11."""
        seq = self._next_seq()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Pdu] = loop.create_future()
        self._pending[seq] = fut
        try:
            self._write(Pdu(command, 0, seq, body))
        except ConnectionError:
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

    async def submit(self, sm: ShortMessage) -> SubmitResult:
        """submit_sm → the SMSC's answer; a lost session or no answer is status SYSERR."""
        if not self.bound and not await self.wait_bound(self.timeout):
            return SubmitResult(STATUS_SYSERR, detail="SMPP not bound")
        async with self._window:
            try:
                resp = await self._request(SUBMIT_SM, sm.encode(), self.timeout)
            except (ConnectionError, TimeoutError, OSError) as exc:
                return SubmitResult(STATUS_SYSERR, detail=f"{type(exc).__name__}: {exc}")
        mid = PduReader(resp.body).cstr(65) if resp.body else ""
        return SubmitResult(
            resp.status, mid, "" if resp.status == 0 else f"command_status 0x{resp.status:02X}"
        )
