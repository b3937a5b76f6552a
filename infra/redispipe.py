"""Auto-pipelining for redis-py: every command issued during one event-loop iteration goes to
Redis as ONE pipeline (one write, one read), each caller getting its own reply.

Why: with many concurrent requests, a round trip and redis-py's per-call overhead for each
command is what dominated the cost of the Redis stores (the chatbot's and the delivery
counters); batched, N callers share one round trip. Scripts run by EVALSHA; a NOSCRIPT reply
(Redis restarted or flushed its script cache) reloads them and runs again only the commands
that got it (a NOSCRIPT reply means that script did not run, so nothing runs twice).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .outage import backend_of, outages

READ_TIMEOUT = 5.0  # s for a whole batch's replies (redis-py's default socket timeout)
# For every Redis pool of the project: a server that accepts and answers nothing (stopped, a
# partition without resets) fails a command that is not pipelined (PING, a report's read, a
# script load) and the opening of a connection after this long, instead of hanging. redis-py 8
# has the same defaults; older releases had none, so they are set here rather than assumed.
# Blocking pub/sub reads are not bounded by it (redis-py reads those without a timeout).
SOCKET_TIMEOUTS = {"socket_timeout": READ_TIMEOUT, "socket_connect_timeout": READ_TIMEOUT}
# Under steady load that comes in a trickle (the last batch ended less than BUSY ago and carried
# fewer than SMALL commands) a batch starts LINGER after its first command rather than at the end
# of that event-loop iteration, so the commands of requests arriving meanwhile share its round
# trip. Bursts fill batches without help, and an idle pipeline sends at once.
LINGER = 0.001  # s
BUSY = 0.01  # s
SMALL = 8  # commands


def _arg(value: Any) -> bytes:
    """One argument as Redis reads it, the way redis-py's encoder writes it (str as UTF-8,
    numbers as their text); anything else is refused as redis-py refuses it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis: use bytes, str, int or float")


def pack(commands: list[tuple[Any, ...]]) -> bytes:
    """A batch of commands in RESP (a multi-bulk of bulk strings each). redis-py's own packer is
    general (memoryviews, large-value splitting) and costs several times as much; a batch of
    short keys and numbers needs none of that."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for value in command:
            data = _arg(value)
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class AutoPipeline:
    """One dedicated connection, at most one batch in flight: what callers queue while a batch
    is out goes in the next one, so batches grow with the load. Replies are RESP as parsed by
    redis-py's connection (hiredis when installed), without the per-command response callbacks
    or the pool's per-call bookkeeping that redis-py's own Pipeline pays — and an error reply
    (e.g. a Lua error) fails only its own caller."""

    def __init__(self, r: aioredis.Redis, scripts: dict[str, str]) -> None:
        self.r = r
        self.scripts = dict(scripts)  # name → Lua source
        self._shas: dict[str, str] = {}
        self._ops: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._conn: Any = None  # redis.asyncio.Connection, taken from the pool for good
        self._ended = float("-inf")  # loop time the last batch's replies were in
        self._last = 0  # commands the last batch carried

    async def load_scripts(self) -> None:
        for name, src in self.scripts.items():
            self._shas[name] = await self.r.script_load(src)

    def add_script(self, name: str, src: str) -> None:
        """Another user of this pipeline's connection brings its own script (loaded before its
        first use, like the others)."""
        if self.scripts.get(name, src) != src:
            raise ValueError(f"script {name!r} is already another script")
        self.scripts[name] = src

    def call(self, command: str, *args: Any) -> asyncio.Future[Any]:
        """Queue one command for the next batch; await the future for its reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._ops:
            if self._last < SMALL and loop.time() - self._ended < BUSY:
                loop.call_later(LINGER, self._start_flush, loop)
            else:
                loop.call_soon(self._start_flush, loop)
        self._ops.append((command, args, fut))
        return fut

    def script(self, name: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        return self.call("EVALSHA", name, len(keys), *keys, *args)

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        t = loop.create_task(self._flush())
        self._flushes.add(t)
        t.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        async with self._lock:  # one batch in flight; this one takes all that queued meanwhile
            ops, self._ops = self._ops, []
            self._last = len(ops)
            try:
                await self._send(ops)
            finally:
                self._ended = asyncio.get_running_loop().time()

    async def _send(self, ops: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        """Send a batch; a NOSCRIPT reply reloads the scripts and resends only those commands."""
        for attempt in range(2):
            if not ops:
                return
            try:
                if any(c == "EVALSHA" and a[0] not in self._shas for c, a, _ in ops):
                    await self.load_scripts()
                results = await self._roundtrip(ops)
            except Exception as exc:  # connection trouble: every caller gets the error
                if backend_of(exc) is not None:
                    outages.down("redis", exc)  # one line for the whole outage
                for _, _, fut in ops:
                    if not fut.done():
                        fut.set_exception(exc)
                return
            except asyncio.CancelledError:  # shutting down: nobody waits forever
                for _, _, fut in ops:
                    fut.cancel()
                raise
            outages.up("redis")
            again = []
            for op, result in zip(ops, results, strict=True):
                fut = op[2]
                if fut.done():
                    continue
                if attempt == 0 and isinstance(result, NoScriptError):
                    again.append(op)  # that script did not run: load the scripts, run it again
                elif isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
            if again:
                self._shas.clear()  # Redis restarted or flushed its script cache: load them again
            ops = again

    async def _roundtrip(self, ops: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> list[Any]:
        if self._conn is None:
            self._conn = await self.r.connection_pool.get_connection()
        conn = self._conn
        commands = [
            ("EVALSHA", self._shas[args[0]], *args[1:]) if command == "EVALSHA" else (command, *args)
            for command, args, _ in ops
        ]
        try:
            await conn.send_packed_command(pack(commands), check_health=False)
            results: list[Any] = []
            async with asyncio.timeout(READ_TIMEOUT):  # one timer for the batch, not one per reply
                for _ in commands:
                    try:
                        results.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:  # an error reply: the stream is still in step
                        results.append(exc)
            return results
        except TimeoutError as exc:  # what redis-py's own reads raise, for callers catching RedisError
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError(f"no reply from Redis within {READ_TIMEOUT:g}s") from exc
        except BaseException:
            await conn.disconnect(nowait=True)  # half-read replies: start over on a fresh socket
            raise

    async def drain(self) -> None:
        """Wait for the batches in flight, then hand the connection back to the pool."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.r.connection_pool.release(conn)
