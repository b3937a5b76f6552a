"""One conversation turn as a pure function: (state, event) → (new state, outbound messages).

Nothing here touches storage or the network, so a turn can be recomputed when a concurrent
commit wins the compare-and-set, and gives the same outbound message IDs every time: IDs derive
from the bot, the platform's inbound message ID and the reply's position (uuid5), which is what
lets the MaaP deduplicate a resend after a crash.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from infra import jsonio
from renderer import DEFAULT, PROFILES, RenderError, TemplateStore, to_rcs
from renderer.legacy import degrade
from renderer.model import Message
from renderer.replies import resolve_reply

from .events import InboundEvent
from .flows import Actions, Flow

log = logging.getLogger("mingpian.chatbot")
ID_NAMESPACE = uuid.UUID("5f0b6c1e-7d1a-4c55-9a57-6d696e677069")
TEXT = "text/plain"
MAX_TEXT = 2000  # CT/CU text message limit (CSP interface documents)


@dataclass(frozen=True, slots=True)
class State:
    node: str
    ctx: dict[str, Any]
    updated: float = 0.0
    reply_map: dict[str, str] = field(default_factory=dict)
    turns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "ctx": self.ctx,
            "updated": self.updated,
            "replyMap": self.reply_map,
            "turns": self.turns,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        return cls(
            d["node"], d.get("ctx", {}), d.get("updated", 0.0), d.get("replyMap", {}), d.get("turns", 0)
        )


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to send: `body` is the CT/CU CSP send body minus the per-platform constants."""

    message_id: str
    body: dict[str, Any]
    # The card model of a template reply, kept only for a turn answered on a web page
    # (`turn(..., models=True)`): the page renders it itself; never sent.
    message: Message | None = None


class RenderCache:
    """LRU of rendered replies: (template, its content hash, profile, data) → (messageList, SMS
    text, reply map). Rendering is a pure function of those, so a hit is exactly what a render
    would give; it pays off for the many identical replies a flow sends (menus, confirmations,
    the same parcel's tracking card to everyone who taps it). A template edit changes its hash.

    Entries are kept as JSON bytes and handed out as fresh objects: thousands of cached card
    trees would otherwise be long-lived containers that every full garbage collection walks
    (measured: 16-28 ms gen-2 pauses in the server, the main source of its p99)."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str, bytes], tuple[bytes, str, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, str, bytes]) -> tuple[Any, str, dict[str, str]] | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return jsonio.loads(item[0]), item[1], jsonio.loads(item[2])

    def put(self, key: tuple[str, str, str, bytes], value: tuple[Any, str, dict[str, str]]) -> None:
        self._items[key] = (jsonio.dumps(value[0]), value[1], jsonio.dumps(value[2]))
        if len(self._items) > self.size:
            self._items.popitem(last=False)


def outbound_id(bot: str, inbound_id: str, index: int) -> str:
    return _uuid5(f"{bot}\x1f{inbound_id}\x1f{index}")


_NS = ID_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """uuid.uuid5(ID_NAMESPACE, name) as a string, without building UUID objects (hot path)."""
    h = bytearray(hashlib.sha1(_NS + name.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def initial_state(flow: Flow) -> State:
    return State(flow.start, dict(flow.context))


def turn(
    flow: Flow,
    templates: TemplateStore,
    state: State | None,
    event: InboundEvent,
    now: float | None = None,
    cache: RenderCache | None = None,
    models: bool = False,
) -> tuple[State, list[Outbound]]:
    """`models`: each template reply also carries its card model (`Outbound.message`)."""
    now = time.time() if now is None else now
    if (
        state is None
        or state.node not in flow.nodes
        or (flow.session_ttl and state.updated and now - state.updated > flow.session_ttl)
    ):
        state = initial_state(flow)
    if event.kind == "text" and state.reply_map:
        pb = resolve_reply(state.reply_map, event.text)
        if pb is not None:
            event = replace(event, kind="postback", postback=pb, numbered=event.text.strip())
    actions, captures = _select(flow, state, event)
    if actions is None:
        return replace(state, updated=now, turns=state.turns + 1), []
    try:
        return _run(flow, templates, state, event, actions, captures, now, cache, models)
    except (RenderError, TypeError, ValueError) as exc:
        # A broken flow or template is our bug, not the user's: answer politely, keep the state,
        # and say exactly what broke in the log (file:line from the renderer's errors).
        log.error("chatbot %s: turn failed in node %s: %s", flow.bot, state.node, exc)
        out = _text_outbound(flow, event, 0, flow.error_reply)
        return replace(state, updated=now, turns=state.turns + 1), [out]


def _select(flow: Flow, state: State, event: InboundEvent) -> tuple[Actions | None, dict[str, str]]:
    """Node rules, then the flow's global rules, then the node's fallback, then the flow's."""
    node = flow.nodes[state.node]
    for rule in (*node.rules, *flow.global_rules):
        caps = rule.match(event.kind, event.text, event.postback)
        if caps is not None:
            return rule.actions, caps
    if event.kind in ("text", "postback", "location", "file"):
        fallback = node.fallback or flow.fallback
        if fallback is not None:
            return fallback, {}
    return None, {}


