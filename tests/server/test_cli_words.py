"""The command line a designer reads is Chinese: help, usage, argparse's own errors, render
summaries and lint findings (each with its stable code); paths print as the user typed them;
a picture with characters no font draws is refused rather than drawn with boxes."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.test_cli import run
from tests.support.templates import write_template

# A run of Latin words is English: allowed only inside option names, metavars, paths, codes and
# the values a user types (removed below before looking).
_ALLOWED = re.compile(
    r"--?[a-z][a-z-]*|\$?MINGPIAN_[A-Z_]+|[\w./-]*\.(md|json|yaml|toml|j2)|\{[^}]*\}|'[^']*'|"
    r"\b(mingpian|serve|render|lint|settings|migrate|errors|rcs|ussd|flash|sms|png|jpeg|webp|mp4|"
    r"default|card_templates|courier-hangup|TOML|JSON|GSMA|HTTP|SQLite|PostgreSQL|Redis|Markdown|UTF|USSD|UCS|DCS|UD|UDH|"
    r"E\d{3}|W\d{3}|H5|MB|docs|api|settings)\b"
)


def _commands() -> set[str]:
    """The sub-commands' names: words the user types, so they stay as they are."""
    from mingpian.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def english_words(text: str) -> list[str]:
    words = re.findall(r"[A-Za-z]{3,}(?: [A-Za-z]{2,})*", _ALLOWED.sub(" ", text))
    return [w for w in words if w not in _commands()]


@pytest.mark.parametrize("command", [[], *([c] for c in sorted(_commands()))])
def test_help_is_chinese(command: list[str]) -> None:
    out = run(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("用法：mingpian"), out.stdout
    assert "显示这段帮助并退出" in out.stdout
    assert english_words(out.stdout) == [], out.stdout


def test_argparse_errors_are_chinese() -> None:
    cases = [
        (["render"], "mingpian render：错误：缺少参数：模板"),
        (["render", "courier-hangup", "--to", "gif"], "mingpian render：错误：参数 --to：没有 'gif' 这一项"),
        (["lint", "--frob"], "mingpian：错误：不认识的参数：--frob"),
        (["serve", "--port", "x"], "mingpian serve：错误：参数 --port：'x' 不是有效的整数"),
        (["render", "courier-hangup", "--data"], "mingpian render：错误：参数 --data 后面要跟一个值"),
        (["frob"], "mingpian：错误：参数 命令：没有 'frob' 这一项"),
    ]
    for argv, said in cases:
        out = run(*argv)
        assert out.returncode == 2, (argv, out.stderr)
        assert out.stderr.startswith("用法：mingpian"), out.stderr
        assert said in out.stderr, (argv, out.stderr)
        assert "error:" not in out.stderr and "usage:" not in out.stderr


def test_render_summaries_are_chinese() -> None:
    out = run("render", "personal-show", "--to", "ussd")
    assert out.returncode == 0, out.stderr
    report = out.stdout.split("-" * 40)[1]
    assert "USSD · UCS-2 · DCS 0x48 · 79/80 单位 · 1 段 · 最后一段还剩 1" in report
    assert "已缩短：描述" in report and "回复：" in report
    assert "（回复 点个赞；显示为 '回复1 点个赞'）" in report
    postbacks = re.sub(r"show:\w+|https://\S+", "", report)  # what the bot receives stays as is
    assert english_words(postbacks) == [], postbacks


def test_lint_paths_open_from_the_current_folder_as_typed(tmp_path: Path) -> None:
    where = tmp_path / "x"
    write_template(where, "undef", "card:\n  title: '{{ who }}'\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "mingpian", "lint", "--templates", "../x"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    [line] = out.stdout.splitlines()
    assert line == "../x/undef/card.yaml:2: E001 card.title: 「who」未定义（数据里没有这个值）"
    file = line.split(":")[0]
    assert (cwd / file).is_file()  # the printed path opens from where the user stands
    same = subprocess.run(  # --templates before the command says the same
        [sys.executable, "-m", "mingpian", "--templates", "../x", "lint", "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(same.stdout) == [
        {
            "code": "E001",
            "file": "../x/undef/card.yaml",
            "line": 2,
            "path": "card.title",
            "message": "「who」未定义（数据里没有这个值）",
        }
    ]


def test_project_lint_prints_paths_relative_to_the_checkout() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "mingpian", "render", "nope"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and out.stderr.startswith("错误：找不到这个模板"), out.stderr


SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "title": "姓名"}}}


