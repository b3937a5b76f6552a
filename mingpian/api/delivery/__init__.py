"""The delivery HTTP API, one module per resource: enterprises (and keys, audit), their lines,
staff, cards and packages, call events and replies, reports and estimates, Kannel's callbacks.

Handlers parse and check the request (access.py: API keys; validation.py: JSON Schema and
numbers), call the process's `DeliveryService` (the `delivery` package) and shape the answer;
each module also returns the OpenAPI text of its routes. Every route needs an API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

import asyncpg
from aiohttp import web

from delivery.config import DeliveryConfig
from delivery.errors import ConfigError, SeedError
from delivery.gateways.rcs import Messaging
from delivery.library.ingest import Limits
from delivery.service import DeliveryService
from infra.settingrow import config_from

from ...keys import metrics_key, settings_key, templates_key
from ...library import library_dir
from ...metrics import watch_delivery
from ...openapi import add_paths, openapi_hooks_key
from ...settings import Settings
from . import (
    brand,
    calls,
    cardsms,
    doc_schemas,
    dryrun,
    enterprises,
    experiments,
    kannel,
    links,
    media,
    preview,
    refusals,
    reports,
    resources,
    reviews,
    session,
    staff_csv,
)
from .state import delivery_key

__all__ = ["delivery_key", "setup"]


def delivery_config(s: Settings) -> DeliveryConfig:
    """Delivery's own rows (`delivery_*`, `database_url`) are read by name; the rest is shared
    with other features (the chatbot section's store settings, the media library's and ffmpeg)
    or derived by the server (its data folder, where Kannel reaches it), spelled out here."""
    return config_from(
        DeliveryConfig,
        s,
        "delivery_",
        database=s.data_dir / "delivery.sqlite3",
        synchronous=s.sqlite_synchronous,
        migrate=s.migrate,
        redis_url=s.redis_url,
        redis_wait=(s.redis_wait_replicas, s.redis_wait_timeout),
        callback_base=s.base_url,
        library_dir=library_dir(s),
        library_quota=s.library_quota,
        library_limits=Limits(s.library_max_bytes, s.library_max_pixels, s.library_max_seconds),
        ffmpeg=s.ffmpeg,
        fetch_timeout=s.library_fetch_timeout,
    )


async def _lifecycle(
    app: web.Application, messaging: Callable[[web.Application], Messaging | None]
) -> AsyncIterator[None]:
    metrics = app[metrics_key]
    try:
        service = DeliveryService(
            delivery_config(app[settings_key]),
            app[templates_key],
            messaging(app),
            on_outcome=metrics.delivery_attempts.inc,  # (channel, outcome)
        )
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    try:
        await service.start()
    except (SeedError, ConfigError) as exc:
        await service.close()
        raise SystemExit(str(exc)) from None
    except (OSError, asyncpg.PostgresError) as exc:  # the database cannot be reached or refused us
        await service.close()
        raise SystemExit(f"delivery database cannot start: {exc}") from None
    app[delivery_key] = service
    unwatch = watch_delivery(metrics, service)
    try:
        yield
    finally:
        await service.close()
        unwatch()


def _no_messaging(app: web.Application) -> None:
    return None


def setup(
    app: web.Application, messaging: Callable[[web.Application], Messaging | None] = _no_messaging
) -> None:
    """The delivery API; `messaging(app)`, asked at start, is its 5G channel (None: none)."""
    app.cleanup_ctx.append(partial(_lifecycle, messaging=messaging))
    paths = {}
    for module in (
        enterprises,
        brand,
        resources,
        reviews,
        experiments,
        refusals,
        calls,
        reports,
        kannel,
        media,
        preview,
        session,
        staff_csv,
        dryrun,
        links,
        cardsms,
    ):
        paths.update(module.setup(app))
    add_paths(app, paths, {**doc_schemas.documented(), "DeliveryBrandRequestRecord": brand.RECORD_SCHEMA})
    app[openapi_hooks_key].append(doc_schemas.complete)
