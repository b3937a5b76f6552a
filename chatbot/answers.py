"""Which chatbot flow answers a card button: for `mingpian lint` and the studio's button marks.

A tap sends the button's postback to the bot (an action button — a link, a number — sends its
postback too, beside what the phone does). A flow answers it when one of its postback rules
matches: a global rule, or a rule of any node (a card the bot itself sends is tapped while its
conversation sits in that node). A button no flow answers gets the bot's "no bot" answer in the
studio and nothing useful in production, so it is named before anyone taps it.
"""

from __future__ import annotations

from collections.abc import Iterator

from renderer.model import Message

from .flows import Flow, FlowStore

CODE = "unanswered_button"


def answers(flow: Flow, postback: str) -> bool:
    """True when one of `flow`'s postback rules matches `postback`."""
    rules = [*flow.global_rules, *(r for node in flow.nodes.values() for r in node.rules)]
    return any(r.trigger == "postback" and r.match("postback", "", postback) is not None for r in rules)


def answering_bot(flows: FlowStore, postback: str) -> str | None:
    """The first bot (folder name) whose flow answers `postback`, or None."""
    return next((name for name, flow in flows.flows.items() if answers(flow, postback)), None)


def buttons(message: Message) -> Iterator[tuple[str, str, str]]:
    """(field, button text, postback) of every button and chip of `message` that has a postback."""
    for i, card in enumerate(message.cards):
        for j, s in enumerate(card.suggestions):
            if s.postback:
                yield f"cards[{i}].suggestions[{j}]", s.text, s.postback
    for j, s in enumerate(message.chips):
        if s.postback:
            yield f"chips[{j}]", s.text, s.postback


def unanswered(flows: FlowStore, message: Message) -> list[tuple[str, str, str]]:
    """(field, text, postback) of each button of `message` that no flow answers."""
    return [b for b in buttons(message) if answering_bot(flows, b[2]) is None]


def unanswered_text(text: str, postback: str) -> str:
    return f"没有聊天机器人流程回答按钮「{text}」（回传 {postback}）：点了它对方收不到任何回复"
