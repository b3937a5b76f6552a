"""Starting a fleet worker: readiness, and settings that cannot work refused with one line and
exit code 2 (never a traceback, never a half-started server)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings
from tests.support.client import ClientFactory
from tests.support.processes import free_port


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    base.update({"MINGPIAN_PORT": str(free_port()), "MINGPIAN_DATA_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "-m", "mingpian", "serve"],
        env=base,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {
                "MINGPIAN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                "MINGPIAN_DELIVERY_COUNTERS": "redis",
            },
            "database: ",
        ),
        ({"MINGPIAN_STORE": "redis", "MINGPIAN_REDIS_URL": "redis://127.0.0.1:1/0"}, "redis: "),
        ({"MINGPIAN_WORKERS": "2"}, "2 workers share no memory; they need MINGPIAN_DATABASE_URL"),
    ],
)
def test_unusable_settings_stop_serve_with_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    out = _serve(tmp_path, **env)
    assert out.returncode == 2, out
    assert says in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout and "listening" not in out.stdout


def test_wrong_database_password_is_one_line(tmp_path: Path, postgres_cluster: Any) -> None:
    url = (
        postgres_cluster.create_database()
        .replace("@", ":wrong@")
        .replace("postgresql://postgres", "postgresql://nobody")
    )
    out = _serve(
        tmp_path,
        MINGPIAN_DATABASE_URL=url,
        MINGPIAN_DELIVERY_COUNTERS="redis",
        MINGPIAN_REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert out.returncode == 2 and "database: " in out.stderr and "Traceback" not in out.stderr, out.stderr


async def test_readyz_says_ready_when_the_backends_answer(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert (
        body["status"] == "ready" and body["checks"]["backends"] == "ok" and body["checks"]["templates"] > 5
    )
    assert (await client.get("/healthz")).status == 200


async def test_readyz_answers_503_with_the_reason_while_a_backend_is_down(
    aiohttp_client: ClientFactory, settings: Settings, redis_url: str, postgres_url: str
) -> None:
    client = await aiohttp_client(
        create_app(settings.with_(database_url=postgres_url, delivery_counters="redis", redis_url=redis_url))
    )
    assert (await client.get("/readyz")).status == 200
    from redis import asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    r = aioredis.Redis.from_url(redis_url)
    with contextlib.suppress(RedisConnectionError):  # the server may go away as it answers
        await r.shutdown(nosave=True)
    await r.aclose()
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    assert body["error"] == "not_ready" and body["message"].startswith("redis: ")
    assert (await client.get("/healthz")).status == 200  # liveness is not readiness
