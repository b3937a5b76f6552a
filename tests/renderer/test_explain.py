"""A template's Jinja and YAML mistakes are told in Chinese, file:line kept, the original as detail."""

from __future__ import annotations

from pathlib import Path

import pytest

from renderer import TemplateInvalid, TemplateStore
from tests.support.templates import write_template


@pytest.mark.parametrize(
    ("card", "line", "said", "original"),
    [
        (
            'card:\n  title: "{% if a %}x"\n',
            2,
            "「if」块没有闭合，缺少 {% endif %}",
            "Unexpected end of template",
        ),
        ('card:\n  title: "{% frob %}"\n', 2, "不认识的标签「frob」", "unknown tag 'frob'"),
        ('card:\n  title: "{{ a | nofilter }}"\n', 2, "没有名为「nofilter」的过滤器", "No filter named"),
        ('card:\n  title: "{{ (a }}"\n', 2, "模板意外结束：缺少「)」", "expected ')'"),
        ("card:\n  title: x\n   description: y\n", 3, "多半是缩进不对", "mapping values are not allowed"),
        ("card:\n  title: x\n description: y\n", 3, "缩进不对", "expected <block end>"),
        ("card:\n\ttitle: x\n", 2, "不能用 Tab 缩进", "'\\t'"),
        ("card:\n  title: a\n  title: b\n", 3, "键「title」重复", "duplicate key"),
        ('card:\n  title: "{{ who }}"\n', 2, "「who」未定义", "'who' is undefined"),
    ],
)
def test_jinja_and_yaml_errors_read_in_chinese(
    tmp_path: Path, card: str, line: int, said: str, original: str
) -> None:
    write_template(tmp_path, "broken", card)
    with pytest.raises(TemplateInvalid) as info:
        TemplateStore(tmp_path, 0).get("broken").render({})
    [problem] = info.value.problems
    assert problem.file and problem.file.endswith("broken/card.yaml")
    assert problem.line == line
    assert said in problem.message, problem
    assert problem.detail and original in problem.detail, problem
    assert original not in problem.message  # said again in Chinese, not repeated
    assert problem.to_json()["detail"] == problem.detail


def test_manifest_mistakes_name_the_field_in_chinese(tmp_path: Path) -> None:
    manifest = "name: bad\ntitle: x\nphase: later\ncolour: red\nbrand:\n  signature: s\n  name: n\n"
    write_template(tmp_path, "bad", "card:\n  title: x\n", manifest=manifest)
    with pytest.raises(TemplateInvalid) as info:
        TemplateStore(tmp_path, 0).get("bad")
    said = {(p.path, p.line, p.message) for p in info.value.problems}
    assert said == {
        ("$", 1, "「manifest.yaml」里有模板不认识的字段：「colour」"),
        ("$.description", 1, "「说明（description）」必填"),
        ("$.phase", 3, "「阶段（phase）」须为以下之一：pre-call、in-call、hang-up"),
    }
    assert all(p.detail for p in info.value.problems)  # jsonschema's own words, for developers
