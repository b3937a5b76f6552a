"""`GET /api/capabilities`: what this server can render and run, so the studio lights up a panel
only when its backend exists (other features register `?format=` handlers and routes in their
own `setup`, possibly after ours, so this is computed per request)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api_templates import formats_key
from ..keys import settings_key
from .assets import font_files

CHATBOT_MARKERS = ("/simulator", "/chatbot", "/maap")


def _route_paths(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        out.append((route.method, path))
    return out


def capabilities(app: web.Application) -> dict[str, Any]:
    routes = _route_paths(app)
    chat = sorted({f"{m} {p}" for m, p in routes
                   if any(k in p for k in CHATBOT_MARKERS) and m in ("GET", "POST")})
    return {
        "formats": sorted(app[formats_key]),
        "chatbot": bool(chat),
        "chatbotRoutes": chat,
        "liveReload": True,
        "fonts": [p.name for p in font_files(app[settings_key].assets_dir)],
    }


async def capabilities_view(request: web.Request) -> web.Response:
    return web.json_response(capabilities(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/capabilities", capabilities_view, name="capabilities")