def _run(
    flow: Flow,
    templates: TemplateStore,
    state: State,
    event: InboundEvent,
    actions: Actions,
    captures: dict[str, str],
    now: float,
    cache: RenderCache | None,
    models: bool = False,
) -> tuple[State, list[Outbound]]:
    ctx_values = dict(state.ctx)
    scope = {
        "ctx": ctx_values,
        "event": event.for_flow(),
        "captures": captures,
        "vars": flow.vars,
        "now": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
    }
    jctx = flow.new_context(scope)
    for name, local in actions.lets:
        jctx.vars[name] = local.evaluate(jctx)
    for name, value in actions.sets:
        ctx_values[name] = value.evaluate(jctx)
    out: list[Outbound] = []
    reply_map = state.reply_map
    for i, reply in enumerate(actions.replies):
        if reply.text is not None:
            text = str(reply.text.evaluate(jctx))
            if not text or len(text) > MAX_TEXT:
                raise ValueError(
                    f"{flow.file}:{reply.line}: text reply is {len(text)} characters "
                    f"(1 to {MAX_TEXT} allowed)"
                )
            out.append(_text_outbound(flow, event, i, text))
            reply_map = {}
            continue
        data = reply.data.evaluate(jctx) if reply.data is not None else {}
        message_list, sms, reply_map = _render(flow, templates, reply.template or "", data, cache)
        model = templates.get(reply.template or "").render(data) if models else None
        out.append(
            Outbound(
                outbound_id(flow.bot, event.message_id, i), _body(flow, event, i, message_list, sms), model
            )
        )
    new = State(actions.goto or state.node, ctx_values, now, reply_map, state.turns + 1)
    return new, out


def _render(
    flow: Flow, templates: TemplateStore, name: str, data: Any, cache: RenderCache | None
) -> tuple[Any, str, dict[str, str]]:
    template = templates.get(name)
    profile = PROFILES.get(flow.profile or "", DEFAULT)
    key = None
    if cache is not None:
        try:
            key = (name, template.version, profile.name, jsonio.dumps_canonical(data))
        except TypeError:
            key = None
        hit = cache.get(key) if key is not None else None
        if hit is not None:
            return hit
    message = template.render(data)
    payload = to_rcs(message, profile)
    sms = ""
    reply_map: dict[str, str] = {}
    try:
        legacy = degrade(message, "sms", profile)
        sms, reply_map = legacy.text, dict(legacy.reply_map)
    except RenderError as exc:
        log.warning("chatbot %s: no SMS fallback for %s: %s", flow.bot, template.name, exc)
    result = (payload.message_list(), sms, reply_map)
    if cache is not None and key is not None:
        cache.put(key, result)
    return result


def _body(
    flow: Flow, event: InboundEvent, index: int, message_list: list[dict[str, Any]], sms: str
) -> dict[str, Any]:
    mid = outbound_id(flow.bot, event.message_id, index)
    body: dict[str, Any] = {
        "messageId": mid,
        "destinationAddress": [event.user],
        "senderAddress": flow.chatbot or event.chatbot,
        "conversationId": event.conversation_id or _uuid5(f"{flow.bot}\x1f{event.user}"),
        "contributionId": _uuid5(mid),
        "messageList": message_list,
        "smsSupported": bool(sms),
    }
    if event.contribution_id:
        body["inReplyTo"] = event.contribution_id
    if sms:
        body["smsContent"] = sms
    return body


def _text_outbound(flow: Flow, event: InboundEvent, index: int, text: str) -> Outbound:
    sms = f"【{flow.signature}】{text}" if flow.signature else text
    body = _body(flow, event, index, [{"contentType": TEXT, "contentText": text}], sms)
    return Outbound(body["messageId"], body)
