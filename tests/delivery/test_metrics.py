"""The delivery series of /metrics (mingpian/metrics.py) after real call events over SMPP: attempt
outcomes by channel, chains running in this worker, the store's queue and pending receipts, SMPP
sessions, chains taken over after a restart. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from mingpian.api.delivery import delivery_key
from simulators.smsc import GatewaySim, Rule
from tests.support.prometheus import Exposition, parse

from .support import CUSTOMER, AppFactory, call, seed_doc, settle

OTHER = "+8613912349999"  # a customer whose USSD receipt the gateway keeps back
WORKER = str(os.getpid())
SLOW = seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 8, "flash": 8}})


async def _scrape(client: Any) -> Exposition:
    resp = await client.get("/metrics")
    assert resp.status == 200
    return parse(await resp.text())


async def _submitted(client: Any, delivery: str) -> str:
    """Wait until the delivery's first attempt is out with no receipt yet; its message id."""
    store = client.app[delivery_key].store
    for _ in range(500):
        att = await store.attempt(delivery, 0)
        if att is not None and att.state == "submitted":
            return str(att.detail)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{delivery}: first attempt not submitted")


async def test_metrics_show_outcomes_chains_queue_and_sessions(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules(
        [Rule("fail", channel="ussd", destination=CUSTOMER[3:]), Rule("drop", destination=OTHER[3:])]
    )
    client = await make_app(SLOW)
    await call(client, "m1", "ringing")
    d = await settle(client, "m1:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [("ussd", "failed"), ("flash", "delivered")]
    await call(client, "m2", "ringing", callee=OTHER)
    message_id = await _submitted(client, "m2:ringing")

    out = await _scrape(client)
    attempts = "mingpian_delivery_attempts_total"
    assert out.value(attempts, channel="ussd", outcome="failed") == 1
    assert out.value(attempts, channel="flash", outcome="delivered") == 1
    assert len(out.series(attempts)) == 2
    assert out.value("mingpian_delivery_active_chains", worker=WORKER) == 1
    assert out.value("mingpian_delivery_queue_depth") == 1
    assert out.value("mingpian_delivery_receipts_pending") == 1
    assert out.value("mingpian_delivery_smpp_sessions", worker=WORKER, state="bound") == 1
    assert out.value("mingpian_delivery_smpp_sessions", worker=WORKER, state="configured") == 1
    assert out.value("mingpian_delivery_chains_taken_over_total") == 0
    assert out.value("mingpian_metrics_workers") == 1
    calls = out.value("mingpian_http_requests_total", method="POST", route="/api/calls", status="202")
    assert calls == 2

    # the kept-back receipt arrives: nothing is left running or waiting
    await client.app[delivery_key].receipts.accept(message_id, "DELIVRD")
    assert (await settle(client, "m2:ringing"))["state"] == "delivered"
    await asyncio.sleep(1.05)  # the queue's reading is reused for a second
    out = await _scrape(client)
    assert out.value(attempts, channel="ussd", outcome="delivered") == 1
    assert out.value("mingpian_delivery_active_chains", worker=WORKER) == 0
    assert out.value("mingpian_delivery_queue_depth") == 0
    assert out.value("mingpian_delivery_receipts_pending") == 0


async def test_a_restarted_worker_counts_the_chains_it_took_over_and_keeps_the_old_counts(
    make_app: AppFactory, gateway: GatewaySim
) -> None:
    gateway.set_rules([Rule("drop", channel="ussd")])
    first = await make_app(
        seed_doc(policy={"chain": ["ussd", "flash"], "timeouts": {"ussd": 1.5, "flash": 2}})
    )
    await call(first, "m3", "ringing")
    await _submitted(first, "m3:ringing")
    await first.close()  # stops while the USSD waits for its receipt
    second = await make_app()  # the same data_dir: one host
    d = await settle(second, "m3:ringing")
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [
        ("ussd", "timeout"),
        ("flash", "delivered"),
    ]
    out = await _scrape(second)
    assert out.value("mingpian_delivery_chains_taken_over_total") == 1
    assert out.value("mingpian_delivery_attempts_total", channel="ussd", outcome="timeout") == 1
    assert out.value("mingpian_delivery_attempts_total", channel="flash", outcome="delivered") == 1
    # the first app's request, kept in the folder's retired counts when it stopped
    assert out.value("mingpian_http_requests_total", method="POST", route="/api/calls", status="202") == 1
    assert out.value("mingpian_metrics_workers") == 1
