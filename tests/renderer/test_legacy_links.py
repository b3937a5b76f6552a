"""Legacy text with short links: placeholders of fixed length decide the layout once per card,
each recipient's codes are filled in after, reply keys and segments unchanged."""

from __future__ import annotations

import re

import pytest

from renderer import TemplateStore, gsm
from renderer.legacy import LINK_PLACEHOLDER, LinkForm, degrade
from renderer.model import Brand, Card, Message, Suggestion
from tests.support.templates import TEMPLATES

STORE = TemplateStore(TEMPLATES, reload_interval=0)
FORM = LinkForm("mp.cn/", 10)
CODE = "Ab3dE5gH7k"


def _courier() -> Message:
    t = STORE.get("courier-hangup")
    return t.render(t.sample)


def test_courier_card_drops_to_two_segments() -> None:
    msg = _courier()
    plain = degrade(msg, "sms")
    short = degrade(msg, "sms", links=FORM)
    assert (plain.units, len(plain.segments)) == (168, 3)
    assert len(short.segments) == 2 and short.units == 133
    (slot,) = short.links
    assert slot.key == "1" and slot.target == "https://www.sf-express.com/track?no=SF1234567890123"
    assert short.text[slot.start - len("mp.cn/") : slot.start + 10] == "mp.cn/" + LINK_PLACEHOLDER * 10
    assert short.reply_map == plain.reply_map
    filled = short.fill([CODE])
    assert "查询物流：mp.cn/Ab3dE5gH7k\n" in filled.text
    assert (filled.units, len(filled.segments), filled.encoding) == (short.units, 2, "UCS-2")
    assert filled.segments == gsm.encode(filled.text, "sms").segments
    assert filled.replies[0].line == "查询物流：mp.cn/Ab3dE5gH7k"
    assert filled.replies[0].value == slot.target  # the reply still names what it stands for
    assert filled.reply_map == plain.reply_map


def test_card_page_line_takes_the_web_links_onto_the_page() -> None:
    """With a card-page link, a web link's button is reached on the page: its line is not
    written (the courier card fits two segments), its reply key keeps its meaning."""
    short = degrade(_courier(), "sms", links=LinkForm("mp.cn/", 10, card_page=True))
    assert [s.key for s in short.links] == ["page"]
    filled = short.fill(["PAGE000001"])
    assert "\n查看名片：mp.cn/PAGE000001\n联系快递员：13800138000\n" in filled.text
    assert "查询物流" not in filled.text and "sf-express" not in filled.text
    assert filled.segment_count == 2 and not short.dropped
    track = short.replies[0]
    assert (track.key, track.shown, track.line, track.postback) == ("1", False, None, "track:SF1234567890123")
    assert short.reply_map["1"] == "track:SF1234567890123"
    assert "on the card page only: 1 查询物流" in short.notes
    page_only = degrade(_courier(), "sms", links=LinkForm("mp.cn/", 10, urls=False, card_page=True))
    assert [s.key for s in page_only.links] == ["page"] and "sf-express" not in page_only.text


def test_unsafe_and_non_web_links_are_never_shortened() -> None:
    msg = Message(
        kind="card",
        cards=(
            Card(
                title="标题",
                description="说明",
                suggestions=(
                    Suggestion(kind="openUrl", text="坏链接", url="javascript:alert(1)", postback="a"),
                    Suggestion(kind="openUrl", text="电话", url="tel:10086", postback="b"),
                    Suggestion(kind="openUrl", text="官网", url="http://example.com/x", postback="c"),
                ),
            ),
        ),
        brand=Brand(signature="测试", name="测试"),
        template="t",
        phase="hang-up",
    )
    short = degrade(msg, "sms", links=FORM)
    assert [s.key for s in short.links] == ["3"]
    assert "javascript" not in short.text and "tel:10086" in short.text


@pytest.mark.parametrize("channel", ["ussd", "flash", "sms"])
def test_every_template_fills_to_the_same_segments(channel: str) -> None:
    for name in STORE.names():
        t = STORE.get(name)
        msg = t.render(t.sample)
        short = degrade(msg, channel, links=LinkForm("mp.cn/", 10, card_page=channel == "sms"))
        filled = short.fill([CODE] * len(short.links))
        assert len(filled.segments) == len(short.segments), name
        assert filled.units == short.units, name
        assert LINK_PLACEHOLDER * 10 not in filled.text or not short.links, name
        assert len(re.findall(CODE, filled.text)) == len(short.links), name


def test_fill_refuses_codes_of_another_length() -> None:
    short = degrade(_courier(), "sms", links=FORM)
    with pytest.raises(ValueError):
        short.fill(["short"])
    with pytest.raises(ValueError):
        short.fill([])
