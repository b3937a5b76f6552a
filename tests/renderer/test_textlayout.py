"""Chinese line breaking measured with the shipped font: widths, kinsoku, Latin words, ellipsis."""

from __future__ import annotations

import pytest

from renderer.fonts import face
from renderer.textlayout import ELLIPSIS, NO_END, NO_START, wrap

F = face(20)
COURIER = (
    "运单号 SF1234567890123，预计送达：今天 18:00 前。快递员 张*明 刚刚联系过您，"
    "如有问题可直接回电（工作时间 9:00–21:00）。「温馨提示」：请勿将验证码告诉他人！"
)
PUNCT_HEAVY = "好。好，好、好）好」好』好】好！好？好：好；好…好（好「好『好【好“好”好。" * 3


def _squash(s: str) -> str:
    return "".join(s.split())


@pytest.mark.parametrize("width", [60, 97, 123, 150, 201, 260, 333, 480])
def test_lines_fit_and_keep_every_character(width: int) -> None:
    block = wrap(COURIER, F, width)
    assert not block.truncated
    for line in block.lines:
        body = line.rstrip("".join(NO_START))  # hanging marks may pass the edge
        assert F.width(body) <= width + 0.5, line
    assert _squash("".join(block.lines)) == _squash(COURIER)


@pytest.mark.parametrize("width", range(41, 400, 7))
def test_kinsoku_no_closing_punctuation_first_no_opening_last(width: int) -> None:
    for text in (COURIER, PUNCT_HEAVY):
        lines = wrap(text, F, width).lines
        for i, line in enumerate(lines):
            if i > 0:
                assert line[0] not in NO_START, f"line {i} starts with {line[0]!r}: {lines}"
            if i < len(lines) - 1:
                assert line[-1] not in NO_END, f"line {i} ends with {line[-1]!r}: {lines}"


def test_breaks_between_cjk_characters_without_spaces() -> None:
    text = "广告彩印挂机短信来电名片五G消息富媒体卡片" * 2
    lines = wrap(text, F, F.width("广告彩印挂机") + 1).lines
    assert lines[0] == "广告彩印挂机"
    assert all(len(line) <= 6 for line in lines)


def test_latin_words_and_numbers_stay_whole_when_they_fit() -> None:
    text = "请拨打客服热线 400-811-1111 或访问 https://m.example.cn/help 获取帮助"
    width = F.width("https://m.example.cn/help") + 4
    lines = wrap(text, F, width).lines
    assert any("400-811-1111" in line for line in lines), lines
    assert any("https://m.example.cn/help" in line for line in lines), lines


def test_a_word_wider_than_the_line_is_broken_by_character() -> None:
    url = "https://shop.example.cn/p/FR-1001?campaign=double12&utm_source=hangup"
    block = wrap(url, F, 120)
    assert len(block.lines) > 2
    assert all(F.width(line) <= 120.5 for line in block.lines)
    assert "".join(block.lines) == url


def test_clamped_to_n_lines_with_an_ellipsis_that_fits() -> None:
    block = wrap(COURIER, F, 150, max_lines=3)
    assert block.truncated
    assert len(block.lines) == 3
    assert block.lines[-1].endswith(ELLIPSIS)
    assert F.width(block.lines[-1]) <= 150.5
    assert block.lines[-1][-2] not in "，、（「"  # no dangling comma/opening mark before …


def test_explicit_newlines_are_kept_and_trailing_blank_lines_dropped() -> None:
    block = wrap("第一行\n第二行\n\n第四行\n\n", F, 300)
    assert block.lines == ("第一行", "第二行", "", "第四行")
    assert block.height == 4 * F.line_height


def test_text_that_fits_is_untouched() -> None:
    assert wrap("您的快递派送中", F, 500).lines == ("您的快递派送中",)
    assert wrap("", F, 500).lines == ()


def test_widths_come_from_real_font_metrics() -> None:
    # A CJK ideograph is a full em; Latin letters are proportional (i narrower than W).
    assert F.width("名") == pytest.approx(20, abs=0.5)
    assert F.width("i") < F.width("W") < F.width("名")
    assert face(40).width("名") == pytest.approx(2 * F.width("名"), abs=0.5)


# -- typesetting: orphans, balance, runs kept whole ---------------------------------------------
def _content_chars(line: str) -> int:
    return sum(1 for ch in line if not ch.isspace() and ch not in NO_START and ch not in NO_END)


@pytest.mark.parametrize(
    "text",
    [
        "生活明朗，万物可爱。正在学做川菜，欢迎来蹭饭！",
        "您好，我是您的专属客户经理，有需要随时联系我。",
        "我行工作人员不会索要密码、短信验证码或要求转账。",
        "如有疑问请拨打客服热线或前往最近的营业网点咨询办理。",
    ],
)
@pytest.mark.parametrize("chars", range(6, 24))
def test_no_last_line_holds_a_single_character(text: str, chars: int) -> None:
    width = F.width("国" * chars) + 0.5
    lines = wrap(text, F, width).lines
    assert _squash("".join(lines)) == _squash(text)
    if len(lines) > 1:
        assert _content_chars(lines[-1]) >= 2, lines
    for i, line in enumerate(lines):
        if i > 0:
            assert line[0] not in NO_START, lines


def test_a_short_last_line_is_balanced_with_the_lines_above() -> None:
    text = "生活明朗，万物可爱。正在学做川菜，欢迎来蹭饭！"
    width = F.width("国" * 21) + 0.5  # greedy: 21 characters, then a 2-character stub
    lines = wrap(text, F, width).lines
    assert len(lines) == 2
    assert F.width(lines[-1]) >= width / 3, lines
    assert F.width(lines[0]) > width / 2, lines  # not squeezed to half the card


@pytest.mark.parametrize("before", ["我们将在", "运单将于", "预计送达时间为明天上午"])
@pytest.mark.parametrize("chars", range(8, 20))
def test_bracketed_times_stay_whole_when_they_fit_on_the_next_line(before: str, chars: int) -> None:
    run = "【明天09:00-12:00】"
    text = f"{before}{run}派送，请留意接听。"
    width = F.width("国" * chars) + 0.5
    lines = wrap(text, F, width).lines
    if F.width(run) <= width:
        assert any(run in line for line in lines), lines
    assert _squash("".join(lines)) == _squash(text)


def test_parcel_numbers_and_times_are_never_split_when_they_fit() -> None:
    text = "运单号 SF1234567890123 的快件预计今天 18:00 前送达，改约单号 GY20261125000123。"
    for chars in range(9, 30):
        width = F.width("国" * chars) + 0.5
        joined = "\n".join(wrap(text, F, width).lines)
        for word in ("SF1234567890123", "18:00", "GY20261125000123"):
            if F.width(word) <= width:
                assert word in joined, (chars, joined)


def test_emoji_sequences_are_never_split() -> None:
    text = "全家福👨‍👩‍👧来了🇨🇳国庆快乐👍🏽" * 3
    for chars in range(3, 12):
        for line in wrap(text, F, F.width("国" * chars) + 0.5).lines:
            assert "\u200d" not in (line[0], line[-1]), line
            flags = sum(1 for ch in line if 0x1F1E6 <= ord(ch) <= 0x1F1FF)
            assert flags % 2 == 0, line
