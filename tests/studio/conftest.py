"""Fixtures for the studio tests (the `browser` fixture is shared: tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mingpian.settings import PROJECT_ROOT, Settings
from tests.support.browser import ServerThread


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    """A real server over a scratch copy of the templates (tests edit them)."""
    base = tmp_path_factory.mktemp("studio")
    templates = base / "card_templates"
    shutil.copytree(PROJECT_ROOT / "card_templates", templates)
    settings = Settings(
        template_dir=templates,
        data_dir=base / "var",
        reload_interval=0.25,
        log_format="text",
        log_level="WARNING",
    )
    server = ServerThread(settings).start()
    yield server, templates
    server.stop()
