"""Real-browser plumbing for the studio tests and delivery's reports page: Debian's Chromium
(driven by Playwright's own driver, never a downloaded browser; the `browser` fixture is in
tests/conftest.py, the browser's path and flags in simulators/servers.py), a real Mingpian server on a free port running in a thread so the sync
Playwright API owns the test thread, and a probe for what must never happen on a page."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings

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


# Latin words a Chinese page may show: technical names people use as they are.
ALLOWED_LATIN = frozenset(
    [
        "5G",
        "SMS",
        "USSD",
        "RCS",
        "PNG",
        "MP4",
        "API",
        "CSV",
        "ID",
        "JSON",
        "GSM",
        "GSM-7",
        "UCS",
        "UCS-2",
        "DCS",
        "MB",
        "WebP",
        "JPEG",
        "H5",  # the Chinese industry's own name for a mobile web page (H5 页面)
    ]
)
# The text a person sees: visible text nodes (not code, raw payloads, collapsed details or
# hidden parts), placeholders and accessible names.
VISIBLE_TEXT = """() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode;
    const el = node.parentElement;
    if (!el || !node.textContent.trim()) continue;
    if (el.closest('script, style, title, desc, [hidden], code, pre, textarea, option')) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === 'hidden' || style.display === 'none') continue;
    if (el.closest('details:not([open])') && !el.closest('summary')) continue;
    out.push(node.textContent);
  }
  for (const el of document.querySelectorAll('select')) {
    if (el.getBoundingClientRect().width && el.selectedOptions[0]) out.push(el.selectedOptions[0].textContent);
  }
  for (const el of document.querySelectorAll('[placeholder], [aria-label]')) {
    if (el.getBoundingClientRect().width) out.push(el.getAttribute('placeholder') || el.getAttribute('aria-label'));
  }
  return out.join(' ');
}"""


def latin_words_of(value: object) -> set[str]:
    """Every Latin word in a JSON value (keys and strings): a user's or designer's own data."""
    if isinstance(value, dict):
        return (
            set().union(*(latin_words_of(k) | latin_words_of(v) for k, v in value.items()))
            if value
            else set()
        )
    if isinstance(value, list):
        return set().union(*(latin_words_of(v) for v in value)) if value else set()
    return set(_WORD.findall(str(value))) if isinstance(value, str) else set()


_WORD = re.compile(r"(?<![0-9A-Za-z])[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")  # not 0x48, 5G


def english_words(text: str, data: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Latin words in `text` (two letters or more: "5G" is not a word) that are neither allowed
    technical names nor the user's own data."""
    return [
        w
        for w in _WORD.findall(text)
        if len(w) > 1 and w not in ALLOWED_LATIN and w not in data and not any(w in d for d in data)
    ]
