"""The studio's own chatbot runtime: the production loop, wired to the MaaP simulator.

A preview tap must run the bot exactly as production does — webhook authentication and parsing,
the engine's dedupe + state CAS + outbox commit, the outbox worker, the MaaP client's token and
send calls — yet must never reach the configured (real) MaaP, nor share the real bots' store.
So the studio builds a second, private instance of the same pieces:

- a `ChatbotRuntime` of its own (chatbot/runtime.py), with its own SQLite store in a fresh
  temp folder under `data_dir` (removed at shutdown; one a killed process left behind is removed
  at the next start) and its MaaP account at the simulator;
- the MaaP simulator (`simulators.maap`) as the platform, with credentials generated at start;
- one loopback-only HTTP server (127.0.0.1, ephemeral port) that serves the bot's real CT/CU
  webhook (`_webhook`: the runtime's inbound door, as the server's route) at `/maap/{bot}/...` and
  the simulator's send API under `/platform`.

A tap is then: the simulator signs and POSTs the notification to the webhook → the engine
commits state and outbox rows → the worker sends each row to the simulator → `exchange`
returns what the simulator received. Nothing here reads `maap_url` or the webhook secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from chatbot.auth import WebhookAuth
from chatbot.runtime import ChatbotRuntime, MaapAccount, RuntimeConfig
from chatbot.store.sqlite import SqliteStore
from chatbot.turns import State, outbound_id
from simulators.maap import Received, Simulator

from ..httpjson import json_response
from ..keys import flows_key, settings_key, templates_key
from ..middleware import json_errors

PREVIEW_CHATBOT = "sip:studio-preview@botplatform.rcs.chinaunicom.cn"
REPLY_TIMEOUT = 10.0  # seconds a tap waits for the outbox to hand its replies to the simulator
KEEP_SENT = 60.0  # seconds sent preview rows stay in the outbox table before pruning
DEDUPE_TTL = 3600.0  # preview deliveries are never retried later than this


class PreviewFailed(Exception):
    """The preview loop did not answer (webhook refused, or the outbox could not deliver)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One tap's round trip: the replies the simulator received, and their outbox rows."""

    replies: list[dict[str, Any]]
    outbox: list[dict[str, Any]]


class PreviewBot:
    def __init__(self, runtime: ChatbotRuntime, sim: Simulator, webhook: str) -> None:
        self.runtime = runtime
        self.flows = runtime.flows
        assert isinstance(runtime.store, SqliteStore)  # the preview store is always a private file
        self.store: SqliteStore = runtime.store
        self.worker = runtime.worker
        self.sim = sim
        self.webhook = webhook  # http://127.0.0.1:<port>/maap
        self.relayed = 0  # replies the simulator received for preview taps (tests read it)

    def forget(self, user: str) -> None:
        """Drop every conversation of a preview user (its browser session was forgotten)."""
        self.store.forget_user(user)

    async def state(self, bot: str, user: str) -> State | None:
        """The conversation state the engine committed for (bot, user), as the engine keys it."""
        loaded = await self.store.load(f"{bot}\x1f{user}", "")
        return State.from_json(loaded.state) if loaded.state else None

    async def exchange(self, bot: str, notification: dict[str, Any]) -> Exchange:
        """Deliver one notification through the real loop; wait for the replies it produced."""
        status = await self.sim.deliver(notification, webhook=f"{self.webhook}/{bot}", timeout=REPLY_TIMEOUT)
        if status != 200:
            raise PreviewFailed(f"the preview webhook answered HTTP {status or 'nothing'}")
        # The 200 comes after the commit, so the turn's outbox rows exist now; their IDs are the
        # engine's deterministic ones (bot, inbound messageId, index).
        flow = self.flows.get(bot)
        ids: list[str] = []
        while flow is not None:
            mid = outbound_id(flow.bot, notification["messageId"], len(ids))
            if await self.store.message(mid) is None:
                break
            ids.append(mid)
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            rows = [await self.store.message(mid) or {} for mid in ids]
            if all(r.get("state") != "pending" for r in rows) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        got = self._take(set(ids), notification)
        replies = [got[mid].body for mid in ids if mid in got]
        self.relayed += len(replies)
        if len(replies) < len(ids):
            stuck = [
                f"{r.get('messageId')}: {r.get('state')} {r.get('lastError') or ''}".strip()
                for r in rows
                if r.get("messageId") not in got
            ]
            raise PreviewFailed(
                f"the outbox did not deliver {len(ids) - len(replies)} of {len(ids)} "
                f"replies to the simulator ({'; '.join(stuck)})"
            )
        return Exchange(replies, rows)

    def _take(self, ids: set[str], notification: dict[str, Any]) -> dict[str, Received]:
        """Remove this tap's records from the simulator, so its memory stays bounded by the
        taps in flight rather than growing with every preview ever made."""
        sim = self.sim
        got = {r.message_id: r for r in sim.received if r.message_id in ids}
        if got:
            sim.received[:] = [r for r in sim.received if r.message_id not in ids]
        sim.seen_ids.difference_update(ids)
        sim.replies_to.pop(notification["contributionId"], None)
        sim.injected.pop(notification["contributionId"], None)
        sim.acked.discard(notification["messageId"])
        return got


