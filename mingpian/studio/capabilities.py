"""`GET /api/capabilities`: what this server can render and run, so the studio lights up a panel
only when its backend exists (other features register `?format=` handlers and routes in their
own `setup`, possibly after ours, so this is computed per request)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.templates import formats_key
from ..keys import settings_key
from .assets import font_files
from .chat import flow_store


def capabilities(app: web.Application) -> dict[str, Any]:
    flows = flow_store(app)
    bots = sorted(flows.flows) if flows is not None else []
    return {
        "formats": sorted(app[formats_key]),
        "chatbot": bool(bots),
        "bots": bots,
        "chatEndpoint": "/api/studio/chat" if bots else None,
        "liveReload": True,
        "fonts": [p.name for p in font_files(app[settings_key].assets_dir)],
    }


async def capabilities_view(request: web.Request) -> web.Response:
    return web.json_response(capabilities(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/capabilities", capabilities_view, name="capabilities")
