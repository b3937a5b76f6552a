"""Flows and turns without HTTP: the flow format's errors (file:line), matching, session expiry,
numbered legacy replies, and that a turn is a pure function (same input → same message IDs)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from chatbot.events import InboundEvent
from chatbot.flows import FlowStore, check_flows, load_flow
from chatbot.turns import RenderCache, State, turn
from mingpian.settings import PROJECT_ROOT
from renderer import TemplateInvalid, TemplateStore

TEMPLATES = TemplateStore(PROJECT_ROOT / "card_templates")
FLOWS = FlowStore(PROJECT_ROOT / "chatbots")
WAYBILL = "SF1234567890123"


def ev(n: int, **kw: object) -> InboundEvent:
    return InboundEvent(
        dialect="csp",
        message_id=f"m{n}",
        user="tel:+8613800000001",
        chatbot="sip:106500@botplatform.rcs.chinaunicom.cn",
        **kw,
    )  # type: ignore[arg-type]


def write_flow(tmp: Path, text: str, bot: str = "demo") -> Path:
    d = tmp / "chatbots" / bot
    d.mkdir(parents=True, exist_ok=True)
    (d / "flow.yaml").write_text(text, "utf-8")
    return d / "flow.yaml"


def test_shipped_flows_load_and_reference_real_templates() -> None:
    assert set(FLOWS.flows) >= {"courier", "bank"} and FLOWS.errors == {}
    assert check_flows(PROJECT_ROOT / "chatbots", TEMPLATES) == []


BROKEN = [
    ("on instead of rules", "title: t\nstart: a\nnodes:\n  a:\n    on: []\n", ":5:", "write `rules:`"),
    (
        "bad goto",
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - any: true\n        goto: nowhere\n",
        ":6:",
        "goto 的节点「nowhere」不存在",
    ),
    ("bad start", "title: t\nstart: b\nnodes:\n  a: {}\n", ":2:", "起始节点「b」"),
    (
        "two triggers",
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - text: hi\n        any: true\n",
        ":6:",
        "有且只有一个触发条件",
    ),
    (
        "bad regex",
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - postback: {pattern: '(['}\n",
        ":6:",
        "正则表达式不对",
    ),
    (
        "bad expression",
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - any: true\n        reply:\n"
        "          text: '{{ ctx. }}'\n",
        ":8:",
        "「.」后面缺少名字或数字",
    ),
    (
        "reserved let",
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - any: true\n        let:\n          ctx: 1\n",
        ":8:",
        "不能用作名字",
    ),
    (
        "reply both",
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - any: true\n        reply:\n"
        "          text: hi\n          template: x\n",
        ":8:",
        "$.nodes.a.rules[0].reply",
    ),
]


@pytest.mark.parametrize(("name", "text", "line", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_flows_name_file_and_line(
    tmp_path: Path, name: str, text: str, line: str, message: str
) -> None:
    path = write_flow(tmp_path, text)
    with pytest.raises(TemplateInvalid) as info:
        load_flow(path)
    exc = info.value
    rendered = str(exc) + " ".join(f"{p.location()} {p.path} {p.message}" for p in exc.problems)
    assert re.search("chatbots/demo/flow.yaml" + line.rstrip(":") + r"\b", rendered), rendered
    assert message in rendered, rendered


def test_missing_template_is_reported_by_check(tmp_path: Path) -> None:
    write_flow(
        tmp_path,
        "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - any: true\n"
        "        reply:\n          template: no-such-card\n",
    )
    [line] = check_flows(tmp_path / "chatbots", TEMPLATES)
    assert line.startswith("chatbots/demo/flow.yaml:8:") and "no-such-card" in line


def test_turn_is_pure_and_ids_are_stable() -> None:
    flow = FLOWS.flows["courier"]
    e = ev(1, kind="postback", postback=f"track:{WAYBILL}")
    s1, out1 = turn(flow, TEMPLATES, None, e, now=1000.0)
    s2, out2 = turn(flow, TEMPLATES, None, e, now=1000.0, cache=RenderCache())
    assert s1 == s2 and [o.body for o in out1] == [o.body for o in out2]
    assert out1[0].message_id == out2[0].message_id
    _, other = turn(flow, TEMPLATES, None, replace(e, message_id="m2"), now=1000.0)
    assert other[0].message_id != out1[0].message_id


def test_render_cache_hits_give_identical_replies() -> None:
    flow = FLOWS.flows["courier"]
    cache = RenderCache()
    bodies = [
        turn(
            flow, TEMPLATES, None, ev(i, kind="postback", postback=f"track:{WAYBILL}"), now=1.0, cache=cache
        )[1][0].body["messageList"]
        for i in range(3)
    ]
    assert bodies[0] == bodies[1] == bodies[2] and cache.hits == 2 and cache.misses == 1


def test_numbered_reply_resolves_through_the_last_reply_map() -> None:
    flow = FLOWS.flows["courier"]
    state, out = turn(
        flow, TEMPLATES, None, ev(1, kind="postback", postback=f"reschedule:{WAYBILL}"), now=1.0
    )
    assert state.reply_map["4"] == f"slot:{WAYBILL}:locker"
    assert "回复4 放丰巢快递柜" in out[0].body["smsContent"]
    state, out = turn(flow, TEMPLATES, state, ev(2, kind="text", text=" 4 "), now=2.0)
    assert state.node == "confirmed" and state.ctx["slot"] == "放丰巢快递柜"
    # A number with no menu behind it is just text.
    state, out = turn(flow, TEMPLATES, replace(state, reply_map={}), ev(3, kind="text", text="4"), now=3.0)
    assert out[0].body["messageList"][0]["contentText"].startswith("抱歉，没有理解")


def test_session_expiry_resets_to_start() -> None:
    flow = FLOWS.flows["courier"]
    state, _ = turn(flow, TEMPLATES, None, ev(1, kind="text", text="查件"), now=1000.0)
    assert state.node == "ask_waybill"
    _, out = turn(flow, TEMPLATES, state, ev(2, kind="text", text="abc"), now=1000.0 + 60)
    assert out[0].body["messageList"][0]["contentText"].startswith("运单号格式不对")
    expired, out = turn(flow, TEMPLATES, state, ev(3, kind="text", text="abc"), now=1000.0 + 1801)
    assert expired.node == "idle" and expired.ctx == {}
    assert out[0].body["messageList"][0]["contentText"].startswith("抱歉，没有理解")


def test_broken_template_data_answers_politely_and_keeps_state(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        "title: t\nstart: a\nerror_reply: 稍后再试\nnodes:\n  a:\n    rules:\n"
        "      - any: true\n        reply:\n          template: courier-tracking\n"
        "          data: {waybill: bad}\n        goto: b\n  b: {}\n",
    )
    flow = load_flow(path)
    state, out = turn(flow, TEMPLATES, State("a", {"k": 1}), ev(1, kind="text", text="hi"), now=5.0)
    assert state.node == "a" and state.ctx == {"k": 1}
    assert out[0].body["messageList"] == [{"contentType": "text/plain", "contentText": "稍后再试"}]


def test_status_and_other_events_do_not_reply() -> None:
    flow = FLOWS.flows["courier"]
    state, out = turn(flow, TEMPLATES, None, ev(1, kind="other"), now=1.0)
    assert out == [] and state.node == "idle"


def test_location_event_reaches_fallback() -> None:
    flow = FLOWS.flows["bank"]
    _, out = turn(flow, TEMPLATES, None, ev(1, kind="location", latitude=22.5, longitude=113.9), now=1.0)
    assert "招商银行信用卡中心" in out[0].body["messageList"][0]["contentText"]


def test_mingpian_lint_reports_broken_flows(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    write_flow(tmp_path, "title: t\nstart: a\nnodes:\n  a:\n    rules:\n      - any: true\n        goto: b\n")
    env = {**os.environ, "MINGPIAN_CHATBOT_DIR": str(tmp_path / "chatbots")}
    out = subprocess.run(
        [sys.executable, "-m", "mingpian", "lint"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    # the flow is named where it is (it opens from the current folder), with its stable code
    flow = tmp_path / "chatbots" / "demo" / "flow.yaml"
    assert f"{flow}:6: E040 $.nodes.a.rules[0].goto: goto 的节点「b」不存在" in out.stdout


def test_unknown_profile_and_oversized_text(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "title: t\nprofile: vodafone\nstart: a\nnodes:\n  a: {}\n")
    with pytest.raises(TemplateInvalid, match=r"flow.yaml:2: \$.profile: 没有运营商配置「vodafone」"):
        load_flow(path)
    path = write_flow(
        tmp_path,
        "title: t\nstart: a\nerror_reply: 出错了\nnodes:\n  a:\n    rules:\n"
        "      - any: true\n        reply:\n          text: \"{{ '长' * 2001 }}\"\n",
    )
    _, out = turn(load_flow(path), TEMPLATES, None, ev(1, kind="text", text="hi"), now=1.0)
    assert out[0].body["messageList"][0]["contentText"] == "出错了"
