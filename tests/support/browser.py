"""Real-browser plumbing for the studio tests: one headless Debian Chromium per test session
(Playwright's own driver, never a downloaded browser) and a real Mingpian server on a free port,
running in a thread so the sync Playwright API owns the test thread."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "studio"


class ServerThread:
    """create_app(settings) served by web.AppRunner on 127.0.0.1:<free port> in its own loop."""

    def __init__(self, settings: Settings,
                 prepare: Callable[[web.Application], None] | None = None) -> None:
        self.settings = settings
        self.prepare = prepare
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="studio-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = create_app(self.settings)
        if self.prepare is not None:
            self.prepare(app)
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"studio test server failed to start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, or a skip saying exactly why it cannot run here. Module-scoped: the
    sync Playwright API keeps an event loop running in the main thread while it lives, which
    pytest-asyncio's tests in other modules must not inherit."""
    if not CHROMIUM.exists():
        pytest.skip("studio browser tests: /usr/bin/chromium is missing "
                    "(scripts/system-deps.sh installs Debian's chromium; it failed or was skipped)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("studio browser tests: the `playwright` package is not installed "
                    "(pip install -e '.[test]')")
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        pw.stop()
        pytest.skip(f"studio browser tests: Chromium could not be launched: {exc}")
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    """A real server over a scratch copy of the templates (tests edit them)."""
    base = tmp_path_factory.mktemp("studio")
    templates = base / "card_templates"
    shutil.copytree(PROJECT_ROOT / "card_templates", templates)
    settings = Settings(template_dir=templates, data_dir=base / "var", reload_interval=0.25,
                        log_format="text", log_level="WARNING")
    server = ServerThread(settings).start()
    yield server, templates
    server.stop()


class PageProbe:
    """Collects what must never happen on a studio page: script errors, CSP violations, alerts."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, msg: Any) -> None:
        if "the server responded with a status of 4" in msg.text:
            return  # the 422s the page asks for on purpose (invalid data), shown in the form
        if msg.type == "error" or "Content Security Policy" in msg.text:
            self.errors.append(f"console.{msg.type}: {msg.text}")

    def _response(self, resp: Any) -> None:
        if resp.status >= 500:  # never acceptable: name the request so the failure is findable
            self.errors.append(f"HTTP {resp.status} from {resp.request.method} {resp.url}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()
