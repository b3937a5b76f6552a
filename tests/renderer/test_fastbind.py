"""The plain-Python binders of simple fields (renderer/fastbind.py) against the sandboxed Jinja
path: the same values for every shipped template and many variations of its data, and whenever
Jinja refuses or fails, the fast path refuses too (binding then falls back to Jinja)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from renderer import TemplateStore
from renderer.errors import TemplateInvalid
from renderer.fields import Field
from renderer.sandbox import make_environment
from renderer.templates import CardTemplate
from tests.support.templates import TEMPLATES

STORE = TemplateStore(TEMPLATES)
ALL = STORE.names()
ENV = make_environment()

HOSTILE: list[Any] = [
    None,
    0,
    -1,
    3.5,
    True,
    "",
    "   ",
    "{{ 7 * 7 }}",
    "{% for x in range(9) %}x{% endfor %}",
    "'); import os; ('",
    '"\n\t\\\u2028',
    "<b>&amp;</b>",
    "张" * 3000,
    "x" * (ENV.limits.max_output + 10),
    [],
    [1, "a"],
    {},
    {"name": "x", "phone": "1"},
    {"items": 1, "keys": "k"},
]


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except TemplateInvalid as exc:
        return "error", str(exc)
    except Exception as exc:  # the fast path's own refusals
        return "refused", type(exc).__name__


def _slow(t: CardTemplate, data: dict[str, Any]) -> tuple[str, Any]:
    return _outcome(lambda: t._bind(t._env.root_context(data)))


def _variations(sample: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The sample with each value (at any depth) removed, or replaced by each hostile value."""
    yield sample

    def paths(node: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield (*prefix, k)
                yield from paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node[:2]):
                yield (*prefix, i)
                yield from paths(v, (*prefix, i))

    for path in paths(sample, ()):
        for value in [*HOSTILE, "DELETE"]:
            data = copy.deepcopy(sample)
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if value == "DELETE":
                if isinstance(parent, dict):
                    del parent[path[-1]]
                else:
                    parent.pop(path[-1])
            else:
                parent[path[-1]] = copy.deepcopy(value)
            yield data


@pytest.mark.parametrize("name", ALL)
def test_fast_binding_gives_what_jinja_gives(name: str) -> None:
    t = STORE.get(name)
    fast_used = 0
    for data in _variations(t.sample):
        slow = _slow(t, data)
        if t._fast:
            fast = _outcome(lambda: t._bind(data))  # noqa: B023
            if fast[0] == "ok":
                fast_used += 1
                assert slow == fast, data  # the fast path never succeeds where Jinja fails
        assert _outcome(lambda: t.bind(data)) == slow  # noqa: B023  # errors: Jinja's, exactly
    if t._fast:
        assert fast_used > 0


def test_most_shipped_templates_bind_without_jinja() -> None:
    fast = [n for n in ALL if STORE.get(n)._fast]
    assert "courier-hangup" in fast
    assert len(fast) >= len(ALL) // 2


FIELDS = [
    "{{ a }}",
    "{{ a.b }}",
    "{{ a['b'] }}",
    "{{ a[0] }}",
    "{{ a[-1] }}",
    "{{ a.items }}",
    "{{ a.items is defined }}",
    "{{ a['keys'] is defined }}",
    "{{ a.b is defined }}",
    "{{ a.b.c is defined }}",
    "{{ a[5] is defined }}",
    "{{ a is undefined }}",
    "{{ range is defined }}",
    "{{ lipsum is defined }}",
    "{{ a | default('z') }}",
    "{{ a.b | default('z') }}",
    "{{ a.b | d(a) }}",
    "{{ a | default('z', true) }}",
    "{{ a | mask_name }}",
    "{{ a | mask_phone }}",
    "{{ a | tel }}",
    "{{ a | upper }}",
    "{{ a | trim }}",
    "{{ a | length }}",
    "{{ a | int }}",
    "{{ a | round }}",
    "{{ '%.2f' | format(a) }}",
    "{{ '%s-%s' | format(a, b) }}",
    "{{ a if b else 'no' }}",
    "{{ a and b }}",
    "{{ a or b }}",
    "{{ not a }}",
    "{{ mingpian__result }}",
    "{{ a.__class__ }}",
    "{{ a['__class__'] }}",
    "x {{ a }} y {{ b }}",
    "x {{ a.b }}{% if b is defined %} and {{ b }}{% elif a %} a{% else %} none{% endif %} .",
    "{% if a %}\n  {{ a }}\n{% endif %}\n tail ",
    "{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}{{ a }}",
]
VALUES: list[Any] = [*HOSTILE, "MISSING", {"b": 1, "c": None}, {"b": {"c": "d"}}, ["p", "q"], "13800138000"]


