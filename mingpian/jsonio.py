"""JSON in and out of the server, through orjson.

Serialising a carousel's messageList takes ~21 µs with the standard library and ~1.2 µs with
orjson; on the render path that is the difference between meeting the throughput target and
not. Output is UTF-8 with CJK unescaped, as the standard `ensure_ascii=False` would give.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def json_response(obj: Any, *, status: int = 200, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=content_type,
                        charset="utf-8", headers=headers)
