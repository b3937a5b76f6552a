"""Is this process ready to serve, and if not, why: the shared backends it was configured with
(PostgreSQL, Redis), its SMPP binds, its templates. `serve` asks before it starts (one line and
exit 2 instead of a half-started server), with connections of its own; `/readyz`, asked by a
load balancer every few seconds, asks over the running service's pool and client instead.
`/healthz` stays liveness: the process answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from .api.delivery import delivery_key
from .errors import ApiError
from .httpjson import json_response
from .keys import settings_key, templates_key
from .settings import Settings

TIMEOUT = 3.0  # seconds a backend may take to answer a readiness probe


def redis_needed(s: Settings) -> bool:
    return "redis" in (s.store, s.delivery_counters, s.media_store)


async def database_problem(url: str) -> str | None:
    import asyncpg  # deferred: the driver is loaded only where a PostgreSQL database is configured

    from delivery.drivers.pghosts import HostChooser

    try:  # the writable server, when the URL names several (as the store connects)
        conn = await HostChooser(url).connect(timeout=TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"database: {type(exc).__name__}: {exc}"[:300]
    await conn.close()
    return None


async def redis_problem(url: str) -> str | None:
    from redis.exceptions import RedisError  # deferred: loaded only where Redis is configured

    from infra import redisconn

    # One address or the master Sentinel names: ready means the master answers.
    r = redisconn.client(url, max_connections=1, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        await r.ping()
    except (OSError, RedisError) as exc:
        return f"redis: {type(exc).__name__}: {exc}"[:300]
    finally:
        await r.aclose()
    return None


async def backend_problems(s: Settings) -> list[str]:
    checks = []
    if s.database_url:
        checks.append(database_problem(s.database_url))
    if redis_needed(s):
        checks.append(redis_problem(s.redis_url))
    return [p for p in await asyncio.gather(*checks) if p]


def refuse_unreachable_backends(s: Settings) -> None:
    """Before `serve` starts: SystemExit with one line when a configured backend does not answer."""
    problems = asyncio.run(backend_problems(s))
    if problems:
        raise SystemExit("cannot start: " + "; ".join(problems))


async def _probe(name: str, check: Awaitable[None]) -> str | None:
    try:
        await asyncio.wait_for(check, TIMEOUT)
    except Exception as exc:  # any failure to answer is the reason, never a 500
        return f"{name}: {type(exc).__name__}: {exc}"[:300]
    return None


# What `/readyz` says it waits for while the database takes no writes: a stable code (from the
# driver, delivery/drivers/pghosts.py) and the sentence an operator reads.
DATABASE_WAITS = {
    "database_not_writable": "正在等待可写的 PostgreSQL 主库：连得上的服务器都是只读的备库"
    "（主库故障切换中），备库提升为主库后自动恢复",
    "database_unreachable": "正在等待 PostgreSQL：连不上数据库服务器，或它没有按时应答；它恢复后自动继续",
}


async def _database(check: Awaitable[None]) -> tuple[str | None, Any]:
    """The store's check: (the problem for the message or None, what `checks.database` says)."""
    from delivery.drivers.pghosts import waiting_for  # deferred: asyncpg, where PostgreSQL is used

    try:
        await asyncio.wait_for(check, TIMEOUT)
    except Exception as exc:  # any failure to answer is the reason, never a 500
        code = waiting_for(exc)
        detail = f"{type(exc).__name__}: {exc}"[:300]
        said = {"state": "waiting", "code": code, "message": DATABASE_WAITS[code], "detail": detail}
        return f"database: {DATABASE_WAITS[code]} ({detail})", said
    return None, "ok"


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    s = app[settings_key]
    checks: dict[str, Any] = {}
    service = app.get(delivery_key)
    if service is None:
        problems = ["delivery: not started"]
    else:  # the service's own pool and client: a probe opens no connection of its own
        (database, checks["database"]), redis = await asyncio.gather(
            _database(service.store.ping()), _probe("redis", service.counters.ping())
        )
        problems = [p for p in (database, redis) if p]
        if redis_needed(s) and s.delivery_counters != "redis":  # Redis only for chatbot state or media
            problems += [p for p in [await redis_problem(s.redis_url)] if p]
    checks["backends"] = list(problems) or "ok"
    if service is not None and service.smpp is not None:
        checks["smpp"] = service.smpp.health()
        if not service.smpp.bound:
            problems.append("smpp: no session bound to the SMSC")
    templates = len(app[templates_key].names())
    checks["templates"] = templates
    if not templates:
        problems.append("templates: none found in template_dir")
    if problems:
        raise ApiError(503, "not_ready", "; ".join(problems), headers={"Retry-After": "1"}, checks=checks)
    return json_response({"status": "ready", "checks": checks})
