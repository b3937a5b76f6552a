"""The encoder/segmenter against 3GPP TS 23.038 / 23.040 vectors."""

from __future__ import annotations

import random

import pytest

from renderer import gsm
from renderer.gsm import BASIC_TABLE, ESC, EXTENSION_TABLE

# An independent decoder built from the spec tables (code → character).
_BASIC = {i: c for i, c in enumerate(BASIC_TABLE) if c != ESC}
_EXT = {code: c for c, code in EXTENSION_TABLE.items()}


def decode_septets(septets: str) -> str:
    out, esc = [], False
    for ch in septets:
        code = ord(ch)
        if esc:
            out.append(_EXT[code])
            esc = False
        elif code == 0x1B:
            esc = True
        else:
            out.append(_BASIC[code])
    assert not esc, "ended inside an escape"
    return "".join(out)


def decode_segment(seg: gsm.Segment, encoding: str) -> str:
    ud = bytes.fromhex(seg.user_data_hex)
    udh = bytes.fromhex(seg.udh_hex)
    assert ud.startswith(udh)
    if encoding == "UCS-2":
        assert seg.udl == len(ud)
        return ud[len(udh) :].decode("utf-16-be")
    fill = 1 if udh else 0
    count = seg.udl - (gsm.UDH_SEPTETS if udh else 0)
    return decode_septets(gsm.unpack_septets(ud[len(udh) :], count, fill))


def test_tables_are_the_spec_tables() -> None:
    assert len(BASIC_TABLE) == 128
    assert BASIC_TABLE[0] == "@" and BASIC_TABLE[0x24] == "¤" and BASIC_TABLE[0x7F] == "à"
    assert BASIC_TABLE[0x03] == "¥" and BASIC_TABLE[0x10] == "Δ" and BASIC_TABLE[0x60] == "¿"
    assert sorted(EXTENSION_TABLE) == sorted("\f^{}\\[~]|€")
    assert EXTENSION_TABLE["€"] == 0x65
    for ch in BASIC_TABLE.replace(ESC, ""):
        assert gsm.units(ch, "GSM-7") == 1, repr(ch)
    for ch in EXTENSION_TABLE:
        assert gsm.units(ch, "GSM-7") == 2, repr(ch)
    assert not gsm.is_gsm7("\x1b") and not gsm.is_gsm7("ç") and gsm.is_gsm7("Ç")
    assert not gsm.is_gsm7("`") and not gsm.is_gsm7("中")


@pytest.mark.parametrize(
    ("text", "packed"),
    [
        ("hellohello", "E8329BFD4697D9EC37"),  # the classic SMS-PDU example
        ("hello", "E8329BFD06"),
        ("", ""),
    ],
)
def test_septet_packing_known_vectors(text: str, packed: str) -> None:
    assert gsm.pack_septets(gsm.to_septets(text)).hex().upper() == packed
    enc = gsm.encode(text)
    assert enc.segments[0].user_data_hex == packed
    assert enc.segments[0].udl == len(text)


def test_concatenated_gsm7_user_data_with_fill_bit() -> None:
    # TP-UD of 'a' * 161 as python-gsmmodem's encodeSmsSubmitPdu builds it (reference 0):
    # UDH, one fill bit, then the septets; checked byte for byte in bench/legacy_bench.py too.
    e = gsm.encode("a" * 161, reference=0)
    assert e.segments[0].user_data_hex == "050003000201C2" + "E170381C0E87C3" * 19
    assert e.segments[1].user_data_hex == "050003000202C2E170381C0E8701"
    assert [s.udl for s in e.segments] == [160, 15]
    assert gsm.unpack_septets(bytes.fromhex(e.segments[1].user_data_hex)[6:], 8, 1) == "a" * 8