preview_bot_key = web.AppKey("studio_preview_bot", PreviewBot)

FOLDER_PREFIX = "studio-preview-"
OWNER_FILE = "owner.pid"  # the server process the folder belongs to
UNOWNED_GRACE = 60.0  # seconds a folder without an owner file may be one just being made


def remove_stale_folders(data_dir: Path) -> list[Path]:
    """Preview folders whose server process is gone (killed before it could remove its own):
    removed at start. Several workers may share `data_dir`, so a live owner's folder stays."""
    removed = []
    for folder in data_dir.glob(FOLDER_PREFIX + "*"):
        if not folder.is_dir() or _owned_by_live_process(folder):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _owned_by_live_process(folder: Path) -> bool:
    try:
        pid = int((folder / OWNER_FILE).read_text("ascii").strip())
    except FileNotFoundError:  # a release before owner files, or one being made right now
        with contextlib.suppress(OSError):
            return time.time() - folder.stat().st_mtime < UNOWNED_GRACE
        return False
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False  # a folder of an earlier process that had our pid (this one has none yet)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _webhook(runtime: ChatbotRuntime) -> Any:
    """The CT/CU message webhook of the preview loop: the raw body to this runtime's inbound
    door, as the server's route does for the real bots (its refusals answered by json_errors)."""

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        bot = request.match_info["bot"]
        ack = await runtime.inbound(
            "csp-message", bot, request.headers, raw, request.match_info, request.remote
        )
        if ack.body is None:
            return web.Response(status=ack.status, headers=ack.headers)
        return json_response(ack.body, status=ack.status, headers=ack.headers or None)

    return handle


def _loopback_socket() -> socket.socket:
    """Bound before the app is built, so the MaaP client knows its URL up front."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def preview_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: start the private runtime when the server has chatbot flows; stop it all."""
    flows = app.get(flows_key)
    if flows is None or not flows.flows:
        yield
        return
    async with contextlib.AsyncExitStack() as stack:  # unwinds whatever was started, in reverse
        s = app[settings_key]
        remove_stale_folders(s.data_dir)
        folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=s.data_dir))
        (folder / OWNER_FILE).write_text(str(os.getpid()), "ascii")
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        sock = stack.enter_context(_loopback_socket())
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sim = Simulator(
            webhook=f"{base}/maap",
            chatbot=PREVIEW_CHATBOT,
            app_id="studio-preview",
            app_key=secrets.token_urlsafe(18),
            hmac_secret=secrets.token_urlsafe(24),
        )
        # Preview taps are not production traffic: no metrics callbacks, so /metrics never counts them.
        runtime = ChatbotRuntime(
            flows,
            app[templates_key],
            RuntimeConfig(
                WebhookAuth(hmac_secret=sim.hmac_secret),
                "sqlite",
                folder / "chatbot.sqlite3",
                "OFF",
                dedupe_ttl=DEDUPE_TTL,
                keep_sent=KEEP_SENT,
                app_id=sim.app_id,
                maap=MaapAccount(f"{base}/platform", sim.app_id, sim.app_key),
                outbox_concurrency=16,
                outbox_lease=REPLY_TIMEOUT,
                outbox_backoff=0.05,
                outbox_max_backoff=1.0,
            ),
        )
        loop_app = web.Application(client_max_size=1024 * 1024, middlewares=[json_errors])
        loop_app.router.add_post("/maap/{bot}/messageNotification/{chatbotId}/messages", _webhook(runtime))
        loop_app.add_subapp("/platform", sim.app())
        runner = web.AppRunner(loop_app, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)  # also closes the simulator's client session
        await web.SockSite(runner, sock).start()
        await runtime.start()
        stack.push_async_callback(runtime.close)  # first to stop: nothing is sent after this
        app[preview_bot_key] = PreviewBot(runtime, sim, f"{base}/maap")
        yield
