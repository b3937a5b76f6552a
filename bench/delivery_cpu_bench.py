"""CPU time per call event through the delivery service, in one process, without HTTP.

Intake → chain → compose → SMPP submit_sm at the gateway simulator (in this process too), with
the embedded SQLite store and counters. What it prints, CPU microseconds per event, moves little
when other programs share the machine (unlike events per second), so two versions of the code
can be compared on a busy host: run it on each, a few times, alternating, and compare medians.

Run: .venv/bin/python bench/delivery_cpu_bench.py [--events 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from delivery.service import DeliveryConfig, DeliveryService  # noqa: E402
from renderer import TemplateStore  # noqa: E402
from simulators.smsc import GatewaySim  # noqa: E402


def _seed(folder: Path) -> Path:
    now = time.time()
    sample = json.loads((ROOT / "card_templates" / "courier-hangup" / "sample.json").read_text("utf-8"))
    doc = {
        "enterprises": [
            {
                "id": "sf",
                "name": "顺丰速运",
                "signature": "顺丰速运",
                "policy": {"chain": ["ussd"], "timeouts": {"ussd": 30}},
                "lines": [{"number": "13800000001", "kind": "mobile", "verified": True}],
                "cards": [{"id": "pre", "phase": "ringing", "template": "courier-hangup", "data": sample}],
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


async def run(events: int) -> tuple[float, float]:
    """(CPU µs per event, events per second) for one run."""
    sim = GatewaySim(password="secret", verify=False)
    port = await sim.start()
    folder = Path(tempfile.mkdtemp(prefix="mp-cpu-bench-"))
    config = DeliveryConfig(
        database=folder / "delivery.sqlite3",
        seed=str(_seed(folder)),
        smpp=f"127.0.0.1:{port}",
        smpp_password="secret",
    )
    service = DeliveryService(config, TemplateStore(ROOT / "card_templates"), None)
    await service.start()
    assert service.smpp is not None and await service.smpp.wait_bound(5)
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with gate:
            event = {
                "call_id": f"c{i}",
                "caller": "+8613800000001",
                "callee": f"+86139{i:08d}",
                "phase": "ringing",
            }
            await service.intake.accept(event, None)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(events)))
    while len(sim.submits) < events:
        await asyncio.sleep(0.01)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await service.close()
    await sim.stop()
    return cpu / events * 1e6, events / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    print(f"delivery CPU bench: {a.events} ringing events per run, chain ussd, SQLite, simulator in-process")
    cpus = []
    for i in range(a.runs):
        cpu, rate = asyncio.run(run(a.events))
        cpus.append(cpu)
        print(f"  run {i + 1}: {cpu:.0f} µs CPU per event (simulator included), {rate:.0f} events/s")
    print(f"median: {statistics.median(cpus):.0f} µs CPU per event")


if __name__ == "__main__":
    main()
