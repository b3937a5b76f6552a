"""The RCS target: the card model → GSMA botmessage / botsuggestion JSON, checked two ways.

1. Carrier-profile limits (title length, buttons per card, ...), each failure naming the JSON
   path in the *output* payload, the limit, and the profile — the message a designer can act on.
2. The shipped JSON Schemas (`schemas/*.json`), so structure is spec-exact whatever the model.

Lengths are counted in Unicode code points (what RBM and the CSP specs call characters);
an emoji is one character here even though it is two UTF-16 units on the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from .errors import LimitExceeded, Problem
from .jsonpath import json_path
from .model import Card, Media, Message, Suggestion
from .profiles import DEFAULT, CarrierProfile

BOTMESSAGE = "application/vnd.gsma.botmessage.v1.0+json"
BOTSUGGESTION = "application/vnd.gsma.botsuggestion.v1.0+json"


@dataclass(frozen=True, slots=True)
class RcsPayload:
    """The rendered message: the card payload and, if the template has chips, the chip list."""

    message: dict[str, Any]
    chips: dict[str, Any] | None

    def message_list(self) -> list[dict[str, Any]]:
        """The CSP `messageList` shape: each part with its content type."""
        parts = [{"contentType": BOTMESSAGE, "contentText": self.message}]
        if self.chips is not None:
            parts.append({"contentType": BOTSUGGESTION, "contentText": self.chips})
        return parts


def suggestion_json(s: Suggestion) -> dict[str, Any]:
    postback = {"data": s.postback}
    if s.kind == "reply":
        return {"reply": {"displayText": s.text, "postback": postback}}
    action: dict[str, Any] = {"displayText": s.text, "postback": postback}
    if s.kind == "openUrl":
        action["urlAction"] = {"openUrl": {"url": s.url}}
    elif s.kind == "dial":
        action["dialerAction"] = {"dialPhoneNumber": {"phoneNumber": s.phone}}
    elif s.kind == "showLocation":
        location: dict[str, Any] = {"latitude": s.latitude, "longitude": s.longitude}
        if s.label:
            location["label"] = s.label
        show: dict[str, Any] = {"location": location}
        if s.url:
            show["fallbackUrl"] = s.url
        action["mapAction"] = {"showLocation": show}
    elif s.kind == "createCalendarEvent":
        event: dict[str, Any] = {"startTime": s.start, "endTime": s.end, "title": s.title}
        if s.description:
            event["description"] = s.description
        action["calendarAction"] = {"createCalendarEvent": event}
    elif s.kind == "composeTextMessage":
        action["composeAction"] = {"composeTextMessage": {"phoneNumber": s.phone, "text": s.message or ""}}
    return {"action": action}


def _media_json(m: Media) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaUrl": m.url, "mediaContentType": m.content_type}
    if m.file_size is not None:
        out["mediaFileSize"] = m.file_size
    if m.thumbnail_url:
        out["thumbnailUrl"] = m.thumbnail_url
        out["thumbnailContentType"] = m.thumbnail_content_type or "image/png"
    if m.thumbnail_file_size is not None:
        out["thumbnailFileSize"] = m.thumbnail_file_size
    out["height"] = m.height
    if m.description:
        out["contentDescription"] = m.description
    return out


def _content_json(card: Card) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if card.media is not None:
        out["media"] = _media_json(card.media)
    if card.title:
        out["title"] = card.title
    if card.description:
        out["description"] = card.description
    if card.suggestions:
        out["suggestions"] = [suggestion_json(s) for s in card.suggestions]
    return out


def build_payload(msg: Message) -> RcsPayload:
    """Shape only; no checks. `to_rcs` is what callers want."""
    if msg.kind == "card":
        layout: dict[str, Any] = {"cardOrientation": msg.orientation}
        if msg.orientation == "HORIZONTAL":
            layout["imageAlignment"] = msg.image_alignment or "LEFT"
        body: dict[str, Any] = {
            "message": {"generalPurposeCard": {"layout": layout, "content": _content_json(msg.cards[0])}}
        }
    else:
        body = {
            "message": {
                "generalPurposeCardCarousel": {
                    "layout": {"cardWidth": msg.card_width},
                    "content": [_content_json(c) for c in msg.cards],
                }
            }
        }
    chips = {"suggestions": [suggestion_json(s) for s in msg.chips]} if msg.chips else None
    return RcsPayload(body, chips)


# ---- limits --------------------------------------------------------------------------------


# Messages are Chinese sentences for the people who fix the card; `code` is the stable name.
def _length_problem(path: str, what: str, value: str, limit: int, profile: CarrierProfile) -> Problem:
    return Problem(path, f"{what}有 {len(value)} 个字，「{profile.label}」最多 {limit} 个字", code="too_long")


def _check_suggestion(
    problems: list[Problem], where: tuple[str, int], s: Suggestion, profile: CarrierProfile
) -> None:
    # Paths are only formatted when something is wrong: this runs on every render.
    if (
        len(s.text) <= profile.suggestion_text_max
        and len(s.postback) <= profile.postback_max
        and (s.url is None or len(s.url) <= profile.url_max)
    ):
        return
    path = f"{where[0]}[{where[1]}]"
    key = "reply" if s.kind == "reply" else "action"
    if len(s.text) > profile.suggestion_text_max:
        problems.append(
            _length_problem(
                f"{path}.{key}.displayText", "按钮文字", s.text, profile.suggestion_text_max, profile
            )
        )
    if len(s.postback) > profile.postback_max:
        problems.append(
            _length_problem(
                f"{path}.{key}.postback.data", "按钮回传数据", s.postback, profile.postback_max, profile
            )
        )
    if s.url is not None and len(s.url) > profile.url_max:
        where = "urlAction.openUrl.url" if s.kind == "openUrl" else "mapAction.showLocation.fallbackUrl"
        problems.append(_length_problem(f"{path}.action.{where}", "网址", s.url, profile.url_max, profile))


CARD_PATH = "$.message.generalPurposeCard.content"
CAROUSEL_PATH = "$.message.generalPurposeCardCarousel.content"


def check_limits(msg: Message, profile: CarrierProfile = DEFAULT) -> list[Problem]:
    problems: list[Problem] = []
    if msg.kind == "carousel":
        n = len(msg.cards)
        if not profile.carousel_min <= n <= profile.carousel_max:
            problems.append(
                Problem(
                    CAROUSEL_PATH,
                    f"轮播有 {n} 张卡片，「{profile.label}」要求 "
                    f"{profile.carousel_min}–{profile.carousel_max} 张",
                    code="carousel_size",
                )
            )
    for i, card in enumerate(msg.cards):
        p = CARD_PATH if msg.kind == "card" else f"{CAROUSEL_PATH}[{i}]"
        if not (card.title or card.description or card.media):
            problems.append(Problem(p, "卡片没有标题、描述或媒体", code="empty_card"))
        if card.title is not None and len(card.title) > profile.title_max:
            problems.append(_length_problem(f"{p}.title", "标题", card.title, profile.title_max, profile))
        if card.description is not None and len(card.description) > profile.description_max:
            problems.append(
                _length_problem(
                    f"{p}.description", "描述", card.description, profile.description_max, profile
                )
            )
        if len(card.suggestions) > profile.suggestions_per_card_max:
            problems.append(
                Problem(
                    f"{p}.suggestions",
                    f"卡片有 {len(card.suggestions)} 个按钮，「{profile.label}」"
                    f"最多 {profile.suggestions_per_card_max} 个",
                    code="too_many",
                )
            )
        buttons = f"{p}.suggestions"
        for j, s in enumerate(card.suggestions):
            _check_suggestion(problems, (buttons, j), s, profile)
        m = card.media
        if m is not None:
            limit = (
                profile.video_max_bytes if m.content_type.startswith("video/") else profile.image_max_bytes
            )
            if m.file_size is not None and m.file_size > limit:
                problems.append(
                    Problem(
                        f"{p}.media.mediaFileSize",
                        f"媒体文件 {m.file_size} 字节，「{profile.label}」最多 {limit} 字节",
                        code="too_large",
                    )
                )
            if m.thumbnail_file_size is not None and m.thumbnail_file_size > profile.thumbnail_max_bytes:
                problems.append(
                    Problem(
                        f"{p}.media.thumbnailFileSize",
                        f"缩略图 {m.thumbnail_file_size} 字节，「{profile.label}」"
                        f"最多 {profile.thumbnail_max_bytes} 字节",
                        code="too_large",
                    )
                )
    if len(msg.chips) > profile.chips_max:
        problems.append(
            Problem(
                "$.suggestions",
                f"有 {len(msg.chips)} 个快捷回复，「{profile.label}」最多 {profile.chips_max} 个",
                code="too_many",
            )
        )
    for j, s in enumerate(msg.chips):
        _check_suggestion(problems, ("$.suggestions", j), s, profile)
    return problems


# ---- schema validation ---------------------------------------------------------------------


def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("renderer.schemas").joinpath(name).read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@cache
def _validators() -> tuple[jsonschema_rs.Validator, jsonschema_rs.Validator]:
    sugg = load_schema("botsuggestion.schema.json")
    msg = load_schema("botmessage.schema.json")
    registry = jsonschema_rs.Registry([(sugg["$id"], sugg)])
    return (
        jsonschema_rs.Draft202012Validator(msg, registry=registry, offline=True, validate_formats=True),
        jsonschema_rs.Draft202012Validator(sugg, offline=True, validate_formats=True),
    )


def schema_problems(payload: RcsPayload) -> list[Problem]:
    msg_v, sugg_v = _validators()
    problems = (
        [
            Problem(json_path(e.instance_path), f"不符合 GSMA 报文格式：{e.message}", code="gsma_schema")
            for e in msg_v.iter_errors(payload.message)
        ]
        if not msg_v.is_valid(payload.message)
        else []
    )
    if payload.chips is not None and not sugg_v.is_valid(payload.chips):
        problems += [
            Problem(json_path(e.instance_path), f"不符合 GSMA 报文格式：{e.message}", code="gsma_schema")
            for e in sugg_v.iter_errors(payload.chips)
        ]
    return problems


def to_rcs(msg: Message, profile: CarrierProfile = DEFAULT) -> RcsPayload:
    """The card model as spec-exact GSMA JSON; raises LimitExceeded naming every problem."""
    problems = check_limits(msg, profile)
    payload = build_payload(msg)
    if not problems:
        problems = schema_problems(payload)
    if problems:
        raise LimitExceeded(
            f"the rendered card does not fit profile {profile.name!r} "
            f"({len(problems)} problem{'s' if len(problems) != 1 else ''})",
            problems,
        )
    return payload
