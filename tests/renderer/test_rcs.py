"""GSMA payload shapes, carrier-profile limits and output schema validation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from renderer import PROFILES, LimitExceeded, TemplateStore, get_profile, to_rcs
from renderer.model import Brand, Card, Media, Message, Suggestion
from renderer.rcs import build_payload, schema_problems
from tests.support.templates import TEMPLATES

BRAND = Brand(signature="测试", name="测试企业")


def msg(*cards: Card, kind: str = "card", chips: tuple[Suggestion, ...] = ()) -> Message:
    return Message(
        kind=kind,
        cards=cards,
        brand=BRAND,
        template="t",
        phase="hang-up",  # type: ignore[arg-type]
        chips=chips,
    )


def test_suggestion_shapes_match_the_gsma_field_names() -> None:
    t = TemplateStore(TEMPLATES).get("staff-card")
    content = to_rcs(t.render(t.sample)).message["message"]["generalPurposeCard"]["content"]
    dial, compose, url, loc = (s["action"] for s in content["suggestions"])
    assert dial["dialerAction"] == {"dialPhoneNumber": {"phoneNumber": "13957112345"}}
    assert compose["composeAction"]["composeTextMessage"]["phoneNumber"] == "13957112345"
    assert url["urlAction"]["openUrl"]["url"] == "https://www.yunqi-ai.cn"
    assert loc["mapAction"]["showLocation"]["location"]["label"] == "云栖小镇 3 号楼"
    assert all("postback" in a and "displayText" in a for a in (dial, compose, url, loc))


def test_calendar_event_and_horizontal_layout() -> None:
    store = TemplateStore(TEMPLATES)
    t = store.get("gov-hotline")
    content = to_rcs(t.render(t.sample)).message["message"]["generalPurposeCard"]["content"]
    cal = content["suggestions"][1]["action"]["calendarAction"]["createCalendarEvent"]
    assert cal["startTime"] == "2026-12-01T09:00:00+08:00"
    bank = store.get("bank-identity")
    layout = to_rcs(bank.render(bank.sample)).message["message"]["generalPurposeCard"]["layout"]
    assert layout == {"cardOrientation": "HORIZONTAL", "imageAlignment": "LEFT"}


def test_carousel_shape_and_message_list_content_types() -> None:
    t = TemplateStore(TEMPLATES).get("ad-carousel")
    payload = to_rcs(t.render(t.sample))
    car = payload.message["message"]["generalPurposeCardCarousel"]
    assert car["layout"] == {"cardWidth": "MEDIUM_WIDTH"}
    assert len(car["content"]) == 3
    parts = payload.message_list()
    assert [p["contentType"] for p in parts] == [
        "application/vnd.gsma.botmessage.v1.0+json",
        "application/vnd.gsma.botsuggestion.v1.0+json",
    ]
    assert parts[1]["contentText"]["suggestions"][1] == {
        "reply": {"displayText": "退订", "postback": {"data": "ad:optout"}}
    }


def test_title_over_limit_names_field_limit_and_profile() -> None:
    with pytest.raises(LimitExceeded) as info:
        to_rcs(msg(Card(title="长" * 201)))
    p = info.value.problems[0]
    assert p.path == "$.message.generalPurposeCard.content.title"
    assert p.message == "标题有 201 个字，「通用（各平台共同的最严限制）」最多 200 个字"
    assert p.code == "too_long"


def test_every_limit_is_enforced() -> None:
    reply = Suggestion(kind="reply", text="好", postback="p")
    card = Card(
        title="t",
        description="d" * 2001,
        suggestions=(
            replace(reply, text="二" * 26),
            replace(reply, postback="x" * 2049),
            reply,
            reply,
            reply,
        ),
        media=Media(
            url="https://x.cn/v.mp4",
            content_type="video/mp4",
            file_size=6 * 1024 * 1024,
            thumbnail_url="https://x.cn/t.png",
            thumbnail_file_size=300 * 1024,
        ),
    )
    with pytest.raises(LimitExceeded) as info:
        to_rcs(msg(card, chips=(reply,) * 12))
    paths = {p.path for p in info.value.problems}
    base = "$.message.generalPurposeCard.content"
    assert {
        f"{base}.description",
        f"{base}.suggestions",
        f"{base}.suggestions[0].reply.displayText",
        f"{base}.suggestions[1].reply.postback.data",
        f"{base}.media.mediaFileSize",
        f"{base}.media.thumbnailFileSize",
        "$.suggestions",
    } <= paths


def test_carousel_card_count_depends_on_profile() -> None:
    cards = tuple(Card(title=f"卡{i}") for i in range(11))
    with pytest.raises(LimitExceeded, match="2–10 张"):
        to_rcs(msg(*cards, kind="carousel"))
    assert to_rcs(msg(*cards, kind="carousel"), get_profile("china-unicom"))
    with pytest.raises(LimitExceeded, match="轮播有 1 张卡片"):
        to_rcs(msg(Card(title="only"), kind="carousel"))


def test_output_schema_catches_what_limits_do_not() -> None:
    bad_phone = Suggestion(kind="dial", text="拨打", postback="p", phone="call-me-maybe")
    bad_time = Suggestion(
        kind="createCalendarEvent",
        text="日历",
        postback="p",
        start="tomorrow",
        end="2026-01-01T00:00:00Z",
        title="t",
    )
    bad_lat = Suggestion(kind="showLocation", text="地图", postback="p", latitude=91.0, longitude=0.0)
    problems = schema_problems(
        build_payload(msg(Card(title="t", suggestions=(bad_phone, bad_time, bad_lat))))
    )
    paths = {p.path for p in problems}
    base = "$.message.generalPurposeCard.content.suggestions"
    assert f"{base}[0].action.dialerAction.dialPhoneNumber.phoneNumber" in paths
    assert f"{base}[1].action.calendarAction.createCalendarEvent.startTime" in paths
    assert f"{base}[2].action.mapAction.showLocation.location.latitude" in paths


def test_empty_card_is_rejected() -> None:
    with pytest.raises(LimitExceeded, match="卡片没有标题、描述或媒体"):
        to_rcs(msg(Card()))


def test_profiles_are_listed_and_defaults_are_strictest() -> None:
    default = PROFILES["default"]
    for p in PROFILES.values():
        assert p.title_max >= default.title_max
        assert p.carousel_max >= default.carousel_max
    with pytest.raises(KeyError):
        get_profile("no-such-carrier")
