"""Fixtures shared by every test folder: a real app on the project's own templates, a scratch
template folder, a real redis-server (chatbot, delivery and infra tests), a throwaway PostgreSQL
server (delivery tests on the shared backend) and headless Chromium
(studio tests and delivery's reports page). Folder-only fixtures live in that folder's
conftest.py; plain helpers in tests/support/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.settings import Settings
from simulators import smsc
from simulators.servers import CHROMIUM, CHROMIUM_ARGS, PostgresCluster, RedisServer
from tests.support.client import ClientFactory
from tests.support.processes import running_cluster
from tests.support.templates import TEMPLATES


@pytest.fixture(autouse=True)
def smpp_wire_checked() -> Iterator[None]:
    """Every PDU sent to a gateway simulator in the test was read by an independent codec
    (smpplib) and every submit_sm numbered as the SMSC reads it (simulators/smppcheck.py)."""
    smsc.PROBLEMS.clear()
    yield
    assert not smsc.PROBLEMS, "SMPP PDUs an independent reading refuses:\n" + "\n".join(smsc.PROBLEMS)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a test app: project templates, state under a temp folder, fast reload."""
    return Settings(template_dir=TEMPLATES, data_dir=tmp_path / "var", reload_interval=0.0, log_format="text")


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient[Any, web.Application]:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def scratch_templates(tmp_path: Path) -> Path:
    """A writable copy of the project's templates, for tests that edit or break them."""
    dest = tmp_path / "card_templates"
    shutil.copytree(TEMPLATES, dest)
    return dest


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the whole session (each test takes its own database)."""
    yield from running_cluster()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_cluster.create_database()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port with its own temp dir, for one test (which may stop
    and start it: an outage)."""
    try:
        server = RedisServer(tmp_path / "redis")
    except FileNotFoundError as exc:
        pytest.skip(f"{exc} (Debian package redis-server)")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, or a skip saying exactly why it cannot run here. Module-scoped: the
    sync Playwright API keeps an event loop running in the main thread while it lives, which
    pytest-asyncio's tests in other modules must not inherit."""
    if not CHROMIUM.exists():
        pytest.skip(
            "studio browser tests: /usr/bin/chromium is missing "
            "(scripts/system-deps.sh installs Debian's chromium; it failed or was skipped)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "studio browser tests: the `playwright` package is not installed (pip install -e '.[test]')"
        )
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        pw.stop()
        pytest.skip(f"studio browser tests: Chromium could not be launched: {exc}")
    yield chromium
    chromium.close()
    pw.stop()
