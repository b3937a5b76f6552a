"""`POST /api/studio/chat`: try the chatbot from the studio's phone mock-ups.

A tap (or a typed / numbered reply) becomes the notification a CT/CU platform would POST to the
bot, built by the MaaP simulator (`simulators.maap.Simulator.message`), and goes through the
production loop of a private preview runtime (`preview_bot`): the simulator POSTs it, signed, to
the bot's real webhook handler; the engine dedupes it and commits the new conversation state with
its outbox rows; the outbox worker sends each reply through the MaaP client to the simulator's
send API. The studio answers with what the simulator received.

That runtime has its own store and its own (simulated) MaaP, so a designer's tap can never send
a real message from the configured MaaP nor touch the real bots' conversations. Which browser
session talks to which bot is kept here, in memory (bounded, expiring).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chatbot.events import BadEvent, from_csp_message

from ..errors import ApiError
from ..httpjson import read_json_body
from ..keys import flows_key, settings_key
from .preview_bot import PreviewBot, PreviewFailed, preview_bot_key, preview_lifecycle

SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_TEXT = 1000


@dataclass
class PreviewSession:
    user: str  # the fake mobile number this session chats as
    bot: str | None = None
    used: float = field(default_factory=time.monotonic)


class PreviewChats:
    """Browser session → its preview user and bot, for anonymous callers: at most `cap`
    sessions, each forgotten after `ttl` seconds unused (the least recently used goes first when
    full). A forgotten session's conversations are dropped from the preview store (`on_forget`),
    so neither memory nor the store grows with the sessions ever opened; one that comes back gets
    a new number, i.e. a new conversation."""

    def __init__(
        self, cap: int = 200, ttl: float = 1800.0, on_forget: Callable[[str], None] | None = None
    ) -> None:
        self.cap = max(1, cap)
        self.ttl = ttl
        self.on_forget = on_forget
        self.sessions: OrderedDict[str, PreviewSession] = OrderedDict()
        self.users: set[str] = set()

    def get(self, key: str) -> PreviewSession:
        now = time.monotonic()
        self.expire(now)
        session = self.sessions.pop(key, None)
        if session is None:
            while len(self.sessions) >= self.cap:
                self._forget(next(iter(self.sessions)))
            session = PreviewSession(self._new_user())
        session.used = now
        self.sessions[key] = session
        return session

    def expire(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        while self.sessions:
            oldest_key, oldest = next(iter(self.sessions.items()))
            if now - oldest.used < self.ttl:
                break
            self._forget(oldest_key)

    def _forget(self, key: str) -> None:
        session = self.sessions.pop(key)
        self.users.discard(session.user)
        if self.on_forget is not None:
            self.on_forget(session.user)

    def _new_user(self) -> str:
        # An obviously fake mobile number (+86 199 …), unique among live sessions; it only
        # ever reaches the simulator.
        while True:
            user = f"tel:+86199{secrets.randbelow(10**8):08d}"
            if user not in self.users:
                self.users.add(user)
                return user


chats_key = web.AppKey("studio_chats", PreviewChats)


def flow_store(app: web.Application) -> Any:
    """The chatbot's FlowStore when the chatbot feature is set up, else None."""
    return app.get(flows_key)


async def _pick_bot(
    preview: PreviewBot, session: PreviewSession, event: Any, wanted: str | None
) -> str | None:
    flows = preview.flows
    if wanted:
        return wanted if flows.get(wanted) is not None else None
    current = await preview.state(session.bot, session.user) if session.bot else None
    # A bot whose explicit rules (its current node's, else its start node's, and its global
    # ones) take this tap.
    for name, flow in flows.flows.items():
        node = flow.nodes.get(current.node if session.bot == name and current else flow.start)
        rules = (*(node.rules if node else ()), *flow.global_rules)
        if any(
            r.trigger in ("postback", "text") and r.match(event.kind, event.text, event.postback) is not None
            for r in rules
        ):
            return name
    return session.bot  # mid-conversation, the bot's own fallback answers


async def preview_chat(request: web.Request) -> web.Response:
    preview = request.app.get(preview_bot_key)
    if preview is None:
        raise ApiError(404, "chatbot_disabled", "this server runs no chatbot (see docs/chatbot.md)")
    body = await read_json_body(request, request.app[settings_key].max_json_depth)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "send a JSON object", path="$")
    sid = body.get("session")
    if not isinstance(sid, str) or not SESSION_RE.match(sid):
        raise ApiError(
            400, "invalid_session", "session must be 8-64 characters of A-Z a-z 0-9 _ -", path="$.session"
        )
    postback, text = body.get("postback"), body.get("text")
    for key, value in (("postback", postback), ("text", text), ("bot", body.get("bot"))):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise ApiError(
                400,
                "invalid_field",
                f"{key} must be a string of at most {MAX_TEXT} characters",
                path=f"$.{key}",
            )
    if not postback and not (text and text.strip()):
        raise ApiError(400, "empty_message", "send a postback (a tap) or some text", path="$")
    session = request.app[chats_key].get(sid)
    sim = preview.sim  # plays the platform: builds the notification a CT/CU MaaP would POST
    notification = sim.message(
        session.user, postback=postback or None, text=None if postback else text, display=(text or "")[:25]
    )
    try:  # read once here only to choose the bot; the webhook parses the delivery itself
        event = from_csp_message(notification, sim.chatbot)
    except BadEvent as exc:
        raise ApiError(400, "invalid_event", str(exc), path="$") from None
    bot = await _pick_bot(preview, session, event, body.get("bot"))
    if bot is None:
        raise ApiError(404, "no_bot", f"no chatbot answers {postback or text!r}", path="$.postback")
    session.bot = bot
    try:
        done = await preview.exchange(bot, notification)
    except PreviewFailed as exc:
        raise ApiError(502, "preview_failed", str(exc)) from None
    state = await preview.state(bot, session.user)
    flow = preview.flows.flows[bot]
    return web.json_response(
        {
            "bot": bot,
            "title": flow.title,
            "node": state.node if state else flow.start,
            "inbound": notification,
            "replies": done.replies,
            "messageList": [item for r in done.replies for item in r.get("messageList", [])],
            "sms": [r["smsContent"] for r in done.replies if r.get("smsContent")],
            "replyMap": dict(state.reply_map) if state else {},
            "outbox": done.outbox,
        }
    )


def _forget_user(app: web.Application) -> Callable[[str], None]:
    def forget(user: str) -> None:
        preview = app.get(preview_bot_key)
        if preview is not None:
            preview.forget(user)

    return forget


def setup(app: web.Application) -> None:
    s = app[settings_key]
    app[chats_key] = PreviewChats(s.studio_chat_sessions, s.studio_chat_ttl, _forget_user(app))
    app.router.add_post("/api/studio/chat", preview_chat, name="studio_chat")
    app.cleanup_ctx.append(preview_lifecycle)