def test_160_vs_161_gsm_characters() -> None:
    one = gsm.encode("a" * 160)
    assert one.encoding == "GSM-7" and one.dcs == 0x00
    assert len(one.segments) == 1 and one.remaining == 0 and one.segments[0].udh_hex == ""
    assert len(bytes.fromhex(one.segments[0].user_data_hex)) == 140
    two = gsm.encode("a" * 161, reference=0x42)
    assert [s.units for s in two.segments] == [153, 8]
    assert [s.udh_hex for s in two.segments] == ["050003420201", "050003420202"]
    assert two.segments[0].udl == 160  # 7 septets of UDH + fill, then 153
    assert len(bytes.fromhex(two.segments[0].user_data_hex)) == 140
    assert two.remaining == 153 - 8


def test_70_vs_71_chinese_characters() -> None:
    one = gsm.encode("中" * 70)
    assert one.encoding == "UCS-2" and one.dcs == 0x08 and len(one.segments) == 1
    assert one.segments[0].user_data_hex == "4E2D" * 70
    two = gsm.encode("中" * 71, reference=7)
    assert [s.units for s in two.segments] == [67, 4]
    assert two.segments[0].user_data_hex == "050003070201" + "4E2D" * 67
    assert two.segments[1].udl == 6 + 8


@pytest.mark.parametrize("ext", ["€", "[", "]"])
def test_extension_character_at_a_segment_boundary(ext: str) -> None:
    # 152 + ESC would end segment 1 between ESC and the character: it moves whole to segment 2.
    e = gsm.encode("a" * 152 + ext + "b" * 10)
    assert [s.units for s in e.segments] == [152, 12]
    assert e.segments[0].text == "a" * 152 and e.segments[1].text.startswith(ext)
    # 151 + pair = exactly 153 septets: stays in segment 1
    e = gsm.encode("a" * 151 + ext + "b" * 10)
    assert [s.units for s in e.segments] == [153, 10]
    # 159 + pair = 161 septets: no longer a single SMS
    assert len(gsm.encode("a" * 159 + ext).segments) == 2
    assert len(gsm.encode(ext * 80).segments) == 1
    for seg in gsm.encode("x" + ext * 200).segments:
        assert decode_segment(seg, "GSM-7") == seg.text


def test_emoji_at_a_segment_boundary() -> None:
    e = gsm.encode("中" * 66 + "🌻" + "中" * 5)
    assert e.encoding == "UCS-2" and e.units == 73
    assert [s.units for s in e.segments] == [66, 7]
    assert e.segments[1].text.startswith("🌻")
    e = gsm.encode("中" * 65 + "🌻" + "中" * 5)
    assert [s.units for s in e.segments] == [67, 5]
    assert len(gsm.encode("中" * 68 + "🌻").segments) == 1  # 70 units
    assert len(gsm.encode("中" * 69 + "🌻").segments) == 2  # 71 units


def test_mixed_chinese_and_ascii_is_ucs2_throughout() -> None:
    text = "运单号 SF1234567890123 已签收"
    e = gsm.encode(text)
    assert e.encoding == "UCS-2" and e.units == len(text)
    assert bytes.fromhex(e.segments[0].user_data_hex).decode("utf-16-be") == text


def test_empty_text() -> None:
    e = gsm.encode("")
    assert e.encoding == "GSM-7" and e.units == 0 and len(e.segments) == 1
    assert e.segments[0].user_data_hex == ""
    assert gsm.encode("", "ussd").fits


def test_flash_is_class_0() -> None:
    assert gsm.encode("hi", "flash").dcs == 0x10
    assert gsm.encode("你好", "flash").dcs == 0x18
    assert gsm.encode("hi", "sms").dcs == 0x00
    assert gsm.encode("你好", "sms").dcs == 0x08


