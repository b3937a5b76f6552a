"""A funnel fact heard while PostgreSQL is down: whoever records it hears `Unavailable` (the
platform sends its report again), the fact is kept with the group commit's held writes and
counted once the database is back, and the platform's repeat then is not new."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from delivery.metering import day_of
from infra.outage import Unavailable, outages
from mingpian.api.delivery import delivery_key
from mingpian.app import create_app
from mingpian.settings import Settings
from simulators.servers import PostgresCluster
from simulators.smsc import GatewaySim
from tests.support.processes import running_cluster

from .support import call, seed_doc, settle


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of this module's own: its test stops and starts it."""
    yield from running_cluster()


@pytest.fixture
def pg(own_postgres: PostgresCluster) -> Iterator[PostgresCluster]:
    outages.clear()
    yield own_postgres
    with contextlib.suppress(Exception):  # a failed test must not leave it stopped
        own_postgres.resume()


async def test_a_fact_heard_during_an_outage_is_counted_once_after_it(
    aiohttp_client: Any,
    settings: Settings,
    gateway: GatewaySim,
    pg: PostgresCluster,
    redis_url: str,
    tmp_path: Path,
) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(seed_doc(), allow_unicode=True), "utf-8")
    s = settings.with_(
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{gateway.smpp_port}",
        delivery_smpp_password="secret",
        database_url=pg.create_database(),
        delivery_counters="redis",
        redis_url=redis_url,
    )
    client = await aiohttp_client(create_app(s))
    service = client.app[delivery_key]
    assert await service.smpp.wait_bound(5)
    await call(client, "fo1", "ringing")
    d = await settle(client, "fo1:ringing")
    att = next(a for a in d["attempts"] if a["state"] == "delivered")
    now = time.time()
    pg.halt("fast")
    with pytest.raises(Unavailable):
        await service.funnel.displayed(d["id"], att["step"], att["channel"], "sf", now, how="h5")
    pg.resume()
    await service.store.durable()  # the held fact commits with the next flush
    day = day_of(now)
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = await service.store.funnel_days("sf", day, day)
        if rows:
            break
        await asyncio.sleep(0.05)
    assert [(r["channel"], r["displayed"]) for r in rows] == [(att["channel"], 1)]
    # the platform's repeat (heard by the same process, which never learnt it was new)
    assert await service.funnel.displayed(d["id"], att["step"], att["channel"], "sf", now, how="h5") is False
    assert [r["displayed"] for r in await service.store.funnel_days("sf", day, day)] == [1]
