"""Every button of every shipped template is answered by a shipped chatbot flow: each is tapped
from a fresh conversation through the studio's preview loop (simulated MaaP → webhook → engine →
outbox), and the answer must come from one of the flow's rules — not "no bot", not a fallback."""

from __future__ import annotations

from typing import Any

from chatbot.answers import buttons
from chatbot.flows import Actions, FlowStore
from mingpian.settings import PROJECT_ROOT
from renderer import TemplateStore

TEMPLATES = TemplateStore(PROJECT_ROOT / "card_templates", reload_interval=3600)
FLOWS = FlowStore(PROJECT_ROOT / "chatbots")


def _fallback_texts() -> set[str]:
    """What a bot says when no rule took the message: its fallbacks and its error reply."""
    out: set[str] = set()
    for flow in FLOWS.flows.values():
        out.add(flow.error_reply)
        fallbacks: list[Actions] = [n.fallback for n in flow.nodes.values() if n.fallback]
        fallbacks += [flow.fallback] if flow.fallback else []
        for actions in fallbacks:
            out.update(str(r.text.value) for r in actions.replies if r.text is not None)
    return out


def _said(body: dict[str, Any]) -> list[str]:
    """The bot's answer: each text, or each card's title."""
    out = []
    for item in body["messageList"]:
        content = item["contentText"]
        if isinstance(content, str):
            out.append(content)
        else:
            card = content["message"].get("generalPurposeCard") or {}
            out.append(card.get("content", {}).get("title") or "卡片")
    return out


async def test_every_button_of_every_shipped_template_gets_a_real_answer(client: Any) -> None:
    fallbacks = _fallback_texts()
    tapped = []
    for name in TEMPLATES.names():
        template = TEMPLATES.get(name)
        message = template.render(template.sample)
        for i, (field, text, postback) in enumerate(buttons(message)):
            session = f"walk-{name}-{i}"[:64]
            resp = await client.post(
                "/api/studio/chat", json={"session": session, "postback": postback, "text": text}
            )
            body = await resp.json()
            where = f"{name} {field} 「{text}」 ({postback})"
            assert resp.status == 200, (where, body)
            said = _said(body)
            assert said, where
            assert not set(said) & fallbacks, (where, said)
            tapped.append((name, postback, body["bot"]))
    assert {n for n, _, _ in tapped} == set(TEMPLATES.names())
    assert ("personal-show", "show:like", "show") in tapped
