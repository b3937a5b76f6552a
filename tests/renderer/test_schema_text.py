"""Data problems read as sentences naming the field by its schema title, never a regex."""

from __future__ import annotations

from pathlib import Path

import pytest

from mingpian.settings import PROJECT_ROOT
from renderer import DataInvalid, TemplateStore
from renderer.schema_text import field_title, pattern_text


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("^[A-Z0-9]{8,20}$", "8–20 位大写字母或数字"),
        ("^[0-9]{4}$", "4 位数字"),
        ("^1[3-9][0-9]{9}$", "11 位数字，以「1」开头"),
        ("^\\+?[0-9 -]{5,20}$", "5–20 位数字、空格或「-」，可以「+」开头"),
        ("^[A-Za-z0-9-]{1,32}$", "1–32 位字母、数字或「-」"),
        ("^https://", "须以「https://」开头"),
        ("^(a|b)+$", None),
        ("^\\w+$", None),
    ],
)
def test_patterns_in_words(pattern: str, words: str | None) -> None:
    assert pattern_text(pattern) == words


def test_titles_follow_refs_and_name_untitled_items() -> None:
    schema = {
        "type": "object",
        "properties": {"slots": {"title": "时段", "type": "array", "items": {"$ref": "#/$defs/slot"}}},
        "$defs": {"slot": {"type": "object", "properties": {"label": {"title": "名称"}}}},
    }
    assert field_title(schema, ["slots", 1, "label"]) == "名称"
    assert field_title(schema, ["slots", 1]) == "时段第 2 项"
    assert field_title(schema, ["nope"]) == "nope"
    assert field_title(schema, []) == "数据"


def test_a_shipped_template_names_its_fields_in_chinese() -> None:
    store = TemplateStore(Path(PROJECT_ROOT / "card_templates"), 0)
    t = store.get("courier-hangup")
    data = {**t.sample, "waybill": "sf-123", "eta": "很" * 300}
    data.pop("status", None)
    with pytest.raises(DataInvalid) as info:
        t.render(data)
    problems = {p.path: p for p in info.value.problems}
    waybill = problems["$.waybill"]
    assert (waybill.code, waybill.message) == ("pattern", "「运单号」须为 8–20 位大写字母或数字")
    assert problems["$.eta"].code == "maxLength" and problems["$.eta"].message.startswith("「预计送达」最多")
    for p in info.value.problems:
        assert "^" not in p.message and "does not" not in p.message
        assert p.to_json()["code"] == p.code