@pytest.mark.parametrize("fmt", ["png", "mp4"])
def test_render_refuses_pictures_with_characters_no_font_draws(tmp_path: Path, fmt: str) -> None:
    write_template(tmp_path, "rare", "card:\n  title: '{{ name }}'\n", SCHEMA, {"name": "王𰀀"})
    target = tmp_path / f"card.{fmt}"
    out = run("--templates", str(tmp_path), "render", "rare", "--to", fmt, "--out", str(target))
    assert out.returncode == 2, out.stderr
    assert "$.name（姓名）：没有字体能画出 「𰀀」(U+30000)" in out.stderr
    assert "--allow-missing-glyphs" in out.stderr
    assert not target.exists()
    if fmt == "png":
        allowed = run(
            "--templates",
            str(tmp_path),
            "render",
            "rare",
            "--to",
            fmt,
            "--out",
            str(target),
            "--allow-missing-glyphs",
        )
        assert allowed.returncode == 0, allowed.stderr
        assert target.read_bytes().startswith(b"\x89PNG")
        assert allowed.stderr == f"已写入 {target}（{target.stat().st_size} 字节）\n"
    text = run("--templates", str(tmp_path), "render", "rare", "--to", "sms")
    assert text.returncode == 0  # text targets have no fonts to miss


def test_render_names_a_character_the_template_itself_brings(tmp_path: Path) -> None:
    card = "card:\n  title: '{{ name }}'\n  description: 'Linear A 𐘀'\n"
    write_template(tmp_path, "rare", card, SCHEMA, {"name": "王"})
    out = run("--templates", str(tmp_path), "render", "rare", "--to", "png", "--out", str(tmp_path / "c.png"))
    assert out.returncode == 2
    assert "卡片的 cards[0].description（描述）：没有字体能画出 「𐘀」(U+10600)" in out.stderr


def test_help_columns_line_up_on_screen() -> None:
    """Option names with Chinese metavars (two columns a character) still line up their help."""
    from mingpian.cli_parser import columns

    out = run("render", "--help").stdout
    starts = set()
    for line in out.splitlines():
        m = re.match(r"^(  \S.*?\S)( {2,})(\S.*)$", line)
        if m and not line.startswith("   "):
            starts.add(columns(m[1] + m[2]))
    assert len(starts) == 1, (starts, out)
    assert "参数：" in out and "选项：" in out


def test_lint_names_buttons_no_flow_answers_only_where_there_are_bots(tmp_path: Path) -> None:
    from chatbot.flows import FlowStore
    from mingpian.lint import lint_templates
    from mingpian.settings import PROJECT_ROOT
    from renderer import TemplateStore, get_profile

    card = "card:\n  title: 我\n  suggestions:\n    - reply: {text: 没人管, postback: 'mine:nobody'}\n"
    write_template(tmp_path / "t", "mine", card)
    store = TemplateStore(tmp_path / "t", 0)
    [finding] = lint_templates(store, None, get_profile("default"), FlowStore(PROJECT_ROOT / "chatbots"))
    assert (finding.code, finding.path) == ("W060", "cards[0].suggestions[0]")
    assert str(finding).endswith(
        "W060 cards[0].suggestions[0]: 没有聊天机器人流程回答按钮「没人管」（回传 mine:nobody）：点了它对方收不到任何回复"
    )
    assert lint_templates(store, None, get_profile("default"), FlowStore(tmp_path / "no-bots")) == []
