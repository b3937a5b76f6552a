"""Template loading, binding, error locations, reload and the sandbox."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from renderer import DataInvalid, TemplateInvalid, TemplateNotFound, TemplateStore, to_rcs
from tests.support.templates import TEMPLATES, write_template

ALL = TemplateStore(TEMPLATES).names()


def test_project_ships_the_required_templates() -> None:
    assert {
        "courier-hangup",
        "bank-identity",
        "gov-hotline",
        "staff-card",
        "personal-show",
        "ad-carousel",
    } <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_sample_renders_to_a_valid_payload(name: str) -> None:
    template = TemplateStore(TEMPLATES).get(name)
    message = template.render(template.sample)
    payload = to_rcs(message)
    assert message.brand.signature
    assert payload.message["message"]


def test_all_suggestion_kinds_are_exercised_by_the_samples() -> None:
    store = TemplateStore(TEMPLATES)
    kinds = {s.kind for n in ALL for s in store.get(n).render(store.get(n).sample).all_suggestions}
    assert kinds == {"reply", "openUrl", "dial", "showLocation", "createCalendarEvent", "composeTextMessage"}


def test_carousel_loops_over_data_and_chips_follow() -> None:
    t = TemplateStore(TEMPLATES).get("ad-carousel")
    msg = t.render(t.sample)
    assert msg.kind == "carousel"
    assert msg.cards[0].title.startswith("赣南脐橙")
    assert len(msg.cards) == len(t.sample["offers"])
    assert [s.postback for s in msg.chips] == ["ad:call", "ad:optout"]


def test_conditions_drop_optional_buttons() -> None:
    t = TemplateStore(TEMPLATES).get("bank-identity")
    data = dict(t.sample)
    del data["verify_url"]
    msg = t.render(data)
    assert [s.postback for s in msg.cards[0].suggestions] == ["bank:callback", "bank:later:8821"]


def test_typed_expressions_keep_numbers() -> None:
    t = TemplateStore(TEMPLATES).get("gov-hotline")
    loc = t.render(t.sample).cards[0].suggestions[0]
    assert loc.kind == "showLocation"
    assert loc.latitude == pytest.approx(39.8849)
    assert isinstance(loc.longitude, float)


def test_hostile_data_is_plain_text(tmp_path: Path) -> None:
    write_template(tmp_path, "echo", 'card:\n  title: "{{ t }}"\n  description: "{{ d }}"\n')
    t = TemplateStore(tmp_path).get("echo")
    evil = '"}, "x": {{7*7}} {% raw %}\n\\u0000 </script>'
    msg = t.render({"t": evil, "d": "{{ ''.__class__.__mro__ }}"})
    assert msg.cards[0].title == evil.strip()
    assert msg.cards[0].description == "{{ ''.__class__.__mro__ }}"
    content = to_rcs(msg).message["message"]["generalPurposeCard"]["content"]
    assert content["title"] == evil.strip()
    assert "49" not in content["title"]


def test_data_errors_list_every_problem_with_json_path() -> None:
    t = TemplateStore(TEMPLATES).get("courier-hangup")
    with pytest.raises(DataInvalid) as info:
        t.render({"waybill": "bad", "status": "丢了", "courier": {"name": ""}, "extra": 1})
    paths = {p.path for p in info.value.problems}
    assert {"$.waybill", "$.status", "$.courier.name", "$.courier.phone", "$.tracking_url"} <= paths
    assert any("extra" in p.message for p in info.value.problems)


def test_ten_megabyte_string_is_rejected_without_echo() -> None:
    t = TemplateStore(TEMPLATES).get("personal-show")
    with pytest.raises(DataInvalid) as info:
        t.render({"nickname": "x" * 10_000_000, "motto": "hi"})
    assert len(str(info.value.to_json())) < 2000
    assert info.value.problems[0].path == "$.nickname"


def test_unknown_template_and_invalid_names(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path)
    for name in ("nope", "../etc", "a/b", "", "UPPER"):
        with pytest.raises(TemplateNotFound):
            store.get(name)


@pytest.mark.parametrize(
    ("card", "line", "needle"),
    [
        ('card:\n  title: "ok"\n  description: "{{ oops( }}"\n', 3, "模板意外结束"),
        ('card:\n  title: "{{ missing.value }}"\n', 2, "「missing」未定义"),
        ("card:\n  title: x\n  colour: red\n", 3, "不认识的键「colour」"),
        ("card:\n  title: [unclosed\n", 3, "方括号 [ ] 列表没有闭合"),
        ("card:\n  title: x\n  suggestions:\n    - reply: {postback: p}\n", 4, "缺少必填的键「text」"),
        ("card:\n  title: x\n  suggestions:\n    - beam: {text: t}\n", 4, "一个按钮要有且只有一种"),
        ("a: &x [1]\nb: *x\n", 2, "YAML 别名"),
        ("card:\n  title: x\ncarousel:\n  cards: [{title: y}]\n", 1, "要有且只有一个"),
        ("carousel:\n  cards:\n    - for: nothing here\n      title: x\n", 3, "名字 in 表达式"),
    ],
)
def test_template_bugs_report_file_and_line(tmp_path: Path, card: str, line: int, needle: str) -> None:
    write_template(tmp_path, "broken", card)
    store = TemplateStore(tmp_path)
    with pytest.raises(TemplateInvalid) as info:
        store.get("broken").render({})
    problem = info.value.problems[0]
    assert problem.file == "card_templates/broken/card.yaml" or problem.file.endswith("broken/card.yaml")
    assert problem.line == line, str(info.value)
    assert needle in str(info.value)


def test_runtime_error_line_inside_a_block_scalar(tmp_path: Path) -> None:
    card = "card:\n  title: t\n  description: |\n    line one\n    {{ nope }}\n"
    write_template(tmp_path, "blk", card)
    with pytest.raises(TemplateInvalid) as info:
        TemplateStore(tmp_path).get("blk").render({})
    assert info.value.problems[0].line == 5  # the line of `{{ nope }}` inside the block


def test_manifest_errors_point_at_the_line(tmp_path: Path) -> None:
    manifest = "name: m\ntitle: t\ndescription: d\nphase: after-call\nbrand:\n  signature: s\n  name: n\n"
    write_template(tmp_path, "m", "card:\n  title: x\n", manifest=manifest)
    with pytest.raises(TemplateInvalid) as info:
        TemplateStore(tmp_path).get("m")
    p = info.value.problems[0]
    assert (p.path, p.line) == ("$.phase", 4)


def test_invalid_data_schema_is_a_template_error(tmp_path: Path) -> None:
    write_template(tmp_path, "s", "card:\n  title: x\n", schema={"type": "object", "properties": 3})
    with pytest.raises(TemplateInvalid, match=r"schema\.json"):
        TemplateStore(tmp_path).get("s")


@pytest.mark.parametrize(
    "expr",
    [
        "''.__class__.__mro__[1].__subclasses__()",
        "cycler.__init__.__globals__",
        "self._TemplateReference__context",
        "lipsum.__globals__['os']",
        "'x' * 1000000000",
        "2 ** 1000000000",
        "range(100000000) | list",
        "'{0.__class__}'.format(1)",
    ],
)
def test_sandbox_blocks_escapes_and_resource_bombs(tmp_path: Path, expr: str) -> None:
    write_template(tmp_path, "evil", f'card:\n  title: "{{{{ {expr} }}}}"\n')
    with pytest.raises(TemplateInvalid) as info:
        TemplateStore(tmp_path).get("evil").render({})
    assert info.value.problems[0].line == 2


def test_templates_cannot_include_files(tmp_path: Path) -> None:
    write_template(tmp_path, "inc", "card:\n  title: \"{% include '/etc/passwd' %}\"\n")
    with pytest.raises(TemplateInvalid):
        TemplateStore(tmp_path).get("inc").render({})


def test_reload_when_a_file_changes(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "live", "card:\n  title: 旧标题\n")
    store = TemplateStore(tmp_path, reload_interval=0.0)
    first = store.get("live")
    assert first.render({}).cards[0].title == "旧标题"
    assert store.get("live") is first  # cached while unchanged
    card = folder / "card.yaml"
    card.write_text("card:\n  title: 新标题\n", "utf-8")
    later = time.time() + 5
    os.utime(card, (later, later))
    second = store.get("live")
    assert second is not first
    assert second.render({}).cards[0].title == "新标题"
    assert second.version != first.version


def test_refresh_sees_a_change_at_once_whatever_the_interval(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "live", "card:\n  title: 旧标题\n")
    store = TemplateStore(tmp_path, reload_interval=3600.0)
    first = store.get("live")
    card = folder / "card.yaml"
    card.write_text("card:\n  title: 新标题\n", "utf-8")
    later = time.time() + 5
    os.utime(card, (later, later))
    assert store.get("live") is first  # within reload_interval: the cached build
    fresh = store.refresh("live")
    assert fresh.render({}).cards[0].title == "新标题"
    assert store.get("live") is fresh  # and every later get serves it


def test_a_broken_edit_reports_then_recovers(tmp_path: Path) -> None:
    folder = write_template(tmp_path, "live", "card:\n  title: ok\n")
    store = TemplateStore(tmp_path, reload_interval=0.0)
    store.get("live")
    (folder / "card.yaml").write_text("card:\n  title: '{{ x'\n", "utf-8")
    with pytest.raises(TemplateInvalid):
        store.get("live")
    (folder / "card.yaml").write_text("card:\n  title: fixed!\n", "utf-8")
    assert store.get("live").render({}).cards[0].title == "fixed!"


def test_loop_item_limit(tmp_path: Path) -> None:
    card = "carousel:\n  cards:\n    - for: x in xs\n      title: '{{ x }}'\n"
    write_template(tmp_path, "many", card)
    with pytest.raises(TemplateInvalid, match="最多 100 项"):
        TemplateStore(tmp_path).get("many").render({"xs": list(range(500))})


def test_simple_lookups_match_jinja_semantics(tmp_path: Path) -> None:
    """Plain `{{ a.b }}` fields take a fast path; results and errors must be Jinja's own."""
    card = (
        "card:\n"
        "  title: '{{ result }} / {{ n }} / {{ flag }} / {{ none }}'\n"  # `result` is plain data
        "  description: 'x{{ obj.items }}y'\n"  # key wins over dict method
        "  suggestions:\n"
        "    - showLocation: {text: t, latitude: '{{ geo.lat }}', longitude: '{{ geo.lng }}'}\n"
        "    - reply: {text: 'L{{ lst }}', postback: 'p:{{ obj.items }}{{ result }}'}\n"
    )
    write_template(tmp_path, "fast", card)
    t = TemplateStore(tmp_path).get("fast")
    data = {
        "result": "R",
        "n": 3,
        "flag": True,
        "none": None,
        "obj": {"items": "I"},
        "geo": {"lat": 31.2, "lng": 121.5},
        "lst": [1, 2],
    }
    msg = t.render(data)
    assert msg.cards[0].title == "R / 3 / True / None"
    assert msg.cards[0].description == "xIy"
    loc, reply = msg.cards[0].suggestions
    assert (loc.latitude, loc.longitude) == (31.2, 121.5)
    assert reply.text == "L[1, 2]" and reply.postback == "p:IR"  # not the latitude's result
    with pytest.raises(TemplateInvalid, match="未定义"):
        t.render({**data, "geo": {"lat": 1}})  # missing key: Jinja's own StrictUndefined error
    with pytest.raises(TemplateInvalid, match="未定义"):
        t.render({k: v for k, v in data.items() if k != "n"})


def test_sized_string_methods_work_inside_loops() -> None:
    """Inside a loop Jinja passes the loop's variables along with every call; the size checks of
    `replace`, `center`, `zfill` ... read only the method's own arguments."""
    from renderer.sandbox import make_environment

    source = (
        "{% for w in ['a-b', 'c-d'] %}{{ w.replace('-', ' ') }}|{{ w.center(5) }}|{{ w.zfill(4) }};"
        "{% endfor %}"
    )
    assert make_environment().from_string(source).render() == "a b| a-b |0a-b;c d| c-d |0c-d;"
