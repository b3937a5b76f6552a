"""A small HTTP/1.1 keep-alive client for the one hot outbound call: sending replies to the MaaP.

Why not aiohttp's client here: measured on the chatbot path (aiohttp 3.14, CPython 3.11,
loopback, 32 sends in flight), even a tuned `ClientSession` (one `ClientTimeout`, pre-encoded
`yarl.URL`, no cookie jar, auto-headers or decompression) costs ~100–115 µs of client CPU per
POST against ~55 µs for this client; end to end that is ~50 µs, about a tenth of a turn's
~450–500 µs of server CPU, and the turn rate is bound by server CPU. Tuning the connector
bought nothing measurable. This client does only what the send API needs — POST a body on a
pooled keep-alive connection, read the status, headers and a Content-Length or chunked body.
Anything unexpected closes the connection and raises, and the outbox retries (same message ID,
so a request that did reach the MaaP is deduplicated there). Token requests and capability
lookups stay on aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024


class HttpError(Exception):
    """Transport-level failure (connect, protocol, timeout); the request may or may not have arrived."""


_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, HttpError)


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class Http1Client:
    def __init__(self, max_idle_per_host: int = 64) -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = defaultdict(list)
        self.max_idle = max_idle_per_host
        self._ssl = ssl.create_default_context()

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"unsupported URL {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        head = [f"POST {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            return await asyncio.wait_for(self._exchange(key, data), timeout)
        except TimeoutError:
            raise HttpError(f"no answer within {timeout} s") from None

    async def _exchange(self, key: tuple[str, str, int], data: bytes) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            idle = self._idle[key]
            reused = bool(idle)
            conn = idle.pop() if idle else await self._connect(key)
            try:
                conn.writer.write(data)
                status, headers, body, keep = await self._read(conn.reader)
            except _BROKEN as exc:
                conn.close()
                if (
                    reused
                    and attempt == 0
                    and isinstance(exc, asyncio.IncompleteReadError)
                    and not exc.partial
                ):
                    continue  # the server had closed this idle connection: once more on a new one
                raise HttpError(f"{type(exc).__name__}: {exc}") from None
            except BaseException:  # cancelled mid-exchange: the connection state is unknown
                conn.close()
                raise
            if keep and len(self._idle[key]) < self.max_idle:
                self._idle[key].append(conn)
            else:
                conn.close()
            return status, headers, body
        raise HttpError("connection closed by the server")

    async def _connect(self, key: tuple[str, str, int]) -> _Conn:
        scheme, hostname, port = key
        try:
            reader, writer = await asyncio.open_connection(
                hostname, port, ssl=self._ssl if scheme == "https" else None, limit=MAX_HEADER_BYTES
            )
        except OSError as exc:
            raise HttpError(f"connect to {hostname}:{port} failed: {exc}") from None
        return _Conn(reader, writer)

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # no trailers expected
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise HttpError("response body too large")
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY_BYTES:
                raise HttpError("response body too large")
            body = await reader.readexactly(length)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await reader.read(MAX_BODY_BYTES)  # delimited by the connection's end
            keep = False
        return status, headers, body, keep
