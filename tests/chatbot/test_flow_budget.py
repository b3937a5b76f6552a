"""Chatbot flows evaluate in the renderer's sandbox: the same budget, and values kept as data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chatbot.flows import load_flow
from chatbot.turns import State, turn
from tests.chatbot.test_turns import TEMPLATES, ev, write_flow

FLOW = """\
title: t
start: a
error_reply: 稍后再试
nodes:
  a:
    rules:
      - any: true
        set:
          value: "{expr}"
        reply:
          text: "好的"
        goto: b
  b: {{}}
"""

HOSTILE = [
    "{{ ('x'*100000).replace('x','y'*100000)|length }}",
    "{{ 'x'.ljust(10**7) }}",
    "{{ '%010000000d'|format(1) }}",
    "{{ '{:>10000000}'.format(1) }}",
    "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}{% endfor %}{% endfor %}{% endfor %}",
    "{{ (10**100)**100 }}",
    "{{ lipsum(10**5) }}",
    "{{ range }}",
]


@pytest.mark.parametrize("expr", HOSTILE)
def test_a_hostile_flow_value_is_refused_quickly_and_the_state_kept(tmp_path: Path, expr: str) -> None:
    flow = load_flow(write_flow(tmp_path, FLOW.format(expr=expr)))
    start = time.monotonic()
    state, out = turn(flow, TEMPLATES, State("a", {"k": 1}), ev(1, kind="text", text="hi"), now=5.0)
    assert time.monotonic() - start < 1.0
    assert state.node == "a" and state.ctx == {"k": 1}
    assert out[0].body["messageList"] == [{"contentType": "text/plain", "contentText": "稍后再试"}]


@pytest.mark.parametrize(
    ("expr", "kept"),
    [
        ("{{ event.text|e }}", "&lt;b&gt;"),
        ("{{ event.text|safe }}", "<b>"),
        ("{{ event.text|tojson }}", '"\\u003cb\\u003e"'),
        ("{{ [event.text|e] }}", ["&lt;b&gt;"]),
    ],
)
def test_markup_values_are_kept_as_plain_text(tmp_path: Path, expr: str, kept: object) -> None:
    flow = load_flow(write_flow(tmp_path, FLOW.format(expr=expr.replace('"', '\\"'))))
    state, out = turn(flow, TEMPLATES, State("a", {}), ev(1, kind="text", text="<b>"), now=5.0)
    assert state.node == "b" and out[0].body["messageList"][0]["contentText"] == "好的"
    value = state.ctx["value"]
    assert value == kept
    assert all(type(v) is str for v in (value if isinstance(value, list) else [value]))  # not Markup
