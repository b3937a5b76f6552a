"""The delivery HTTP API, one module per resource: enterprises (and keys, audit), their lines,
staff, cards and packages, call events and replies, reports and estimates, Kannel's callbacks.

Handlers parse and check the request (access.py: API keys; validation.py: JSON Schema and
numbers), call the process's `DeliveryService` (the `delivery` package) and shape the answer;
each module also returns the OpenAPI text of its routes. Every route needs an API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from delivery.errors import ConfigError, SeedError
from delivery.library.ingest import Limits
from delivery.service import DeliveryConfig, DeliveryService

from ...console import setup as setup_console
from ...keys import metrics_key, settings_key, templates_key
from ...library import library_dir
from ...metrics import watch_delivery
from ...openapi import add_paths, openapi_hooks_key
from ...reports import setup as setup_reports_page
from ...settings import Settings
from . import (
    brand,
    calls,
    doc_schemas,
    dryrun,
    enterprises,
    kannel,
    media,
    preview,
    reports,
    resources,
    session,
    staff_csv,
)
from .state import delivery_key

__all__ = ["delivery_key", "setup"]


def delivery_config(s: Settings) -> DeliveryConfig:
    return DeliveryConfig(
        database=s.data_dir / "delivery.sqlite3",
        synchronous=s.sqlite_synchronous,
        database_url=s.database_url,
        migrate=s.migrate,
        counters=s.delivery_counters,
        redis_url=s.redis_url,
        seed=s.delivery_seed,
        operator_key=s.delivery_operator_key,
        smpp=s.delivery_smpp,
        smpp_system_id=s.delivery_smpp_system_id,
        smpp_password=s.delivery_smpp_password,
        smpp_binds=s.delivery_smpp_binds,
        smpp_window=s.delivery_smpp_window,
        smpp_rate=s.delivery_smpp_rate,
        smpp_wait=s.delivery_smpp_wait,
        flash_gsm_dcs=s.delivery_flash_gsm_dcs,
        smpp_numbering=s.delivery_smpp_numbering,
        smpp_service_ton=s.delivery_smpp_service_ton,
        platform_sender=s.delivery_platform_sender,
        staff_max=s.delivery_staff_max,
        timeouts=dict(s.delivery_timeouts),
        ring_timeout=s.delivery_ring_timeout,
        lease=s.delivery_lease,
        capability_path=s.delivery_capability_path,
        capability_ttl=s.delivery_capability_ttl,
        kannel_url=s.delivery_kannel_url,
        kannel_username=s.delivery_kannel_username,
        kannel_password=s.delivery_kannel_password,
        kannel_channels=tuple(s.delivery_kannel_channels),
        kannel_token=s.delivery_kannel_token,
        callback_base=s.base_url,
        library_dir=library_dir(s),
        library_quota=s.library_quota,
        library_limits=Limits(s.library_max_bytes, s.library_max_pixels, s.library_max_seconds),
        ffmpeg=s.ffmpeg,
        fetch_timeout=s.library_fetch_timeout,
    )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    from ..chatbot import runtime_key  # set up before this feature (see create_app)

    runtime = app.get(runtime_key)
    messaging = runtime if runtime is not None and runtime.has_maap else None
    metrics = app[metrics_key]
    try:
        service = DeliveryService(
            delivery_config(app[settings_key]),
            app[templates_key],
            messaging,
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
    if runtime is not None:  # 5G replies and taps, in-process, after the chatbot's turn committed
        runtime.listeners.append(service.on_chatbot_event)
        runtime.status_listeners.append(service.revoker.on_status)
    app[delivery_key] = service
    unwatch = watch_delivery(metrics, service)
    try:
        yield
    finally:
        if runtime is not None:
            runtime.listeners.remove(service.on_chatbot_event)
            runtime.status_listeners.remove(service.revoker.on_status)
        await service.close()
        unwatch()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_lifecycle)
    paths = {}
    for module in (
        enterprises,
        brand,
        resources,
        calls,
        reports,
        kannel,
        media,
        preview,
        session,
        staff_csv,
        dryrun,
    ):
        paths.update(module.setup(app))
    paths.update(setup_reports_page(app))
    paths.update(setup_console(app))
    add_paths(app, paths, {**doc_schemas.documented(), "DeliveryBrandRequestRecord": brand.RECORD_SCHEMA})
    app[openapi_hooks_key].append(doc_schemas.complete)
