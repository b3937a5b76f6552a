"""Auto-pipelining for redis-py: every command issued during one event-loop iteration goes to
Redis as ONE pipeline (one write, one read), each caller getting its own reply.

Why: with many concurrent requests, a round trip and redis-py's per-call overhead for each
command is what dominated the cost of the Redis stores (the chatbot's and the delivery
counters); batched, N callers share one round trip. Scripts run by EVALSHA; a NOSCRIPT reply
(Redis restarted or flushed its script cache) reloads them and runs again only the commands
that got it (a NOSCRIPT reply means that script did not run, so nothing runs twice).

Writes that must survive a failover (a package's charge, the chatbot's dedupe and commit) are
queued `durable`: with `wait_replicas` set, a batch carrying one ends with `WAIT n timeout`, so
their callers hear "done" only once n replicas have the batch (one replica round trip per batch,
shared by every caller in it); fewer in time fails those callers with `NotReplicated`, an outage
(503). A READONLY reply (a demoted master, reached through an address that did not move) is an
outage too: the connection is dropped, so the next batch connects afresh.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
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


class NotReplicated(RedisConnectionError):
    """A durable write reached the master but not `wait_replicas` replicas within the timeout: a
    failover now could lose it, so its caller is told the backend is unavailable (it may have
    been applied: what is written durable is safe to try again)."""

    backend = "redis-replicas"  # its own outage (infra/outage.py), ended by a WAIT that succeeds


def _demoted(reply: Any) -> bool:
    """A reply that says this server takes no writes now: a replica (READONLY), or a master
    without the replicas its `min-replicas-to-write` asks for (NOREPLICAS, as an old master has
    once the sentinels moved its replicas to the new one)."""
    return isinstance(reply, ReadOnlyError) or (
        isinstance(reply, ResponseError) and str(reply).startswith("NOREPLICAS")
    )


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

    def __init__(
        self, r: aioredis.Redis, scripts: dict[str, str], *, wait_replicas: int = 0, wait_timeout: float = 0.5
    ) -> None:
        self.r = r
        self.scripts = dict(scripts)  # name → Lua source
        self.wait_replicas = wait_replicas  # replicas a durable write waits for (0: none)
        self.wait_ms = max(1, round(wait_timeout * 1000))
        self._durable: set[asyncio.Future[Any]] = set()  # queued durable writes, until they are sent
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

    def call(self, command: str, *args: Any, durable: bool = False) -> asyncio.Future[Any]:
        """Queue one command for the next batch; await the future for its reply. `durable`: the
        reply waits for `wait_replicas` replicas to have it (when set)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if durable and self.wait_replicas:
            self._durable.add(fut)
        if not self._ops:
            if self._last < SMALL and loop.time() - self._ended < BUSY:
                loop.call_later(LINGER, self._start_flush, loop)
            else:
                loop.call_soon(self._start_flush, loop)
        self._ops.append((command, args, fut))
        return fut

    def script(
        self, name: str, keys: list[str], args: list[Any], *, durable: bool = False
    ) -> asyncio.Future[Any]:
        return self.call("EVALSHA", name, len(keys), *keys, *args, durable=durable)

    async def replicated(self) -> None:
        """NotReplicated unless `wait_replicas` replicas have every write sent so far (a probe:
        the backend is back for durable writes only when they can be replicated again)."""
        if self.wait_replicas:
            await self.call("PING", durable=True)

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
                    self._durable.discard(fut)
                    if not fut.done():
                        fut.set_exception(exc)
                return
            except asyncio.CancelledError:  # shutting down: nobody waits forever
                for _, _, fut in ops:
                    self._durable.discard(fut)
                    fut.cancel()
                raise
            readonly = next((r for r in results if _demoted(r)), None)
            if readonly is not None:  # a demoted master: reconnect, and an outage until a master answers
                if self._conn is not None:
                    await self._conn.disconnect(nowait=True)
                outages.down(backend_of(readonly) or "redis", readonly)
            short = self._short_of(ops, results)
            if short is not None and self._conn is not None:
                # Too few replicas: perhaps this is a master the sentinels have just replaced (it
                # keeps taking writes, and loses them, until they demote it): connect afresh.
                await self._conn.disconnect(nowait=True)
            if readonly is None:
                outages.up("redis")
                if short is None and len(results) > len(ops):  # a WAIT that heard enough replicas
                    outages.up(NotReplicated.backend)
            results = results[: len(ops)]  # without the WAIT's reply
            again = []
            for op, result in zip(ops, results, strict=True):
                fut = op[2]
                if fut.done():
                    self._durable.discard(fut)
                    continue
                if attempt == 0 and isinstance(result, NoScriptError):
                    again.append(op)  # that script did not run: load the scripts, run it again
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                elif short is not None and fut in self._durable:
                    fut.set_exception(short)
                else:
                    fut.set_result(result)
                self._durable.discard(fut)
            if again:
                self._shas.clear()  # Redis restarted or flushed its script cache: load them again
            ops = again

    def _short_of(
        self, ops: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]], results: list[Any]
    ) -> Exception | None:
        """The batch's durable writes as an outage when its WAIT heard from too few replicas."""
        if len(results) == len(ops):  # no WAIT in this batch
            return None
        acked = results[-1]
        if isinstance(acked, int) and acked >= self.wait_replicas:
            return None
        exc = NotReplicated(
            f"{acked} of {self.wait_replicas} Redis replicas acknowledged within {self.wait_ms} ms"
            if isinstance(acked, int)
            else f"WAIT failed: {acked}"
        )
        outages.down(NotReplicated.backend, exc)
        return exc

    async def _roundtrip(self, ops: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> list[Any]:
        if self._conn is None:
            self._conn = await self.r.connection_pool.get_connection()
        conn = self._conn
        if not conn.is_connected:
            # Through connect(): a Sentinel-managed connection asks the sentinels where the master
            # is now. The reconnect inside send_packed_command would dial the old address again.
            await conn.connect()
        commands = [
            ("EVALSHA", self._shas[args[0]], *args[1:]) if command == "EVALSHA" else (command, *args)
            for command, args, _ in ops
        ]
        if self._durable and any(fut in self._durable for _, _, fut in ops):
            commands.append(("WAIT", self.wait_replicas, self.wait_ms))  # its reply comes last
        try:
            await conn.send_packed_command(pack(commands), check_health=False)
            results: list[Any] = []
            budget = READ_TIMEOUT + (self.wait_ms / 1000 if len(commands) > len(ops) else 0)
            async with asyncio.timeout(budget):  # one timer for the batch, not one per reply
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