def test_ussd_limits_dcs_and_cr_padding() -> None:
    assert gsm.encode("a" * 182, "ussd").fits
    assert not gsm.encode("a" * 183, "ussd").fits
    assert gsm.encode("a" * 180 + "€", "ussd").fits and not gsm.encode("a" * 181 + "€", "ussd").fits
    assert gsm.encode("中" * 80, "ussd").fits and not gsm.encode("中" * 81, "ussd").fits
    assert gsm.encode("中" * 78 + "🌻", "ussd").fits and not gsm.encode("中" * 79 + "🌻", "ussd").fits
    assert gsm.encode("*100#", "ussd").dcs == 0x0F
    assert gsm.encode("余额", "ussd").dcs == 0x48
    # 7 characters leave 7 spare bits: they carry CR, not zeros ('@')
    seg = gsm.encode("1234567", "ussd").segments[0]
    raw = bytes.fromhex(seg.user_data_hex)
    assert len(raw) == 7 and gsm.unpack_septets(raw, 8)[7] == "\r"
    assert seg.units == 7
    # 8 characters fill 7 octets exactly: no padding
    assert len(bytes.fromhex(gsm.encode("12345678", "ussd").segments[0].user_data_hex)) == 7
    # a wanted final CR on an octet boundary gets a second CR
    seg = gsm.encode("1234567\r", "ussd").segments[0]
    assert gsm.unpack_septets(bytes.fromhex(seg.user_data_hex), 9)[-2:] == "\r\r"
    # 182 septets = 160 octets, the USSD maximum
    assert len(bytes.fromhex(gsm.encode("a" * 182, "ussd").segments[0].user_data_hex)) == 160


def test_cut_never_splits_a_pair() -> None:
    assert gsm.cut("中" * 5 + "🌻x", 6, "UCS-2") == "中" * 5
    assert gsm.cut("中" * 5 + "🌻x", 7, "UCS-2") == "中" * 5 + "🌻"
    assert gsm.cut("abc€d", 4, "GSM-7") == "abc"
    assert gsm.cut("abc€d", 5, "GSM-7") == "abc€"
    assert gsm.cut("abc", 0, "GSM-7") == ""
    assert gsm.cut("abc", 10, "GSM-7") == "abc"


def test_lone_surrogates_are_cleaned_not_fatal() -> None:
    text = "坏\ud800字"
    cleaned = gsm.clean(text)
    assert cleaned == "坏\ufffd字"
    e = gsm.encode(text)  # even uncleaned text encodes without raising
    assert e.encoding == "UCS-2"


def test_concatenation_reference_is_deterministic_and_bounded() -> None:
    a = gsm.encode("中" * 100)
    b = gsm.encode("中" * 100)
    assert a.segments[0].udh_hex == b.segments[0].udh_hex
    assert gsm.encode("中" * 100, reference=0x1FF).segments[0].udh_hex[6:8] == "FF"


POOLS = [
    "abcdefghijklmnopqrstuvwxyz0123456789 .,!?",
    "abc€[]{}|^~\\ ",
    "中文短信测试你好世界",
    "中文a1 🌻😀👍",
    BASIC_TABLE.replace(ESC, "") + "".join(EXTENSION_TABLE),
]


@pytest.mark.parametrize("seed", range(5))
def test_random_texts_segment_correctly(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        pool = rng.choice(POOLS)
        text = "".join(rng.choice(pool) for _ in range(rng.randrange(0, 700)))
        e = gsm.encode(text, "sms")
        assert "".join(s.text for s in e.segments) == text
        single = gsm.SMS_SINGLE[e.encoding]
        if e.units <= single:
            assert len(e.segments) == 1
        else:
            for seg in e.segments:
                assert seg.units <= gsm.SMS_CONCAT[e.encoding]
                assert seg.units == gsm.units(seg.text, e.encoding)
            for seg in e.segments[:-1]:  # greedy: only a pair can leave one unit unused
                assert seg.units >= gsm.SMS_CONCAT[e.encoding] - 1
        for seg in e.segments:
            assert decode_segment(seg, e.encoding) == seg.text
