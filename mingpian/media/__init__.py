"""Card media: images and videos rendered off the event loop, cached by content, served with
immutable caching, made again from their render specs when a host lacks them, pruned by size
and age. `setup(app)` wires formats, routes, OpenAPI, the worker pool and the pruner.
See docs/media.md."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from ..keys import settings_key, templates_key
from ..library import library_dir
from ..settings import Settings
from .api import MediaService, media_service_key, register
from .cache import MediaCache
from .docs import document
from .fleet import RedisBoard, RedisLink, RedisSpecs
from .jobs import JobBoard, LocalBoard, MediaJobs
from .plans import Planner
from .prune import Pruner
from .specs import LocalSpecs, SpecStore

__all__ = ["MediaService", "media_service_key", "setup"]


def _stores(settings: Settings, cache: MediaCache) -> tuple[SpecStore, JobBoard, RedisLink | None]:
    """The one place that picks where specs and jobs are shared (`media_store`)."""
    local = LocalSpecs(cache)
    if settings.media_store == "redis":
        link = RedisLink(settings.redis_url)
        return RedisSpecs(link, local, settings.media_spec_max_age), RedisBoard(link, settings.base_url), link
    return local, LocalBoard(), None


def setup(app: web.Application) -> None:
    """Call after api.templates.setup (it wraps the `rcs` format) and api.docs.setup."""
    settings = app[settings_key]
    cache = MediaCache(settings.data_dir / "media")
    specs, board, link = _stores(settings, cache)
    jobs = MediaJobs(
        cache,
        settings.media_workers,
        settings.media_concurrency,
        settings.ffmpeg or None,
        specs=specs,
        board=board,
        base_url=settings.base_url,
        fonts=settings.assets_dir / "fonts",
        time_limit=settings.media_time_limit,
        video_time_limit=settings.media_video_time_limit,
    )
    planner = Planner(cache, settings.assets_dir, library_dir(settings))
    register(app, MediaService(settings, cache, jobs, specs, planner, app[templates_key]))
    document(app)
    pruner = Pruner(
        cache, settings.media_cache_max_bytes, settings.media_cache_max_age, settings.media_spec_max_age
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        cache.ensure()
        if link is not None:
            await link.open()
        jobs.start()
        pruning = (
            asyncio.ensure_future(pruner.every(settings.media_prune_interval))
            if settings.media_prune_interval > 0
            else None
        )
        yield
        if pruning is not None:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
        await jobs.close()
        await board.close()
        if link is not None:
            await link.close()

    app.cleanup_ctx.append(lifecycle)
