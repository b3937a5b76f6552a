"""`POST /api/studio/chat`: try the chatbot from the studio's phone mock-ups.

A tap (or a typed / numbered reply) becomes the notification a CT/CU platform would POST to the
bot: built by the MaaP simulator (`chatbot.simulator.Simulator.message`) and parsed by the same
`from_csp_message` as the real webhook. The bot's own turn function (`chatbot.turns.turn`: flow
rules, reply templates, GSMA payload, SMS fallback and its reply map) answers, and the studio
shows the CSP send bodies the bot would hand to the MaaP.

Why not the production webhook → store → outbox → MaaP path: the outbox delivers to the
configured MaaP, so a designer's preview tap would send real messages to a fake number on a
live platform. Preview conversations therefore live here, in memory, per browser session
(bounded, expiring), and never touch the chatbot's store or outbox.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..http_errors import raise_json, read_json_body
from ..keys import settings_key, templates_key

SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_SESSIONS = 2000  # preview sessions kept; the least recently used goes first
SESSION_TTL = 1800.0  # seconds of inactivity before a preview conversation is forgotten
MAX_TEXT = 1000


@dataclass
class PreviewSession:
    bot: str | None = None
    state: Any = None  # chatbot.turns.State
    used: float = field(default_factory=time.monotonic)


class PreviewChats:
    def __init__(self) -> None:
        self.sessions: OrderedDict[str, PreviewSession] = OrderedDict()

    def get(self, key: str) -> PreviewSession:
        now = time.monotonic()
        while self.sessions:
            oldest_key, oldest = next(iter(self.sessions.items()))
            if now - oldest.used < SESSION_TTL and len(self.sessions) < MAX_SESSIONS:
                break
            del self.sessions[oldest_key]
        session = self.sessions.pop(key, None) or PreviewSession()
        session.used = now
        self.sessions[key] = session
        return session


chats_key = web.AppKey("studio_chats", PreviewChats)


def flow_store(app: web.Application) -> Any:
    """The chatbot's FlowStore when the chatbot feature is set up, else None."""
    try:
        from ..api_chatbot import flows_key
    except ImportError:
        return None
    return app.get(flows_key)


def _user(session: str) -> str:
    # A stable, obviously fake mobile number per preview session (+86 199 is not a real block
    # we could reach: nothing is ever sent anyway).
    digits = str(int(hashlib.sha256(session.encode()).hexdigest()[:12], 16))[-8:].rjust(8, "0")
    return f"tel:+86199{digits}"


def _pick_bot(flows: Any, session: PreviewSession, event: Any, wanted: str | None) -> str | None:
    if wanted:
        return wanted if flows.get(wanted) is not None else None
    # A bot whose explicit rules (its start node's and its global ones) take this tap.
    for name, flow in flows.flows.items():
        node = flow.nodes.get(session.state.node if session.bot == name and session.state else flow.start)
        rules = (*(node.rules if node else ()), *flow.global_rules)
        if any(r.trigger in ("postback", "text") and r.match(event.kind, event.text, event.postback)
               is not None for r in rules):
            return name
    return session.bot  # mid-conversation, the bot's own fallback answers


async def preview_chat(request: web.Request) -> web.Response:
    from chatbot.events import BadEvent, from_csp_message
    from chatbot.simulator import Simulator
    from chatbot.turns import turn

    flows = flow_store(request.app)
    if flows is None or not flows.flows:
        raise_json(404, "chatbot_disabled", "this server runs no chatbot (see docs/chatbot.md)")
    body = await read_json_body(request, request.app[settings_key].max_json_depth)
    if not isinstance(body, dict):
        raise_json(400, "invalid_body", "send a JSON object", "$")
    sid = body.get("session")
    if not isinstance(sid, str) or not SESSION_RE.match(sid):
        raise_json(400, "invalid_session", "session must be 8-64 characters of A-Z a-z 0-9 _ -",
                   "$.session")
    postback, text = body.get("postback"), body.get("text")
    for key, value in (("postback", postback), ("text", text), ("bot", body.get("bot"))):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise_json(400, "invalid_field", f"{key} must be a string of at most {MAX_TEXT} characters",
                       f"$.{key}")
    if not postback and not (text and text.strip()):
        raise_json(400, "empty_message", "send a postback (a tap) or some text", "$")
    session = request.app[chats_key].get(sid)
    sim = Simulator()  # plays the platform: builds the notification a CT/CU MaaP would POST
    notification = sim.message(_user(sid), postback=postback or None,
                               text=None if postback else text, display=(text or "")[:25])
    try:
        event = from_csp_message(notification, sim.chatbot)
    except BadEvent as exc:
        raise_json(400, "invalid_event", str(exc), "$")
    bot = _pick_bot(flows, session, event, body.get("bot"))
    if bot is None:
        raise_json(422, "no_bot", f"no chatbot answers {postback or text!r}", "$.postback")
    if bot != session.bot:
        session.bot, session.state = bot, None
    flow = flows.get(bot)
    state, outs = turn(flow, request.app[templates_key], session.state, event)
    session.state = state
    replies = [o.body for o in outs]
    return web.json_response({
        "bot": bot, "title": flow.title, "node": state.node,
        "inbound": notification,
        "replies": replies,
        "messageList": [item for r in replies for item in r.get("messageList", [])],
        "sms": [r["smsContent"] for r in replies if r.get("smsContent")],
        "replyMap": dict(state.reply_map),
    })


def setup(app: web.Application) -> None:
    app[chats_key] = PreviewChats()
    app.router.add_post("/api/studio/chat", preview_chat, name="studio_chat")
