"""`mingpian serve --workers N`: N worker processes on one port under gunicorn, the supervisor
aiohttp documents for production (`aiohttp.GunicornWebWorker`).

Gunicorn owns the socket and the workers: a worker that dies is replaced, SIGTERM stops them
gracefully (each stops accepting, lets in-flight requests finish within `shutdown_timeout`, and
runs the app's cleanup: delivery chains let go of their leases, so another worker resumes them
at once), SIGHUP restarts them one by one. Each worker builds its own app after the fork.

Several workers share nothing in memory, so they need the shared backends: the delivery store in
PostgreSQL, the chatbot store, the delivery counters and media specs and jobs in Redis;
`shared_state_problem` says what is missing.
"""

from __future__ import annotations

import math
from typing import Any

from gunicorn.app.base import BaseApplication

from .app import create_app, freeze_gc
from .settings import Settings


def shared_state_problem(settings: Settings) -> str | None:
    """Why these settings cannot run several workers, or None."""
    missing = []
    if not settings.database_url:
        missing.append("MINGPIAN_DATABASE_URL=postgresql://…")
    if settings.store != "redis":
        missing.append("MINGPIAN_STORE=redis")
    if settings.delivery_counters != "redis":
        missing.append("MINGPIAN_DELIVERY_COUNTERS=redis")
    if settings.media_store != "redis":
        missing.append("MINGPIAN_MEDIA_STORE=redis")
    if not missing:
        return None
    return f"{settings.workers} workers share no memory; they need " + ", ".join(missing)


class WorkerPool(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        for key, value in {
            "bind": f"{s.host}:{s.port}",
            "workers": s.workers,
            "worker_class": "aiohttp.GunicornWebWorker",
            "graceful_timeout": math.ceil(s.shutdown_timeout),  # gunicorn takes whole seconds
            "timeout": max(30, math.ceil(s.shutdown_timeout) + 10),
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level.lower(),
            "proc_name": "mingpian",
        }.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """In each worker, after the fork: its own app (nothing started in the parent is shared)."""
        app = create_app(self.settings)
        app.on_startup.append(freeze_gc)
        return app
