"""Card SMS against plain SMS, in one run: call events/s through the `cardsms` chain (capability
check and parse link from the card-SMS platform, one SMS, the SMSC's receipt and the vendor's
render receipt over a signed HTTP callback) and through the `sms` chain (the hang-up card as
SMS text, its segments, the SMSC's receipts), same process, same machine, same events.

This process runs the delivery service (intake, chains, store, counters) and the callback routes
of the server (HTTP, the real handlers); a child process runs the SMSC simulator (SMPP) and the
card-SMS platform simulator (HTTP), wired to each other, as the SMSC and the vendor are elsewhere.
CPU µs/event is this process's only. An event counts when its delivery is final: `displayed` for
card SMS (the render receipt came back), `delivered` for SMS. It also prints the platform calls
per 100 recipients (capability checks and parse-link requests, gathered per ≤ 100).

Run: .venv/bin/python bench/cardsms_bench.py [--events 2000] [--concurrency 64] [--runs 2]
     [--backend sqlite|postgres] (postgres: a throwaway PostgreSQL, fsync on, and redis-server)
     [--window 0.05] (the gathering window, delivery_cardsms_batch_window)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from aiohttp import web  # noqa: E402

from delivery.service import DeliveryConfig, DeliveryService  # noqa: E402
from mingpian.api.delivery import cardsms as cardsms_routes  # noqa: E402
from mingpian.api.delivery.state import delivery_key  # noqa: E402
from mingpian.middleware import json_errors  # noqa: E402
from renderer import TemplateStore  # noqa: E402
from simulators.cardsms import CardSmsSim  # noqa: E402
from simulators.servers import PostgresCluster, RedisServer, pg_bin  # noqa: E402
from simulators.smsc import GatewaySim  # noqa: E402

LINE = "+8613800000001"


def _seed(folder: Path, chain: list[str]) -> Path:
    now = time.time()
    sample = json.loads((ROOT / "card_templates" / "courier-hangup" / "sample.json").read_text("utf-8"))
    doc = {
        "enterprises": [
            {
                "id": "sf",
                "name": "顺丰速运",
                "signature": "顺丰速运",
                "policy": {"chain": chain, "timeouts": {"cardsms": 60, "sms": 60}},
                "lines": [{"number": LINE, "kind": "mobile", "verified": True}],
                "cards": [{"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": sample}],
                "packages": [
                    {
                        "id": "p",
                        "kind": "pool",
                        "units": 10**9,
                        "price": 1,
                        "policy": "stop",
                        "valid_from": now - 10,
                        "valid_to": now + 10**6,
                    }
                ],
            }
        ]
    }
    path = folder / "seed.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return path


@contextlib.contextmanager
def backend(kind: str) -> Iterator[dict[str, Any]]:
    if kind == "sqlite":
        yield {}
        return
    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries found")
    pg = PostgresCluster(bindir, durable=True)
    pg.start()
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="mp-cs-redis-")))
    redis.start()
    try:  # a database per run (each run's SMSC simulator numbers its messages from 1 again)
        yield {"database_url": pg.create_database, "counters": "redis", "redis_url": redis.url}
    finally:
        redis.stop()
        pg.stop()


async def serve_simulators(delay: float) -> None:
    """The child process: the SMSC and the card-SMS platform, wired together (a message the SMSC
    reports delivered reaches the platform, which draws it and calls back). Prints its ports."""
    smsc = GatewaySim(password="secret", verify=False)
    port = await smsc.start()
    platform = CardSmsSim(callback_secret="cb")
    platform.delay = delay
    smsc.on_delivered.append(platform.delivered)
    runner = web.AppRunner(platform.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"smpp": port, "platform": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()


async def run(
    chain: list[str], events: int, concurrency: int, extra: dict[str, Any], offset: int
) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-simulators", stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    ports = json.loads(await child.stdout.readline())
    platform_url = f"http://127.0.0.1:{ports['platform']}"
    folder = Path(tempfile.mkdtemp(prefix="mp-cs-bench-"))
    config = DeliveryConfig(
        database=folder / "delivery.sqlite3",
        seed=str(_seed(folder, chain)),
        smpp=f"127.0.0.1:{ports['smpp']}",
        smpp_password="secret",
        cardsms_url=platform_url,
        cardsms_app_key="cs-key",
        cardsms_app_secret="cs-secret",
        cardsms_callback_secret="cb",
        **{k: v() if callable(v) else v for k, v in extra.items()},
    )
    service = DeliveryService(config, TemplateStore(ROOT / "card_templates"), None)
    await service.start()
    assert service.smpp is not None and await service.smpp.wait_bound(5)
    callbacks = web.Application(middlewares=[json_errors])
    callbacks[delivery_key] = service
    cardsms_routes.setup(callbacks)
    cb_runner = web.AppRunner(callbacks)
    await cb_runner.setup()
    await web.TCPSite(cb_runner, "127.0.0.1", 0).start()
    people = [f"+86139{offset + i:08d}" for i in range(events)]
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{cb_runner.addresses[0][1]}/api/cardsms/koomessage"
        await http.post(f"{platform_url}/control/callback", json={"url": url})
        await http.post(f"{platform_url}/control/phones", json={"numbers": dict.fromkeys(people, "HuaWei")})
        if "cardsms" in chain:  # the template, approved by every vendor before the clock starts
            assert service.cardsms is not None
            ent = await service.store.get("enterprise", "", "sf")
            card = await service.store.get("card", "sf", "hangup")
            assert ent is not None and card is not None
            await service.cardsms.register(ent, "hangup", 1, card)
            for _ in range(3000):
                doc = await service.cardsms.template_of("sf", "hangup", 1)
                if doc and all(v["state"] == "approved" for v in doc["vendors"].values()):
                    break
                await asyncio.sleep(0.01)
            else:
                raise SystemExit(f"the vendors did not approve the template within 30 s: {doc}")
        final = "displayed" if "cardsms" in chain else "delivered"
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                event = {"call_id": f"c{offset + i}", "caller": LINE, "callee": people[i], "phase": "ended"}
                await service.intake.accept(event, None)

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(events)))
        await service.chains.idle(timeout=300)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        calls = (await (await http.get(f"{platform_url}/control/state")).json())["calls"]
    states: dict[str, int] = {}
    why: dict[str, str] = {}
    for i in range(events):
        d = await service.store.delivery(f"c{offset + i}:ended")
        states[d.state if d else "lost"] = states.get(d.state if d else "lost", 0) + 1
        if d is not None and d.state not in ("displayed", "delivered"):
            why.setdefault(d.state, d.reason)
    if why:
        print(f"    not final as expected: {why}")
    await service.close()
    await cb_runner.cleanup()
    child.terminate()
    await child.wait()
    return {
        "rate": events / wall,
        "cpu_us": cpu / events * 1e6,
        "final": states.get(final, 0),
        "states": states,
        "per100": (calls["check"] + calls["resolve"]) / events * 100,
        "calls": calls,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--window", type=float, default=0.05, help="delivery_cardsms_batch_window, seconds")
    ap.add_argument("--serve-simulators", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_simulators:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_simulators(0.0))
        return
    print(f"card SMS vs SMS: {a.events} hang-up events per run, closed loop c={a.concurrency}, {a.backend}, "
          "simulators in a child process; counted when the delivery is final")  # fmt: skip
    rates: dict[str, list[float]] = {"sms": [], "cardsms": []}
    with backend(a.backend) as extra:
        extra = {**extra, "cardsms_batch_window": a.window}
        offset = 0
        for i in range(a.runs):
            for name, chain in (("sms", ["sms"]), ("cardsms", ["cardsms", "sms"])):
                r = asyncio.run(run(chain, a.events, a.concurrency, extra, offset))
                offset += a.events
                rates[name].append(r["rate"])
                extra_text = (
                    f", platform calls {r['calls']['check']} checks + {r['calls']['resolve']} parse-link "
                    f"requests = {r['per100']:.2f} per 100 recipients"
                    if name == "cardsms"
                    else ""
                )
                print(
                    f"  run {i + 1} {name:8s}: {r['rate']:7.0f} events/s, {r['cpu_us']:5.0f} µs CPU/event, "
                    f"final {r['final']}/{a.events} {r['states']}{extra_text}"
                )
    sms, card = statistics.median(rates["sms"]), statistics.median(rates["cardsms"])
    print(
        f"median: sms {sms:.0f} events/s, cardsms {card:.0f} events/s, "
        f"cardsms/sms {card / sms:.2f} (target ≥ 0.80)"
    )


if __name__ == "__main__":
    main()
