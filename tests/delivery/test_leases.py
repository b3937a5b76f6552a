"""The lease keeper on PostgreSQL: a chain that finished here is not taken for one another worker
took over (its row leaves `active_chains` with its final state, while its task may still be
counting an impression), and a chain another worker did take over still stops here."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mingpian.api.delivery import delivery_key
from mingpian.app import create_app
from mingpian.settings import Settings
from simulators.smsc import GatewaySim, Rule

from .support import OPERATOR, SF_LINE, auth, seed_doc, settle

T = Any
LEASE = 0.6  # s: the keeper runs every 0.2 s


async def _waiting_chain(
    aiohttp_client: T, settings: Settings, gateway: GatewaySim, tmp: Path, postgres_url: str, redis_url: str
) -> tuple[T, str, asyncio.Task[None]]:
    """A server on PostgreSQL whose one chain has handed its card over and waits for the receipt."""
    seed = tmp / "seed.yaml"
    policy = {"chain": ["ussd"], "timeouts": {"ussd": 30.0}}  # it waits for its receipt, nothing else
    seed.write_text(yaml.safe_dump(seed_doc(policy=policy), allow_unicode=True), "utf-8")
    s = settings.with_(
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{gateway.smpp_port}",
        delivery_smpp_password="secret",
        database_url=postgres_url,
        delivery_counters="redis",
        redis_url=redis_url,
        delivery_lease=LEASE,
    )
    client = await aiohttp_client(create_app(s))
    assert await client.app[delivery_key].smpp.wait_bound(5)
    gateway.rules = [Rule("deliver", delay=2.5)]
    resp = await client.post(
        "/api/calls",
        json={"call_id": "lease", "caller": SF_LINE, "callee": "+8613900000077", "phase": "ended"},
        headers=auth(OPERATOR),
    )
    assert resp.status == 202, await resp.text()
    end = time.monotonic() + 10
    while not gateway.submits and time.monotonic() < end:
        await asyncio.sleep(0.01)
    assert gateway.submits
    did = "lease:ended"
    return client, did, client.app[delivery_key].chains._tasks[did]


def _lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]


async def test_a_chain_finishing_here_is_not_taken_for_a_lost_lease(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, did, task = await _waiting_chain(
        aiohttp_client, settings, gateway, tmp_path, postgres_url, redis_url
    )
    service = client.app[delivery_key]
    caplog.set_level(logging.INFO, logger="mingpian.delivery")
    d = await service.store.delivery(did)
    assert d is not None
    # The chain's last write as the chain makes it, committed: its row leaves `active_chains`.
    # Its task lives on a while (here: until its receipt comes), as it does while it counts an
    # advertising card's impression; the keeper runs several rounds meanwhile.
    await service.chains._finish(d, "delivered", channel="ussd")
    await service.store.durable()
    await asyncio.sleep(4 * LEASE)
    assert _lost(caplog) == []
    outcome = await settle(client, did, timeout=10)
    assert outcome["state"] == "delivered"
    await asyncio.wait_for(asyncio.shield(task), 10)  # it ended on its own, not cancelled
    assert not task.cancelled() and _lost(caplog) == []


async def test_a_chain_another_worker_took_over_stops_here(
    aiohttp_client: T,
    settings: Settings,
    gateway: GatewaySim,
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, did, task = await _waiting_chain(
        aiohttp_client, settings, gateway, tmp_path, postgres_url, redis_url
    )
    service = client.app[delivery_key]
    caplog.set_level(logging.INFO, logger="mingpian.delivery")
    now = time.time()
    await service.store.release(service.chains.owner, [did])
    assert await service.store.claim_chains("another-worker", now, now + 3600, 10) == [did]
    # the keeper's next round finds the other owner and stops the chain here
    await asyncio.wait([task], timeout=4 * LEASE)
    assert task.cancelled()
    assert len(_lost(caplog)) == 1
