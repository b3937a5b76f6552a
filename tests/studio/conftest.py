"""Fixtures for the studio tests (the `browser` fixture is shared: tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mingpian.settings import PROJECT_ROOT, Settings
from tests.support.browser import PageProbe, ServerThread


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


@pytest.fixture
def page(browser: Any, studio: tuple[ServerThread, Path]) -> Iterator[tuple[Any, PageProbe]]:
    """A Chinese-locale page of the studio's size whose scripts must not fail."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    probe = PageProbe(pg)
    yield pg, probe
    context.close()
    assert probe.errors == [], probe.errors
