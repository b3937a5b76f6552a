"""The type of pytest-aiohttp's `aiohttp_client` fixture, for tests that build their own app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

ClientFactory = Callable[..., Awaitable[TestClient[Any, web.Application]]]
