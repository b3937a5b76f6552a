"""Fixtures and helpers for the chatbot tests: a MaaP simulator, a bot server, a real redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chatbot.simulator import Simulator
from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings

CSP_TOKEN = "csp-token-测试"
HMAC_SECRET = "hmac-secret"
USERNAME, PASSWORD = "maap", "p@ss\"word"
BEARER = "bearer-token-123"
APP_ID, APP_KEY = "app-001", "key-001"
USER = "tel:+8613812345678"
WAYBILL = "SF1234567890123"


def chatbot_settings(tmp: Path, maap_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        template_dir=PROJECT_ROOT / "card_templates", data_dir=tmp / "var", reload_interval=0.0,
        log_format="text", chatbot_dir=PROJECT_ROOT / "chatbots", maap_url=maap_url,
        maap_app_id=APP_ID, maap_app_key=APP_KEY, maap_timeout=2.0, webhook_csp_token=CSP_TOKEN,
        webhook_hmac_secret=HMAC_SECRET, webhook_username=USERNAME, webhook_password=PASSWORD,
        webhook_bearer=BEARER, outbox_backoff=0.05, outbox_max_backoff=0.4)
    return Settings(**{**values, **extra})


@pytest.fixture
async def sim(aiohttp_server: Any) -> AsyncIterator[tuple[Simulator, TestServer]]:
    s = Simulator(app_id=APP_ID, app_key=APP_KEY, csp_token=CSP_TOKEN)
    server = await aiohttp_server(s.app())
    yield s, server
    await s._close()


@dataclass
class Bot:
    sim: Simulator
    client: TestClient[Any, web.Application]
    settings: Settings


async def start_bot(aiohttp_client: Any, sim_pair: tuple[Simulator, TestServer], tmp: Path,
                    bot: str = "courier", **extra: Any) -> Bot:
    s, server = sim_pair
    settings = chatbot_settings(tmp, str(server.make_url("")).rstrip("/"), **extra)
    client = await aiohttp_client(create_app(settings))
    s.webhook = str(client.make_url(f"/maap/{bot}")).rstrip("/")
    return Bot(s, client, settings)


# ---- real processes -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port with its own temp dir, for one test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not found: run scripts/system-deps.sh (Debian package redis-server)")
    port = free_port()
    rdir = tmp_path / "redis"
    rdir.mkdir()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(rdir),
                             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def server_env(settings: Settings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    for name in ("template_dir", "data_dir", "chatbot_dir", "maap_url", "maap_app_id", "maap_app_key",
                 "maap_timeout", "webhook_csp_token", "webhook_hmac_secret", "webhook_username",
                 "webhook_password", "webhook_bearer", "outbox_backoff", "outbox_max_backoff", "store",
                 "redis_url", "log_format", "outbox_lease"):
        env["MINGPIAN_" + name.upper()] = str(getattr(settings, name))
    env["MINGPIAN_PORT"] = str(port)
    env["MINGPIAN_LOG_LEVEL"] = "WARNING"
    return env


def start_server(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m mingpian serve` as a real process, configured only through the environment."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "mingpian", "serve"], env=server_env(settings, port),
                                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    wait_port(port, proc)
    return proc
