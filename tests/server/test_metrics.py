"""/metrics for the whole host (mingpian/metrics.py): workers sharing one metrics folder each
report the sum, counters never go backwards whichever worker answers, and the counts of a worker
that stopped or died are kept. Here two `Metrics` of one process play two workers; the real
thing, `mingpian serve --workers 2`, is in test_metrics_fleet.py."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from mingpian.metrics import Metrics
from mingpian.metrics_host import RETIRED, reset_folder
from tests.support.prometheus import parse

REQ = "mingpian_http_requests_total"


def _healthz(m: Metrics) -> float:
    return parse(m.expose()).get(REQ, method="GET", route="/healthz", status="200")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_one_worker_reports_itself_and_the_text_parses() -> None:
    m = Metrics()
    m.requests.inc("GET", "/healthz", "200")
    m.latency.observe(0.003, "GET", "/healthz")
    m.delivery_active.set(2)
    out = parse(m.expose())
    assert out.value(REQ, method="GET", route="/healthz", status="200") == 1
    assert out.value("mingpian_http_request_duration_seconds_count", method="GET", route="/healthz") == 1
    assert (
        out.value("mingpian_http_request_duration_seconds_bucket", method="GET", route="/healthz", le="0.005")
        == 1
    )
    assert (
        out.value(
            "mingpian_http_request_duration_seconds_bucket", method="GET", route="/healthz", le="0.0025"
        )
        == 0
    )
    [(labels, active)] = out.series("mingpian_delivery_active_chains").items()
    assert active == 2 and dict(labels)["worker"].isdigit()
    assert out.value("mingpian_metrics_workers") == 1
    assert out.types["mingpian_delivery_attempts_total"] == "counter"


def test_two_workers_sharing_a_folder_each_report_the_sum(tmp_path: Path) -> None:
    a, b = Metrics(), Metrics()
    a.share(tmp_path)
    b.share(tmp_path)
    for _ in range(3):
        a.requests.inc("GET", "/healthz", "200")
        a.latency.observe(0.002, "GET", "/healthz")
    for _ in range(4):
        b.requests.inc("GET", "/healthz", "200")
        b.latency.observe(0.2, "GET", "/healthz")
    b.delivery_attempts.inc("sms", "delivered")
    a.publish()  # a's periodic write; b writes its own as it answers
    for m in (b, a):
        out = parse(m.expose())
        assert out.value(REQ, method="GET", route="/healthz", status="200") == 7
        hist = "mingpian_http_request_duration_seconds"
        assert out.value(f"{hist}_count", method="GET", route="/healthz") == 7
        assert out.value(f"{hist}_bucket", method="GET", route="/healthz", le="0.0025") == 3
        assert out.value(f"{hist}_sum", method="GET", route="/healthz") == 0.806
        assert out.value("mingpian_delivery_attempts_total", channel="sms", outcome="delivered") == 1
        assert out.value("mingpian_metrics_workers") == 2


def test_counters_never_go_backwards_whichever_worker_answers(tmp_path: Path) -> None:
    workers = [Metrics() for _ in range(3)]
    for m in workers:
        m.share(tmp_path)
    rng = random.Random(7)
    seen, counted = 0.0, 0
    for _ in range(400):
        m = rng.choice(workers)
        if rng.random() < 0.6:
            n = rng.randint(1, 5)
            m.requests.inc("GET", "/healthz", "200", amount=n)
            counted += n
        elif rng.random() < 0.5:
            m.publish()
        else:
            now = _healthz(m)
            assert seen <= now <= counted
            seen = now
    for m in workers:
        m.publish()
    assert _healthz(workers[0]) == counted


def test_a_stopped_worker_s_counts_are_kept(tmp_path: Path) -> None:
    a, b = Metrics(), Metrics()
    a.share(tmp_path)
    b.share(tmp_path)
    a.requests.inc("GET", "/healthz", "200", amount=5)
    b.requests.inc("GET", "/healthz", "200", amount=2)
    assert b.host is not None
    b_file = b.host.path
    b.unshare()
    assert not b_file.exists() and (tmp_path / RETIRED).exists()
    assert _healthz(a) == 7
    assert parse(a.expose()).value("mingpian_metrics_workers") == 1
    c = Metrics()  # its replacement
    c.share(tmp_path)
    c.requests.inc("GET", "/healthz", "200")
    assert _healthz(c) == 8


def test_a_dead_worker_s_file_is_folded_once_and_its_gauges_drop(tmp_path: Path) -> None:
    a = Metrics()
    a.share(tmp_path)
    a.requests.inc("GET", "/healthz", "200", amount=1)
    a.delivery_active.set(1)
    dead = _dead_pid()
    doc: dict[str, Any] = {
        "pid": dead,
        "at": 0,
        "counters": {REQ: [[["GET", "/healthz", "200"], 10]]},
        "histograms": {},
        "gauges": {"mingpian_delivery_active_chains": [[[], 3]]},
    }
    path = tmp_path / f"{dead}-0bad0bad.json"
    path.write_bytes(orjson.dumps(doc))
    out = parse(a.expose())  # counted before it is folded ...
    assert out.value(REQ, method="GET", route="/healthz", status="200") == 11
    active = {dict(lb)["worker"]: v for lb, v in out.series("mingpian_delivery_active_chains").items()}
    assert active == {str(a.host.pid): 1}  # type: ignore[union-attr]
    a.publish()  # ... and after: the periodic write folds dead workers' files into retired.json
    assert not path.exists()
    retired = orjson.loads((tmp_path / RETIRED).read_bytes())
    assert f"{dead}-0bad0bad" in retired["absorbed"]
    assert _healthz(a) == 11
    # a fold interrupted between writing retired.json and removing the file adds nothing twice
    path.write_bytes(orjson.dumps(doc))
    assert _healthz(a) == 11
    a.publish()
    assert not path.exists() and _healthz(a) == 11


def test_serve_starts_from_zero(tmp_path: Path) -> None:
    a = Metrics()
    a.share(tmp_path)
    a.requests.inc("GET", "/healthz", "200")
    a.unshare()
    reset_folder(tmp_path)
    assert list(tmp_path.glob("*.json")) == []
    b = Metrics()
    b.share(tmp_path)
    assert _healthz(b) == 0
