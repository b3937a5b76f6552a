"""Degrading cards to USSD / flash SMS / SMS: layout, limits, shrinking, overrides, replies."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from mingpian.cli import main as cli_main
from mingpian.lint import lint_templates
from renderer import DEFAULT, LimitExceeded, TemplateStore, gsm
from renderer.legacy import (
    LegacyText,
    check_override,
    degrade,
    degrade_template,
)
from renderer.model import Brand, Card, Message, Suggestion
from renderer.replies import parse_reply, resolve_reply
from tests.support.templates import TEMPLATES

CHANNELS = ("ussd", "flash", "sms")
STORE = TemplateStore(TEMPLATES, reload_interval=0)


def _msg(
    *cards: Card,
    chips: tuple[Suggestion, ...] = (),
    signature: str = "顺丰速运",
    overrides: dict[str, str] | None = None,
) -> Message:
    return Message(
        kind="carousel" if len(cards) > 1 else "card",
        cards=cards,
        brand=Brand(signature=signature, name=signature),
        template="t",
        phase="hang-up",
        chips=chips,
        legacy_overrides=overrides or {},
    )


def _reply(text: str, postback: str) -> Suggestion:
    return Suggestion(kind="reply", text=text, postback=postback)


def _assert_within_limits(lt: LegacyText) -> None:
    enc = lt.encoding
    assert lt.units == gsm.units(lt.text, enc)
    assert "".join(s.text for s in lt.segments) == lt.text
    if lt.channel == "ussd":
        assert lt.segment_count == 1 and lt.units <= gsm.USSD_MAX[enc]
    elif lt.channel == "flash":
        assert lt.segment_count == 1 and lt.units <= gsm.SMS_SINGLE[enc]
        assert lt.dcs in (0x10, 0x18)
    else:
        assert 1 <= lt.segment_count <= 8
    assert lt.remaining >= 0
    assert "\ufffd" not in lt.text


@pytest.mark.parametrize("name", STORE.names())
def test_every_template_degrades_to_every_channel_within_limits(name: str) -> None:
    template = STORE.get(name)
    message = template.render(template.sample)
    for channel in CHANNELS:
        lt = degrade_template(template, message, channel)
        _assert_within_limits(lt)
        json.dumps(lt.to_json(), ensure_ascii=False)
        sig = message.brand.signature
        if not lt.override:
            assert lt.text.startswith(f"【{sig}】")
        assert list(lt.reply_map)[: len(message.all_suggestions)] == [
            str(i) for i in range(1, len(message.all_suggestions) + 1)
        ]
        for i, s in enumerate(message.all_suggestions, 1):
            assert lt.reply_map[str(i)] == s.postback
        shown = [r.key for r in lt.replies if r.shown]
        assert all(r.line in lt.text for r in lt.replies if r.shown)
        assert set(shown).isdisjoint(lt.dropped)


def test_courier_sms_reads_naturally() -> None:
    t = STORE.get("courier-hangup")
    lt = degrade(t.render(t.sample), "sms")
    assert lt.text.splitlines() == [
        "【顺丰速运】您的快递派送中",
        "运单号 SF1234567890123",
        "预计送达：今天 18:00 前",
        "快递员 王*国 刚刚联系过您，如有问题可直接回电。",
        "查询物流：https://www.sf-express.com/track?no=SF1234567890123",
        "联系快递员：13800138000",
        "回复3 改约派送",
        "回复4 评价服务",
    ]
    assert lt.encoding == "UCS-2" and lt.dcs == 0x08 and lt.segment_count == 3
    assert lt.dropped == () and lt.shortened == ()
    assert resolve_reply(lt.reply_map, "1") == "track:SF1234567890123"
    assert resolve_reply(lt.reply_map, "回复４") == "rate:SF1234567890123"


def test_courier_flash_shortens_description_then_links() -> None:
    t = STORE.get("courier-hangup")
    lt = degrade(t.render(t.sample), "flash")
    lines = lt.text.splitlines()
    assert lines[0] == "【顺丰速运】您的快递派送中"
    assert "回复1 查询物流" in lines  # the URL does not fit: reply 1 and the chatbot sends it
    assert "联系快递员：13800138000" in lines
    assert lines[-2:] == ["回复3 改约派送", "回复4 评价服务"]
    assert "SF12" not in lt.text  # never half a waybill number
    assert "description" in lt.shortened
    assert lt.units <= 70


def test_description_is_cut_with_an_ellipsis_on_a_character_boundary() -> None:
    card = Card(title="通知", description="🌻" * 100, suggestions=(_reply("好的", "ok"),))
    for channel in ("flash", "ussd"):
        lt = degrade(_msg(card), channel)
        _assert_within_limits(lt)
        desc = lt.text.splitlines()[1]
        assert desc.endswith("…") and set(desc[:-1]) == {"🌻"}
        assert lt.text.encode("utf-16-be")  # no lone surrogate anywhere


def test_ascii_card_is_ucs2_because_of_the_signature_brackets() -> None:
    card = Card(
        title="SF123",
        description="Your parcel will arrive today between 14:00 and 18:00. " * 6,
        suggestions=(_reply("Reschedule", "r"),),
    )
    lt = degrade(_msg(card, signature="SF"), "flash")
    # 【】 are not GSM-7: the sender-signature convention makes every generated text UCS-2
    assert lt.encoding == "UCS-2" and lt.dcs == 0x18
    _assert_within_limits(lt)
    desc = lt.text.splitlines()[1]
    assert desc.endswith("…") and desc.startswith("Your parcel")
    assert not desc[:-1].endswith((" ", ".", ":"))


def test_ascii_text_override_is_gsm7() -> None:
    lt = degrade(_msg(Card(title="x"), overrides={"flash": "SF: parcel 123 arrives today. Reply 1"}), "flash")
    assert lt.encoding == "GSM-7" and lt.dcs == 0x10 and lt.override
    assert lt.limit == 160


def test_buttons_alone_exceed_ussd() -> None:
    buttons = tuple(_reply(f"第{i}个很长的按钮文字说明", f"pb:{i}") for i in range(1, 5))
    chips = tuple(_reply(f"更多选项{i}号", f"chip:{i}") for i in range(1, 12))
    message = _msg(Card(title="菜单", description="详情" * 50, suggestions=buttons), chips=chips)
    lt = degrade(message, "ussd")
    _assert_within_limits(lt)
    assert lt.dropped, "something had to go"
    kept = [r.key for r in lt.replies if r.shown]
    assert kept == [str(i) for i in range(1, len(kept) + 1)], "kept lines are the first ones"
    assert len(lt.reply_map) == 15 and lt.reply_map["15"] == "chip:11"
    assert any("left out" in n for n in lt.notes)
    assert [d["key"] for d in lt.to_json()["dropped"]] == list(lt.dropped)
    assert "详情" not in lt.text  # the description goes before any menu line does
    sms = degrade(message, "sms")
    assert sms.dropped == () and sms.segment_count > 1


def test_opt_out_line_is_dropped_last() -> None:
    cards = tuple(
        Card(
            title=f"商品{i} ¥{i}9.90",
            description="当季现摘，果园直发，坏果包赔",
            suggestions=(
                Suggestion("openUrl", "立即购买", f"buy:{i}", url=f"https://shop.example.cn/p/{i}"),
                _reply("了解详情", f"detail:{i}"),
            ),
        )
        for i in range(1, 11)
    )
    message = _msg(*cards, chips=(_reply("退订", "optout"),), signature="鲜果时光")
    for channel in ("ussd", "flash"):
        lt = degrade(message, channel)
        _assert_within_limits(lt)
        assert lt.text.endswith("回T退订")
        assert lt.reply_map["T"] == "optout" == lt.reply_map["21"]
        assert any(s.startswith("card ") for s in lt.shortened)


def test_empty_fields() -> None:
    lt = degrade(_msg(Card()), "sms")
    assert lt.text == "【顺丰速运】" and lt.reply_map == {}
    lt = degrade(_msg(Card(description="  \n 您好，\n\n  包裹已到  ")), "sms")
    assert lt.text == "【顺丰速运】您好，\n包裹已到"  # no title: the description follows the signature
    lt = degrade(_msg(Card(title="标题", description="")), "flash")
    assert lt.text == "【顺丰速运】标题"
    msg = Message(kind="card", cards=(), brand=Brand("x", "x"), template="t", phase="hang-up")
    assert degrade(msg, "ussd").text == "【x】"


def test_overlong_title_is_cut() -> None:
    lt = degrade(_msg(Card(title="很长的标题" * 40, suggestions=(_reply("好", "ok"),))), "flash")
    _assert_within_limits(lt)
    assert "title" in lt.shortened and "…" in lt.text


def test_sms_cap_shrinks_too() -> None:
    card = Card(title="公告", description="长" * 3000, suggestions=(_reply("收到", "ok"),))
    lt = degrade(_msg(card), "sms")
    _assert_within_limits(lt)
    assert lt.segment_count == 8 and "回复1 收到" in lt.text
    lt = degrade(_msg(card), "sms", max_sms_segments=2)
    assert lt.segment_count == 2 and lt.limit == 134


def test_sms_cap_with_pairs_on_every_boundary() -> None:
    card = Card(title="表情", description="😀" * 2000, suggestions=(_reply("收到", "ok"),))
    for n in (2, 3, 8):
        lt = degrade(_msg(card), "sms", max_sms_segments=n)
        _assert_within_limits(lt)
        assert lt.segment_count <= n


def test_override_replaces_text_and_is_checked() -> None:
    card = Card(title="标题", suggestions=(_reply("查询", "q"),))
    ok = degrade(_msg(card, overrides={"flash": "【顺丰速运】回复1 查询"}), "flash")
    assert ok.override and ok.text == "【顺丰速运】回复1 查询" and ok.reply_map == {"1": "q"}
    assert [r.shown for r in ok.replies] == [True]
    with pytest.raises(LimitExceeded) as err:
        degrade(_msg(card, overrides={"flash": "字" * 71}), "flash")
    assert "71 UCS-2 单位" in err.value.message and "70" in err.value.message
    assert err.value.problems[0].path == "legacy.flash"
    assert check_override("字" * 80, "ussd") is None
    assert "81 UCS-2 单位" in (check_override("字" * 81, "ussd") or "")
    assert "最多 182 个 GSM-7 字符" in (check_override("a" * 183, "ussd") or "")
    assert check_override("字" * 600, "sms") is not None
    # other channels are not affected by a flash override
    assert not degrade(_msg(card, overrides={"flash": "字" * 71}), "sms").override


def test_unknown_channel() -> None:
    with pytest.raises(ValueError, match="unknown legacy channel"):
        degrade(_msg(Card()), "mms")  # type: ignore[arg-type]


def test_result_is_frozen_and_json() -> None:
    lt = degrade(_msg(Card(title="t", suggestions=(_reply("a", "b"),))), "ussd", DEFAULT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lt.text = "x"  # type: ignore[misc]
    data = json.loads(json.dumps(lt.to_json(), ensure_ascii=False))
    assert data["replyMap"] == {"1": "b"} and data["replies"][0]["kind"] == "reply"
    assert data["segments"][0]["userDataHex"] == "【顺丰速运】t\n回复1 a".encode("utf-16-be").hex().upper()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1", "1"),
        ("１", "1"),
        (" 1 ", "1"),
        ("回复1", "1"),
        ("回1", "1"),
        ("回复：1", "1"),
        ("回复 12", "12"),
        ("01", "1"),
        ("①", "1"),
        ("一", "1"),
        ("十二", "12"),
        ("二十一", "21"),
        ("1。", "1"),
        ("【1】", "1"),
        ("\u30001\u3000", "1"),
        ("Reply 3", "3"),
        ("T", "T"),
        ("td", "T"),
        ("回T", "T"),
        ("０", None),
        ("", None),
        ("abc", None),
        ("1 2", None),
        ("第1", None),
        ("查询物流", None),
        ("1" * 50, None),
        ("1234", None),
    ],
)
def test_parse_reply(text: str, key: str | None) -> None:
    assert parse_reply(text) == key


def test_resolve_reply() -> None:
    reply_map = {"1": "track", "2": "call", "T": "optout"}
    assert resolve_reply(reply_map, "回复２") == "call"
    assert resolve_reply(reply_map, "3") is None
    assert resolve_reply(reply_map, "TD") == "optout"
    assert resolve_reply(reply_map, "你好") is None


def _add_override(root: Path, name: str, channel: str, text: str) -> int:
    manifest = root / name / "manifest.yaml"
    lines = manifest.read_text("utf-8").rstrip("\n").splitlines()
    lines += ["legacy:", f'  {channel}: "{text}"']
    manifest.write_text("\n".join(lines) + "\n", "utf-8")
    return len(lines)


def test_lint_reports_an_override_that_does_not_fit(scratch_templates: Path) -> None:
    line = _add_override(
        scratch_templates, "staff-card", "flash", "【{{ company.short_name }}】" + "您好" * 40
    )
    _add_override(scratch_templates, "bank-identity", "ussd", "【招商银行】{{ customer_title }}，请回电")
    store = TemplateStore(scratch_templates, reload_interval=0)
    problems = lint_templates(store, None, DEFAULT)
    assert len(problems) == 1, problems
    assert str(problems[0]).startswith(f"card_templates/staff-card/manifest.yaml:{line}: E021 legacy.flash: ")
    assert "86 UCS-2 单位" in problems[0].message


def test_cli_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--templates", str(TEMPLATES), "render", "courier-hangup", "--to", "flash"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("【顺丰速运】您的快递派送中\n")
    assert "闪信 · UCS-2 · DCS 0x18" in out
    assert "1 → track:SF1234567890123" in out
    assert cli_main(["--templates", str(TEMPLATES), "render", "ad-carousel", "--to", "sms"]) == 0
    out = capsys.readouterr().out
    assert "第 2 段：" in out and "UDH 050003" in out and "T → ad:optout" in out


def test_cli_reports_override_at_manifest_line(
    scratch_templates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _add_override(scratch_templates, "courier-hangup", "ussd", "字" * 81)
    rc = cli_main(["--templates", str(scratch_templates), "render", "courier-hangup", "--to", "ussd"])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"courier-hangup/manifest.yaml:{line}" in err and "81 UCS-2 单位" in err


def test_button_kinds_become_links_numbers_or_replies() -> None:
    buttons = (
        Suggestion("showLocation", "查看网点", "map", latitude=39.9, longitude=116.4, label="朝阳网点"),
        Suggestion(
            "showLocation", "地图", "map2", latitude=39.9, longitude=116.4, url="https://map.example.cn/p/1"
        ),
        Suggestion(
            "createCalendarEvent",
            "加入日历",
            "cal",
            start="2026-12-01T09:00:00+08:00",
            end="2026-12-01T10:00:00+08:00",
            title="接种",
        ),
        Suggestion("composeTextMessage", "发短信", "sms", phone="13957112345", message="您好"),
        Suggestion("dial", "拨打", "call", phone="95338"),
    )
    lt = degrade(_msg(Card(title="网点", suggestions=buttons)), "sms")
    assert lt.text.splitlines()[1:] == [
        "回复1 查看网点",
        "地图：https://map.example.cn/p/1",
        "回复3 加入日历",
        "发短信：13957112345",
        "拨打：95338",
    ]
    assert [r.value for r in lt.replies] == [None, "https://map.example.cn/p/1", None, "13957112345", "95338"]


def test_carousel_card_without_title_is_listed_by_its_description() -> None:
    cards = (
        Card(description="第一张说明\n第二行", suggestions=(_reply("选我", "a"),)),
        Card(title="第二张", description="说明二", suggestions=(_reply("选它", "b"),)),
    )
    lt = degrade(_msg(*cards), "flash")
    assert lt.text.splitlines() == [
        "【顺丰速运】",
        "第一张说明",
        "回复1 选我",
        "第二张",
        "说明二",
        "回复2 选它",
    ]


def _random_message(rng: random.Random) -> Message:
    pools = ["快递派送中运单号查询物流", "abc 123 SF-", "🌻😀👍", "€[]{}|^~\\", " \n\t", "`ç§"]

    def text(lo: int, hi: int) -> str:
        pool = "".join(rng.sample(pools, rng.randrange(1, len(pools) + 1)))
        return "".join(rng.choice(pool) for _ in range(rng.randrange(lo, hi)))

    def suggestion(i: int) -> Suggestion:
        kind = rng.choice(
            ["reply", "openUrl", "dial", "showLocation", "createCalendarEvent", "composeTextMessage"]
        )
        return Suggestion(
            kind,
            text(0, 26),
            f"pb:{i}",
            url="https://x.example.cn/" + text(0, 60),
            phone="1380013" + str(rng.randrange(10000)),
            latitude=1.0,
            longitude=2.0,
        )

    n_cards = rng.choice([1, 1, 2, 5, 10])
    cards = tuple(
        Card(
            title=text(0, 60) or None,
            description=text(0, 400) or None,
            suggestions=tuple(suggestion(c * 10 + i) for i in range(rng.randrange(0, 5))),
        )
        for c in range(n_cards)
    )
    chips = tuple(suggestion(100 + i) for i in range(rng.randrange(0, 12)))
    return _msg(*cards, chips=chips, signature=text(1, 40).strip() or "签名")


@pytest.mark.parametrize("seed", range(4))
def test_random_cards_always_fit(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        message = _random_message(rng)
        for channel in CHANNELS:
            lt = degrade(message, channel)
            _assert_within_limits(lt)
            lt.text.encode("utf-16-be")  # never a lone surrogate
            assert len(lt.reply_map) >= len(message.all_suggestions)
            shown = [int(r.key) for r in lt.replies if r.shown]
            assert shown == sorted(shown)


REFUSED_LINKS = [
    ("openUrl", "javascript:alert(1)", "'javascript'"),
    ("openUrl", "JavaScript:alert(1)", "'JavaScript'"),
    ("openUrl", "data:text/html,<script>alert(1)</script>", "'data'"),
    ("openUrl", "vbscript:msgbox(1)", "'vbscript'"),
    ("openUrl", "file:///etc/passwd", "'file'"),
    ("openUrl", "HTTPS://upper.example.cn", "'HTTPS'"),
    ("openUrl", "//example.cn/no-scheme", "without a scheme"),
    ("showLocation", "javascript:alert(1)", "'javascript'"),
    ("showLocation", "tel:95338", "'tel'"),
]


@pytest.mark.parametrize(("kind", "url", "why"), REFUSED_LINKS)
@pytest.mark.parametrize("channel", CHANNELS)
def test_links_the_rcs_target_refuses_are_left_out_of_legacy_text(
    kind: str, url: str, why: str, channel: str
) -> None:
    extra: dict[str, object] = {"latitude": 39.9, "longitude": 116.4} if kind == "showLocation" else {}
    button = Suggestion(kind, "打开", "open", url=url, **extra)  # type: ignore[arg-type]
    lt = degrade(_msg(Card(title="网点", suggestions=(button, _reply("好的", "ok")))), channel)  # type: ignore[arg-type]
    assert url.split(":")[0] not in lt.text and url not in lt.text
    assert "回复1 打开" in lt.text  # still a numbered reply: the bot gets the postback
    assert lt.replies[0].value is None and lt.reply_map["1"] == "open"
    assert any(n.startswith("link of 1 打开 left out:") and why in n for n in lt.notes), lt.notes


@pytest.mark.parametrize(
    "url", ["https://a.example.cn/x", "http://a.example.cn/x", "tel:+8695338", "sms:10086", "geo:39.9,116.4"]
)
def test_links_the_rcs_target_accepts_are_shown(url: str) -> None:
    lt = degrade(
        _msg(Card(title="网点", suggestions=(Suggestion("openUrl", "打开", "open", url=url),))), "sms"
    )
    assert f"打开：{url}" in lt.text and lt.replies[0].value == url
    assert not any(n.startswith("link of") for n in lt.notes)


def test_an_override_notes_a_refused_link_too() -> None:
    button = Suggestion("openUrl", "打开", "open", url="javascript:alert(1)")
    lt = degrade(
        _msg(Card(title="t", suggestions=(button,)), overrides={"sms": "【顺丰速运】回复1 打开"}), "sms"
    )
    assert lt.replies[0].value is None
    assert any("left out" in n and "'javascript'" in n for n in lt.notes)


def test_legacy_link_rules_are_the_gsma_schema_rules() -> None:
    from renderer.links import OPEN_URL, WEB_URL

    schema_file = Path(degrade.__code__.co_filename).parent / "schemas" / "botsuggestion.schema.json"
    schema = json.loads(schema_file.read_text("utf-8"))
    text = json.dumps(schema)
    assert json.dumps(OPEN_URL.pattern) in text  # openUrl.url
    assert json.dumps(WEB_URL.pattern) in text  # showLocation.fallbackUrl
