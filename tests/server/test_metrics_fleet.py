"""`mingpian serve --workers 2` for real (gunicorn, one port, PostgreSQL and Redis): a scrape of
/metrics, whichever worker answers it, reports the host's summed counters and each worker's
gauges; a worker killed with SIGKILL is replaced and its counts are kept."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mingpian.settings import PROJECT_ROOT
from tests.support.processes import free_port, wait_port
from tests.support.prometheus import Exposition, parse
from tests.support.templates import TEMPLATES

HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}
pytestmark = pytest.mark.slow


@pytest.fixture
def host(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[str]:
    """Two workers behind one port, sharing a data_dir; their base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        {
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_WORKERS": "2",
            "MINGPIAN_TEMPLATE_DIR": str(TEMPLATES),
            "MINGPIAN_DATA_DIR": str(tmp_path / "var"),
            "MINGPIAN_DATABASE_URL": postgres_url,
            "MINGPIAN_STORE": "redis",
            "MINGPIAN_DELIVERY_COUNTERS": "redis",
            "MINGPIAN_MEDIA_STORE": "redis",
            "MINGPIAN_REDIS_URL": redis_url,
            "MINGPIAN_LOG_LEVEL": "WARNING",
            "MINGPIAN_LOG_FORMAT": "text",
        }
    )
    log = (tmp_path / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "serve"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
    )
    try:
        wait_port(port, proc, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text("utf-8", "replace")


async def _scrape(http: aiohttp.ClientSession, base: str) -> tuple[str, Exposition]:
    """(the answering worker's pid, the exposition)."""
    async with http.get(f"{base}/metrics", headers={"Connection": "close"}) as resp:
        assert resp.status == 200
        out = parse(await resp.text())
    [comment] = [c for c in out.comments if c.startswith("# mingpian: ")]
    return comment.rsplit(" ", 1)[1], out


async def _workers(http: aiohttp.ClientSession, base: str, count: int, timeout: float = 30) -> set[str]:
    """Wait until `count` live workers report; their pids."""
    end = time.monotonic() + timeout
    while True:
        _, out = await _scrape(http, base)
        pids = {dict(lb)["worker"] for lb in out.series("mingpian_delivery_active_chains")}
        if out.value("mingpian_metrics_workers") == count and len(pids) == count:
            return pids
        assert time.monotonic() < end, f"workers reporting: {pids}"
        await asyncio.sleep(0.2)


async def _every_scrape_reports(http: aiohttp.ClientSession, base: str, pids: set[str], healthz: int) -> None:
    """Scrape until each worker of `pids` has answered; every answer has the host's totals, and
    the /metrics counter itself never goes backwards."""
    answered: set[str] = set()
    last = 0.0
    for _ in range(30):
        for pid, out in await asyncio.gather(*(_scrape(http, base) for _ in range(6))):
            answered.add(pid)
            assert out.value("mingpian_http_requests_total", **HEALTHZ) == healthz, pid
            assert out.value("mingpian_metrics_workers") == len(pids)
            assert {dict(lb)["worker"] for lb in out.series("mingpian_delivery_active_chains")} == pids
            assert out.value("mingpian_delivery_queue_depth") == 0
        if answered >= pids:
            break
    assert answered == pids
    for _ in range(10):  # one after another: the scrapes counted so far never decrease
        _, out = await _scrape(http, base)
        scrapes = out.value("mingpian_http_requests_total", method="GET", route="/metrics", status="200")
        assert scrapes >= last
        last = scrapes


async def test_each_worker_reports_the_host_and_a_killed_worker_s_counts_stay(host: str) -> None:
    async with aiohttp.ClientSession() as http:
        pids = await _workers(http, host, 2)
        for _ in range(25):
            async with http.get(f"{host}/healthz", headers={"Connection": "close"}) as resp:
                assert resp.status == 200
        await asyncio.sleep(1.5)  # every worker has written its file since
        await _every_scrape_reports(http, host, pids, 25)

        victim = sorted(pids)[0]
        os.kill(int(victim), signal.SIGKILL)  # gunicorn starts another in its place
        end = time.monotonic() + 30
        while True:
            now = await _workers(http, host, 2)
            if victim not in now:
                break
            assert time.monotonic() < end
            await asyncio.sleep(0.2)
        await _every_scrape_reports(http, host, now, 25)  # the dead worker's 25-or-fewer requests kept
        assert victim not in now and len(now & pids) == 1
