"""Helpers for the chatbot tests: credentials, settings, a bot server on the MaaP simulator, and
`python -m mingpian serve` as a real process. Fixtures: `sim` in tests/chatbot/conftest.py,
`redis_url` in tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings
from simulators.maap import Simulator
from tests.support.processes import wait_port

CSP_TOKEN = "csp-token-测试"
HMAC_SECRET = "hmac-secret"
USERNAME, PASSWORD = "maap", 'p@ss"word'
BEARER = "bearer-token-123"
OPERATOR_KEY = "mpk_operator-chatbot-test-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}  # message lookups need the operator's key
APP_ID, APP_KEY = "app-001", "key-001"
USER = "tel:+8613812345678"
WAYBILL = "SF1234567890123"


def chatbot_settings(tmp: Path, maap_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        template_dir=PROJECT_ROOT / "card_templates",
        data_dir=tmp / "var",
        reload_interval=0.0,
        log_format="text",
        chatbot_dir=PROJECT_ROOT / "chatbots",
        maap_url=maap_url,
        maap_app_id=APP_ID,
        maap_app_key=APP_KEY,
        maap_timeout=2.0,
        webhook_csp_token=CSP_TOKEN,
        webhook_hmac_secret=HMAC_SECRET,
        webhook_username=USERNAME,
        webhook_password=PASSWORD,
        webhook_bearer=BEARER,
        delivery_operator_key=OPERATOR_KEY,
        outbox_backoff=0.05,
        outbox_max_backoff=0.4,
    )
    return Settings(**{**values, **extra})


@dataclass
class Bot:
    sim: Simulator
    client: TestClient[Any, web.Application]
    settings: Settings


async def start_bot(
    aiohttp_client: Any, sim_pair: tuple[Simulator, TestServer], tmp: Path, bot: str = "courier", **extra: Any
) -> Bot:
    s, server = sim_pair
    settings = chatbot_settings(tmp, str(server.make_url("")).rstrip("/"), **extra)
    client = await aiohttp_client(create_app(settings))
    s.webhook = str(client.make_url(f"/maap/{bot}")).rstrip("/")
    return Bot(s, client, settings)


# ---- real processes -----------------------------------------------------------------------


def server_env(settings: Settings, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    for name in (
        "template_dir",
        "data_dir",
        "chatbot_dir",
        "maap_url",
        "maap_app_id",
        "maap_app_key",
        "maap_timeout",
        "webhook_csp_token",
        "webhook_hmac_secret",
        "webhook_username",
        "webhook_password",
        "webhook_bearer",
        "delivery_operator_key",
        "outbox_backoff",
        "outbox_max_backoff",
        "store",
        "redis_url",
        "log_format",
        "outbox_lease",
    ):
        env["MINGPIAN_" + name.upper()] = str(getattr(settings, name))
    env["MINGPIAN_PORT"] = str(port)
    env["MINGPIAN_LOG_LEVEL"] = "WARNING"
    return env


def start_server(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`python -m mingpian serve` as a real process, configured only through the environment."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"],
            env=server_env(settings, port),
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_port(port, proc)
    return proc
