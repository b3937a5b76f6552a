"""Card media: images and videos rendered off the event loop, cached by content, served with
immutable caching. `setup(app)` wires formats, routes, OpenAPI and the worker pool.
See docs/media.md."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..keys import settings_key
from .api import MediaService, media_service_key, register
from .cache import MediaCache
from .docs import document
from .jobs import MediaJobs

__all__ = ["MediaService", "media_service_key", "setup"]


def setup(app: web.Application) -> None:
    """Call after api.templates.setup (it wraps the `rcs` format) and api.docs.setup."""
    settings = app[settings_key]
    cache = MediaCache(settings.data_dir / "media")
    jobs = MediaJobs(cache, settings.media_workers, settings.media_concurrency, settings.ffmpeg or None)
    register(app, MediaService(settings, cache, jobs))
    document(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        cache.ensure()
        jobs.start()
        yield
        await jobs.close()

    app.cleanup_ctx.append(lifecycle)
