"""A lean HTTP/1.1 keep-alive client for the load generators.

Why not aiohttp's client: the load generator shares the machine's cores with the server it
measures, and aiohttp's client spends about as much CPU per request as a third of what the
server spends on a whole call event; what the generator burns, the server cannot have. This
client writes prepared bytes and reads each response by its Content-Length, for a fraction of
that. It speaks only what our server answers: HTTP/1.1, keep-alive, Content-Length bodies
(a chunked response is refused as an error).
"""

from __future__ import annotations

import asyncio


class HttpError(Exception):
    """The response was not one this client reads (or the connection broke mid-way)."""


class KeepAlive:
    """Up to `limit` kept-alive connections to one server; a request takes an idle one or opens
    another, and puts it back after a complete response."""

    def __init__(self, host: str, port: int, limit: int = 1024) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(limit)
        self._all: set[asyncio.StreamWriter] = set()

    def prepare(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
        """The request's bytes (built once per request by the caller, sent as they are)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request; HttpError when it could not be completed."""
        async with self._slots:
            if self._idle:
                reader, writer = self._idle.pop()
            else:
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                except OSError as exc:
                    raise HttpError(f"connect: {exc}") from exc
                self._all.add(writer)
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    raise HttpError("chunked response")
                at = lower.find(b"content-length:")
                length = int(lower[at + 15 : lower.index(b"\r\n", at)]) if at >= 0 else 0
                body = await reader.readexactly(length) if length else b""
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                writer.close()
                self._all.discard(writer)
                raise HttpError(f"{type(exc).__name__}: {exc}") from exc
            if b"connection: close" in lower:
                writer.close()
                self._all.discard(writer)
            else:
                self._idle.append((reader, writer))
            return status, body

    async def close(self) -> None:
        for w in self._all:
            w.close()
        self._all.clear()
        self._idle.clear()
