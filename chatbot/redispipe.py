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
from typing import Any

import redis.asyncio as aioredis


class AutoPipeline:
    def __init__(self, r: aioredis.Redis, scripts: dict[str, str]) -> None:
        self.r = r
        self.scripts = dict(scripts)  # name → Lua source
        self._shas: dict[str, str] = {}
        self._ops: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def load_scripts(self) -> None:
        for name, src in self.scripts.items():
            self._shas[name] = await self.r.script_load(src)

    def call(self, command: str, *args: Any) -> asyncio.Future[Any]:
        """Queue one command for this loop iteration's pipeline; await the future for its reply."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._ops:
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
        ops, self._ops = self._ops, []
        for attempt in range(2):
            if not self._shas and any(c == "EVALSHA" for c, _, _ in ops):
                await self.load_scripts()
            pipe = self.r.pipeline(transaction=False)
            for command, args, _ in ops:
                if command == "EVALSHA":
                    pipe.execute_command("EVALSHA", self._shas[args[0]], *args[1:])
                else:
                    pipe.execute_command(command, *args)
            try:
                results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # connection trouble: every caller gets the error
                for _, _, fut in ops:
                    if not fut.done():
                        fut.set_exception(exc)
                return
            again = []
            for op, result in zip(ops, results, strict=True):
                fut = op[2]
                if fut.done():
                    continue
                if attempt == 0 and isinstance(result, Exception) and "NOSCRIPT" in str(result):
                    again.append(op)  # that script did not run: load the scripts and run it again
                elif isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
            if not again:
                return
            ops = again
            await self.load_scripts()  # Redis restarted or flushed its script cache

    async def drain(self) -> None:
        """Wait for the batches in flight (before closing the connection pool)."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)
