"""Live reload: `GET /api/templates/{name}/events` is a Server-Sent Events stream that says
`changed` whenever any file of the template folder changes.

Polling `TemplateStore.stamp` (names, mtimes, sizes) every 100 ms is portable (no inotify),
costs a few stat calls per open page, and keeps a save → preview delay to a few hundred ms: on a
change the stream rebuilds the template at once (`TemplateStore.refresh`), so the page's next
requests get the new build without waiting out the store's `reload_interval`.
Streams end cleanly when the client goes away (checked every poll, not only on the next write)
and when the server shuts down (an on_shutdown hook wakes every stream so none holds the
graceful-shutdown timeout).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from renderer import TemplateInvalid, TemplateNotFound, TemplateStore

from ..keys import templates_key

POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0  # proxies drop idle connections; a comment line keeps them open
RETRY_MS = 1000  # how soon the browser reconnects after a drop


@dataclass
class Streams:
    """Open event streams, and the signal that tells them the server is stopping."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    open: set[web.StreamResponse] = field(default_factory=set)


streams_key = web.AppKey("studio_streams", Streams)


def _event(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _state(store: TemplateStore, name: str, *, fresh: bool = False) -> dict[str, object]:
    try:
        t = store.refresh(name) if fresh else store.get(name)
    except TemplateInvalid as exc:
        return {"template": name, "ok": False, "error": exc.to_json()}
    return {"template": name, "ok": True, "templateVersion": t.version}


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def template_events(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    store = request.app[templates_key]
    streams = request.app[streams_key]
    stamp = store.stamp(name)  # unknown template → 404 JSON before the stream starts
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    streams.open.add(resp)
    try:
        await resp.prepare(request)
        await resp.write(f"retry: {RETRY_MS}\n".encode() + _event("ready", _state(store, name)))
        last_write = time.monotonic()
        while not streams.stopping.is_set() and not _gone(request):
            try:
                await asyncio.wait_for(streams.stopping.wait(), POLL_SECONDS)
                break
            except TimeoutError:
                pass
            try:
                now_stamp = store.stamp(name)
            except TemplateNotFound:
                await resp.write(_event("gone", {"template": name}))
                break
            if now_stamp != stamp:
                stamp = now_stamp
                # Rebuilt now (not after reload_interval): the page's next GET sees the new files.
                await resp.write(_event("changed", _state(store, name, fresh=True)))
                last_write = time.monotonic()
            elif time.monotonic() - last_write > KEEPALIVE_SECONDS:
                await resp.write(b": keepalive\n\n")
                last_write = time.monotonic()
    except ConnectionError:
        pass  # the browser went away mid-write: nothing to tell anyone
    finally:
        streams.open.discard(resp)
    return resp


async def _stop_streams(app: web.Application) -> None:
    app[streams_key].stopping.set()


def setup(app: web.Application) -> None:
    app[streams_key] = Streams()
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/api/templates/{name}/events", template_events, name="studio_events")
