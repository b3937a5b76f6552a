"""A designer SVG that takes too long to draw, against a real server process: its render is
stopped at `media_time_limit` and answered 422, the picture asked for meanwhile is still made,
the pool serves the next pictures, and no worker process is left over."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port, wait_port
from tests.support.templates import write_template

CARD = "card:\n  title: '{{ title }}'\n  description: 测试\n"
SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}}
# Every rect covers the whole picture with a half-transparent fill: within every SVG limit,
# yet ~15 ms of compositing each at 1440 px wide, so a minute for the lot.
SLOW_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 400">'
    "{% for i in range(1000) %}{% for j in range(4) %}"
    '<rect width="100" height="400" fill="#f00" opacity="0.5"/>'
    "{% endfor %}{% endfor %}</svg>"
)
LIMIT = 2.0
# 49,999 strings of 99,999 characters made one by one: stopped by the template's own budget
# (1 s, the total size) long before `media_time_limit` would have to stop the worker
LAZY_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40"><text>'
    "{{ ('x ' * 49999).split()|map('center', 99999)|map('upper')|map('lower')|map('title')|max|length }}"
    "</text></svg>"
)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    root = tmp_path_factory.mktemp("media") / "card_templates"
    slow = write_template(root, "slow", CARD, SCHEMA, {"title": "慢"})
    (slow / "card.svg.j2").write_text(SLOW_SVG, "utf-8")
    write_template(root, "quick", CARD, SCHEMA, {"title": "快"})
    lazy = write_template(root, "lazy", CARD, SCHEMA, {"title": "懒"})
    (lazy / "card.svg.j2").write_text(LAZY_SVG, "utf-8")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_TEMPLATE_DIR": str(root),
        "MINGPIAN_DATA_DIR": str(tmp_path_factory.mktemp("var")),
        "MINGPIAN_MEDIA_TIME_LIMIT": str(LIMIT),
        # one worker, two renders at once: the second waits in the pool the first one's kill breaks
        "MINGPIAN_MEDIA_WORKERS": "1",
        "MINGPIAN_MEDIA_CONCURRENCY": "2",
        "MINGPIAN_LOG_FORMAT": "text",
    }
    log = tmp_path_factory.mktemp("log") / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=sink
        )
        try:
            wait_port(port, proc)
            yield port, proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    assert "Traceback" not in log.read_text()


def _png(port: int, name: str, width: int) -> tuple[int, bytes, float]:
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=120)) as conn:
        start = time.monotonic()
        conn.request(
            "POST",
            f"/api/templates/{name}/render?format=png&width={width}",
            json.dumps({"title": name}),
            {"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - start


def test_a_render_past_its_time_limit_is_stopped_and_the_pool_recovers(server: tuple[int, int]) -> None:
    port, pid = server
    status, _, _ = _png(port, "quick", 360)  # the pool's workers are up
    assert status == 200
    results: dict[str, tuple[int, bytes, float]] = {}

    def ask(key: str, name: str, width: int) -> None:
        results[key] = _png(port, name, width)

    slow = threading.Thread(target=ask, args=("slow", "slow", 1440))
    slow.start()
    time.sleep(0.3)
    # asked while the slow one runs: queued in the pool that gets killed, then run on the new one
    quick = threading.Thread(target=ask, args=("quick", "quick", 480))
    quick.start()
    health = []
    while slow.is_alive():
        with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
            start = time.monotonic()
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            health.append(time.monotonic() - start)
        time.sleep(0.05)
    slow.join()
    quick.join(60)

    status, body, seconds = results["slow"]
    error: dict[str, Any] = json.loads(body)
    assert status == 422 and error["error"] == "render_timeout", error
    assert f"{LIMIT:g} s" in error["message"]
    assert LIMIT <= seconds < LIMIT + 3
    assert results["quick"][0] == 200 and results["quick"][1].startswith(b"\x89PNG")
    assert results["quick"][2] > LIMIT - 0.3  # it waited for the slow one: it was in that pool
    assert max(health) < 0.5
    # the pool serves the next picture, and the killed workers are gone
    status, data, _ = _png(port, "quick", 600)
    assert status == 200 and data.startswith(b"\x89PNG")
    deadline = time.monotonic() + 10
    while len(_children(pid)) > 2 and time.monotonic() < deadline:  # a worker + the resource tracker
        time.sleep(0.1)
    assert len(_children(pid)) <= 2, _children(pid)


def test_a_lazy_chain_in_an_svg_template_is_refused_by_its_budget(server: tuple[int, int]) -> None:
    port, _ = server
    status, body, seconds = _png(port, "lazy", 360)
    error: dict[str, Any] = json.loads(body)
    assert (status, error["error"]) == (422, "template_error"), error
    assert "card.svg.j2" in error["message"] and "1,000,000" in error["message"], error
    assert seconds < LIMIT, seconds  # the worker was not stopped: the template was
