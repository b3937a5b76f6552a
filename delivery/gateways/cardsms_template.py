"""A card as a card-SMS template, and one person's values for it.

The vendors review a template once (3–5 working days) and then draw any number of SMS with it,
each carrying only that person's dynamic fields. So the template holds what a card version fixes
— its layout, picture, buttons (text and kind) and the enterprise's signature — and the texts
that differ per call (who called, when, the staff member's name, the tracking link) are dynamic
fields, `{{title1}}`, `{{desc1}}`, `{{btn1_2}}` (card 1's title, description, second button's
URL or number). What the texts may say was reviewed by the operator with the card version.

Shape submitted (the vendors' `tmpCards` per page, one page per card of a carousel):

    {"tpl_name", "tpl_type": "card", "card_sign_name": <signature>, "factory_types": [...],
     "pages": [{"tmpCards": [
        {"type": "image", "positionNumber": 1, "content": {"src": <url>}},
        {"type": "text", "positionNumber": 2, "content": {"text": "{{title1}}", "isTextTitle": true}},
        {"type": "text", "positionNumber": 3, "content": {"text": "{{desc1}}"}},
        {"type": "button", "positionNumber": 4, "content": {"text": "查询物流"},
         "actionType": "OPEN_BROWSER", "action": {"target": "{{btn1_1}}"}}, ...]}]}

actionType: OPEN_BROWSER (a link), DIAL_PHONE (a number), OPEN_SMS (write a text). A button
the chatbot answers (a reply) has no meaning on a phone's SMS app: it is left out, as vendors
leave out what they do not support.
"""

from __future__ import annotations

from typing import Any

from renderer.model import Message, Suggestion

VENDORS = ("HuaWei", "XiaoMi", "OPPO", "VIVO", "MEIZU", "SAMSUNG")
VENDOR_NAMES = {"HuaWei": "华为", "XiaoMi": "小米", "OPPO": "OPPO", "VIVO": "vivo", "MEIZU": "魅族",
                "SAMSUNG": "三星"}  # fmt: skip
_ACTIONS = {"openUrl": ("OPEN_BROWSER", "target"), "dial": ("DIAL_PHONE", "phone"),
            "composeTextMessage": ("OPEN_SMS", "phone")}  # fmt: skip


def _action_value(s: Suggestion) -> str:
    return (s.url if s.kind == "openUrl" else s.phone) or ""


def template(msg: Message, name: str, sign: str) -> dict[str, Any]:
    """The template a card version registers with the vendors."""
    pages = []
    for i, card in enumerate(msg.cards, 1):
        items: list[dict[str, Any]] = []
        if card.media is not None and card.media.url.startswith("https://"):
            items.append({"type": "image", "content": {"src": card.media.url}})
        items.append({"type": "text", "content": {"text": f"{{{{title{i}}}}}", "isTextTitle": True}})
        items.append({"type": "text", "content": {"text": f"{{{{desc{i}}}}}"}})
        for j, s in enumerate(card.suggestions, 1):
            if s.kind in _ACTIONS:
                kind, field = _ACTIONS[s.kind]
                items.append({"type": "button", "content": {"text": s.text}, "actionType": kind,
                              "action": {field: f"{{{{btn{i}_{j}}}}}"}})  # fmt: skip
        for n, item in enumerate(items, 1):
            item["positionNumber"] = n
        pages.append({"tmpCards": items})
    return {
        "tpl_name": name[:64],
        "tpl_type": "card",
        "card_sign_name": sign,
        "factory_types": list(VENDORS),
        "pages": pages,
    }


def params(msg: Message) -> dict[str, str]:
    """One person's values for the template's dynamic fields (`dync_params`)."""
    out: dict[str, str] = {}
    for i, card in enumerate(msg.cards, 1):
        out[f"title{i}"] = card.title or ""
        out[f"desc{i}"] = card.description or ""
        for j, s in enumerate(card.suggestions, 1):
            if s.kind in _ACTIONS:
                out[f"btn{i}_{j}"] = _action_value(s)
    return out


def text(sign: str, title: str, link: str, limit: int = 70) -> str:
    """The SMS that carries the parse link, one UCS-2 segment: 【signature】title link. The title
    gives way (cut, with an ellipsis) so the link always fits whole."""
    head, tail = f"【{sign}】", f" {link}"
    title = " ".join((title or "").split())
    if _units(head + title + tail) <= limit:
        return head + title + tail
    while title and _units(head + title + "…" + tail) > limit:
        title = title[:-1]
    return head + (title + "…" if title else "") + tail


def _units(s: str) -> int:
    """UCS-2 code units: what one segment's 70 count."""
    return len(s.encode("utf-16-be", "surrogatepass")) // 2
