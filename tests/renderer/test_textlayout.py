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
