"""Real-browser plumbing for the studio tests and delivery's reports page: Debian's Chromium
(driven by Playwright's own driver, never a downloaded browser; the `browser` fixture is in
tests/conftest.py), a real Mingpian server on a free port running in a thread so the sync
Playwright API owns the test thread, and a probe for what must never happen on a page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "studio"


class ServerThread:
    """create_app(settings) served by web.AppRunner on 127.0.0.1:<free port> in its own loop."""

    def __init__(self, settings: Settings, prepare: Callable[[web.Application], None] | None = None) -> None:
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
