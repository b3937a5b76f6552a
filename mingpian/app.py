"""The application factory: builds the aiohttp app from Settings; nothing runs at import.

`create_app` sets up every feature in order and makes every link between features here (with
the helpers of wiring.py), so the order of start and stop, and who talks to whom, reads top to
bottom: cleanup contexts start in the order they are added and stop in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from aiohttp import web

from renderer import RenderError, TemplateStore
from renderer.fonts import use_font_dir

from . import console, h5, library, manual, media, openapi, readiness, reports, studio, wiring
from .api import chatbot as api_chatbot
from .api import delivery as api_delivery
from .api import docs as api_docs
from .api import legacy as api_legacy
from .api import templates as api_templates
from .keys import metrics_key, settings_key, templates_key
from .metrics import PUBLISH_EVERY, Metrics
from .middleware import hide_server_version, observe
from .settings import Settings


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics_view(request: web.Request) -> web.Response:
    """The host's metrics, whichever worker answers (mingpian/metrics.py)."""
    metrics = request.app[metrics_key]
    await metrics.refresh()
    return web.Response(
        text=metrics.expose(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def share_metrics(app: web.Application) -> AsyncIterator[None]:
    """This worker's metrics in `data_dir/metrics`, published every second, so that any worker
    answers /metrics for the host; on stop, its counts handed to the folder's retired file."""
    metrics = app[metrics_key]
    metrics.share(app[settings_key].data_dir / "metrics")

    async def publish() -> None:
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            metrics.publish()

    task = asyncio.get_running_loop().create_task(publish(), name="metrics-publish")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        metrics.unshare()


async def _warm_up(app: web.Application) -> None:
    """Compile every template before the first request rather than during it."""
    store = app[templates_key]
    for name in store.names():
        with contextlib.suppress(RenderError):  # reported when requested or linted
            store.get(name)


async def freeze_gc(app: web.Application) -> None:
    """Move everything alive at start-up out of the collector's way (gc.freeze): full
    collections otherwise rescan every module and compiled template on the render path.
    Only for a real server process (the CLI adds it), not for test apps."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings.from_env()
    app = web.Application(middlewares=[observe], client_max_size=settings.max_body_bytes)
    hide_server_version()
    app[settings_key] = settings
    use_font_dir(settings.assets_dir / "fonts")  # the deployment's fonts, wherever the code is installed
    app[templates_key] = TemplateStore(settings.template_dir, settings.reload_interval)
    app[metrics_key] = Metrics()
    app.cleanup_ctx.append(share_metrics)  # first, so it stops last: after every feature's last count
    openapi.init(app)
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readiness.readyz, name="readyz")
    app.router.add_get("/metrics", metrics_view, name="metrics")
    app.router.add_get("/api/openapi.json", openapi.openapi_view, name="openapi")
    api_templates.setup(app)
    api_docs.setup(app)
    library.setup(app)  # before media: renders read `media:<id>` pictures from its folder
    media.setup(app)
    api_legacy.setup(app)
    studio.setup(app)
    manual.setup(app)
    # The chatbot before delivery: its runtime, started first, is delivery's 5G channel.
    api_chatbot.setup(app, media=wiring.chatbot_media)  # uploads our media and library files
    api_delivery.setup(app, messaging=wiring.chatbot_messaging)
    app.cleanup_ctx.append(wiring.delivery_hears_chatbot)  # taps, replies and statuses, once both run
    h5.setup(app)  # the card page of short links: over delivery and the chatbot, once both run
    reports.setup(app)  # the reports page and the console: browser pages on the delivery API
    console.setup(app)
    return app
