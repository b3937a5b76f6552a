"""Fixtures for the chatbot tests (`redis_url` is shared: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from simulators.maap import Simulator

from .support import APP_ID, APP_KEY, CSP_TOKEN


@pytest.fixture
async def sim(aiohttp_server: Any) -> AsyncIterator[tuple[Simulator, TestServer]]:
    s = Simulator(app_id=APP_ID, app_key=APP_KEY, csp_token=CSP_TOKEN)
    server = await aiohttp_server(s.app())
    yield s, server
    await s._close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The chatbot store's settings, once for each backend."""
    if request.param == "redis":
        return {"store": "redis", "redis_url": request.getfixturevalue("redis_url")}
    return {}
