"""Shared fixtures: a real app on the project's own templates, and a scratch template folder."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings

TEMPLATES = PROJECT_ROOT / "card_templates"
ClientFactory = Callable[..., Awaitable[TestClient[Any, web.Application]]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a test app: project templates, state under a temp folder, fast reload."""
    return Settings(template_dir=TEMPLATES, data_dir=tmp_path / "var", reload_interval=0.0,
                    log_format="text")


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient[Any, web.Application]:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def scratch_templates(tmp_path: Path) -> Path:
    """A writable copy of the project's templates, for tests that edit or break them."""
    dest = tmp_path / "card_templates"
    shutil.copytree(TEMPLATES, dest)
    return dest
