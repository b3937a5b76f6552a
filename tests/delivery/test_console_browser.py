"""The console in Chromium (Debian's, driven by Playwright): the enterprise's journey (sign in →
add a line → a hang-up card → dry run → import 1,000 staff → issue a key), the operator's
(verify a number, suspend an enterprise), every page without a script error or CSP violation,
at phone width too, XSS probes in every field, a write from another origin, another
enterprise's ids through the page's own requests; screenshots in test-artifacts/console/."""

from __future__ import annotations

import csv
import io
import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from aiohttp import web

from mingpian.settings import PROJECT_ROOT, Settings
from tests.support.browser import PageProbe, ServerThread
from tests.support.gatewaysim import GatewaySim

from .support import CMB_KEY, OPERATOR, SF_KEY, seed_doc

SHOTS = PROJECT_ROOT / "test-artifacts" / "console"
XSS = '<img src=x onerror="window.__xss=1">'
ENTERPRISE_PAGES = ["lines", "cards", "dry-run", "staff", "media", "keys", "optouts", "audit", "packages", "reports"]
OPERATOR_PAGES = ["enterprises", "queue", "brands", "pools", "fleet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("console")
    seed = base / "seed.yaml"
    seed.write_text(yaml.safe_dump(seed_doc(), allow_unicode=True), "utf-8")
    smpp_port = _free_port()
    settings = Settings(
        data_dir=base / "var",
        log_format="text",
        log_level="WARNING",
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{smpp_port}",
        delivery_smpp_password="secret",
    )

    def prepare(app: web.Application) -> None:
        async def gateway(app: web.Application) -> Any:
            sim = GatewaySim(password="secret")
            await sim.start(port=smpp_port)
            yield
            await sim.stop()

        app.cleanup_ctx.insert(0, gateway)

    srv = ServerThread(settings, prepare).start()
    yield srv
    srv.stop()


def _api(server: ServerThread, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def sign_in(page: Any, server: ServerThread, key: str) -> None:
    page.goto(f"{server.url}/console")
    page.wait_for_selector("main[data-ready=signin]")
    page.fill("input[name=key]", key)
    page.press("input[name=key]", "Enter")
    page.wait_for_selector("#nav a")


def open_page(page: Any, hash_: str, name: str) -> None:
    page.evaluate("h => { location.hash = h; }", hash_)
    page.wait_for_selector(f"main[data-ready='{name}']", timeout=15_000)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