@pytest.mark.parametrize("source", FIELDS)
def test_a_field_gives_what_jinja_gives(source: str) -> None:
    field = Field(ENV, source, "card.yaml", "card.title")
    for a in VALUES:
        for b in (None, "b", 0, "MISSING"):
            data = {k: v for k, v in (("a", a), ("b", b)) if v != "MISSING"}
            slow = _outcome(lambda: field.text(ENV.root_context(data)))  # noqa: B023
            fast = _outcome(lambda: field.text(data))  # noqa: B023
            if fast[0] == "ok":
                assert fast == slow, (source, data)


def test_simple_fields_have_a_fast_binder_and_others_do_not() -> None:
    simple = ["{{ a.b | default('') }}", "运单 {{ w }}{% if e is defined %}：{{ e }}{% endif %}"]
    for source in simple:
        assert Field(ENV, source, "card.yaml", "x").has_fast_path
    others = [
        "{{ a ~ b }}",
        "{{ a + 1 }}",
        "{{ a.upper() }}",
        "{{ a | join(',') }}",
        "{{ a | sort }}",
        "{% for x in a %}{{ x }}{% endfor %}",
        "{% set x = 1 %}{{ x }}",
        "{{ a[b] }}",
        "{{ mingpian__result }}",
        "{{ a if b }}",
        "{{ a == b }}",
    ]
    for source in others:
        assert not Field(ENV, source, "card.yaml", "x").has_fast_path, source


def test_designer_text_is_looked_up_as_data_never_run() -> None:
    key = "'); __import__('os').system('false'); ('"
    field = Field(ENV, "{{ a[" + repr(key) + "] }} {{ a.b }}", "card.yaml", "x")
    assert field.has_fast_path
    data = {"a": {key: "v", "b": "w"}}
    assert field.text(data) == "v w" == field.text(ENV.root_context(data))


MIXED_CARD = """\
carousel:
  width: "{{ width | default('MEDIUM_WIDTH') }}"
  cards:
    - title: "{{ head.title }}"
      description: |
        {{ head.text }}{% if head.note is defined %}（{{ head.note }}）{% endif %}
      media:
        url: "{{ head.image | default('') }}"
        contentType: image/png
        fileSize: "{{ head.size | default('') }}"
        height: TALL_HEIGHT
      suggestions:
        - reply: {text: 好的, postback: "ok:{{ id }}"}
        - reply: {text: 固定}
        - dial: {text: 致电, phone: "{{ phone | tel }}"}
        - openUrl: {text: "{{ link_text | default('打开') }}", url: "{{ link }}"}
        - if: "extra is defined"
          reply: {text: "{{ extra }}"}
    - for: "item in items"
      if: "item.show"
      title: "{{ loop.index }}. {{ item.name }}"
      description: "{{ item.text if item.text is defined else '—' }}"
      suggestions:
        - showLocation: {text: 位置, latitude: "{{ item.lat }}", longitude: "{{ item.lon }}"}
        - composeTextMessage: {text: 短信, phone: "{{ phone }}", message: "{{ item.name }}"}
        - createCalendarEvent:
            text: 日程
            start: "{{ item.start | default('2026-01-01T00:00:00Z') }}"
            end: "{{ item.start | default('2026-01-01T01:00:00Z') }}"
            title: "{{ item.name }}"
chips:
  - for: "chip in chips"
    reply: {text: "{{ chip.text }}", postback: "chip:{{ chip.id }}"}
  - reply: {text: 帮助}
"""
MIXED_SAMPLE = {
    "id": "A1",
    "phone": "400-811-1111",
    "link": "https://example.cn/a",
    "head": {
        "title": "标题",
        "text": "正文",
        "note": "备注",
        "image": "https://img.example.cn/a.png",
        "size": 1024,
    },
    "items": [
        {"name": "一", "show": True, "lat": 31.2, "lon": 121.4, "text": "说明"},
        {"name": "二", "show": False, "lat": 0, "lon": 0},
        {"name": "三", "show": True, "lat": "30", "lon": "120", "start": "2026-02-01T08:00:00Z"},
    ],
    "chips": [{"text": "甲", "id": 1}, {"text": "乙", "id": 2}],
    "extra": "更多",
}


def test_a_template_of_every_shape_binds_as_jinja_does(tmp_path: Any) -> None:
    from tests.support.templates import write_template

    write_template(tmp_path, "mixed", MIXED_CARD, sample=MIXED_SAMPLE)
    t = TemplateStore(tmp_path).get("mixed")
    assert t._fast and t._cardbind is not None
    message = t._bind(t.sample)
    assert message == t._bind(t._env.root_context(t.sample))
    assert [c.title for c in message.cards] == ["标题", "1. 一", "3. 三"]
    assert message.cards[0].media is not None and message.cards[0].media.file_size == 1024
    assert [s.text for s in message.chips] == ["甲", "乙", "帮助"]
    fast_used = 0
    for data in _variations(t.sample):
        slow = _slow(t, data)
        fast = _outcome(lambda: t._bind(data))  # noqa: B023
        if fast[0] == "ok":
            fast_used += 1
            assert slow == fast, data
        assert _outcome(lambda: t.bind(data)) == slow  # noqa: B023
    assert fast_used > 20
