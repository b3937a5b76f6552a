"""Fixtures for the delivery tests: the gateway simulator on a real socket, a seeded app bound to
it over SMPP on each storage backend, and the chatbot's MaaP simulator for 5G messages.
(`settings`, `client`, `redis_url`, `postgres_url` and `browser` are shared: tests/conftest.py.)

Every test that builds its app with `make_app` runs twice: on the embedded SQLite file, and on
PostgreSQL with the Redis counters (the fleet's backend) — the same assertions on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestServer

from delivery.open_store import open_store
from delivery.store import Store
from mingpian.api.delivery import delivery_key
from mingpian.app import create_app
from mingpian.settings import Settings
from simulators.maap import Simulator
from simulators.smsc import GatewaySim

from .support import RCS_PHONE, AppFactory, Client, seed_doc


@pytest.fixture
async def gateway() -> AsyncIterator[GatewaySim]:
    sim = GatewaySim(password="secret")
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that choose the delivery store (one database and Redis per test, kept across
    a 'restart' of the app within the test)."""
    if request.param == "sqlite":
        return {}
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "delivery_counters": "redis",
        "redis_url": request.getfixturevalue("redis_url"),
    }


@pytest.fixture
async def store(backend: dict[str, Any], tmp_path: Path) -> AsyncIterator[Store]:
    """The delivery store alone, started on the test's backend (no app around it)."""
    s = open_store(backend.get("database_url", ""), tmp_path / "delivery.db")
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
def make_app(
    aiohttp_client: Any, settings: Settings, gateway: GatewaySim, tmp_path: Path, backend: dict[str, Any]
) -> AppFactory:
    """Build (and start) a seeded app bound to the simulator; call again for a 'restarted' one."""

    async def make(seed: dict[str, Any] | None = None, port: int | None = None, **overrides: Any) -> Client:
        """`port`: serve there (public_base_url points at it, for callbacks such as Kannel's)."""
        path = tmp_path / "seed.yaml"
        if seed is not None or not path.exists():
            path.write_text(yaml.safe_dump(seed or seed_doc(), allow_unicode=True), "utf-8")
        if port is not None:
            overrides.setdefault("public_base_url", f"http://127.0.0.1:{port}")
        s = settings.with_(
            **{
                **backend,
                "delivery_seed": str(path),
                "delivery_smpp": f"127.0.0.1:{gateway.smpp_port}",
                "delivery_smpp_password": "secret",
                **overrides,
            }
        )
        kwargs = {"server_kwargs": {"port": port}} if port is not None else {}
        client: Client = await aiohttp_client(create_app(s), **kwargs)
        assert await client.app[delivery_key].smpp.wait_bound(5)
        return client

    return make


@pytest.fixture
async def maap(aiohttp_server: Any) -> AsyncIterator[tuple[Simulator, TestServer, list[str]]]:
    """The MaaP simulator, answering capability lookups (RCS_PHONE is the one 5G terminal); the
    third item lists the numbers it was asked about."""
    sim = Simulator(app_id="dl-app", app_key="dl-key", capable={"tel:" + RCS_PHONE})
    server = await aiohttp_server(sim.app())
    asked = sim.carrier.asked
    yield sim, server, asked
    await sim._close()
