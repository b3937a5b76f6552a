"""An argparse parser that speaks Chinese: usage, help and argparse's own error messages.

The `mingpian` command is read by designers, so every sentence it prints is Chinese. argparse
writes a few English words of its own ("usage:", "options", "show this help message and exit")
and its errors; this parser names its sections and help option itself, prefixes the usage with
用法, and says argparse's errors again in Chinese by their shape (option names, values and
choices are kept as typed). An error kind not known here keeps argparse's words after a Chinese
lead, so nothing is ever lost.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

_TYPE_WORDS = {"int": "整数", "float": "数字", "Path": "路径"}

_ERRORS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"^the following arguments are required: (?P<names>.+)$"),
        lambda m: f"缺少参数：{m['names']}",
    ),
    (re.compile(r"^unrecognized arguments: (?P<args>.+)$"), lambda m: f"不认识的参数：{m['args']}"),
    (
        re.compile(
            r"^argument (?P<arg>\S+): invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)$"
        ),
        lambda m: f"参数 {m['arg']}：没有 {m['value']} 这一项（可选：{m['choices']}）",
    ),
    (
        re.compile(r"^argument (?P<arg>\S+): invalid (?P<type>\w+) value: (?P<value>.+)$"),
        lambda m: f"参数 {m['arg']}：{m['value']} 不是有效的{_TYPE_WORDS.get(m['type'], m['type'])}",
    ),
    (
        re.compile(r"^argument (?P<arg>\S+): expected one argument$"),
        lambda m: f"参数 {m['arg']} 后面要跟一个值",
    ),
    (
        re.compile(r"^argument (?P<arg>\S+): expected at least one argument$"),
        lambda m: f"参数 {m['arg']} 后面至少要跟一个值",
    ),
    (
        re.compile(r"^argument (?P<arg>\S+): ignored explicit argument (?P<value>.+)$"),
        lambda m: f"参数 {m['arg']} 不接受值（多了 {m['value']}）",
    ),
    (
        re.compile(r"^argument (?P<arg>\S+): not allowed with argument (?P<other>\S+)$"),
        lambda m: f"参数 {m['arg']} 不能和 {m['other']} 一起用",
    ),
    (
        re.compile(r"^ambiguous option: (?P<opt>\S+) could match (?P<matches>.+)$"),
        lambda m: f"选项 {m['opt']} 不明确，可能是：{m['matches']}",
    ),
    (
        re.compile(r"^one of the arguments (?P<names>.+) is required$"),
        lambda m: f"{m['names']} 至少要给一个",
    ),
]


def say_error(message: str) -> str:
    """One of argparse's error messages, in Chinese."""
    for pattern, say in _ERRORS:
        m = pattern.match(message)
        if m:
            return say(m)
    m = re.match(r"^argument (?P<arg>\S+): (?P<rest>.+)$", message)
    if m:
        return f"参数 {m['arg']}：{m['rest']}"
    return f"参数有误：{message}"


def columns(text: str) -> int:
    """How many terminal columns `text` takes: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class ChineseHelpFormatter(argparse.HelpFormatter):
    """Usage lines that begin with 用法 rather than "usage:", and option help aligned by the
    columns a name takes on screen (argparse counts characters, and 文件 takes four columns)."""

    def add_usage(self, usage: str | None, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "用法：" if prefix is None else prefix)

    def format_help(self) -> str:
        # argparse ends a section's heading with an ASCII colon; Chinese text takes "："
        return re.sub(r"^(\S[^\n]*):$", r"\1：", super().format_help(), flags=re.M)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if action.help is not argparse.SUPPRESS:
            names = [action, *self._iter_indented_subactions(action)]
            wide = max(columns(self._format_action_invocation(a)) for a in names) + self._current_indent
            self._action_max_length = max(self._action_max_length, wide)

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        lead = " " * self._current_indent + self._format_action_invocation(action)
        first, newline, rest = text.partition("\n")
        said = first[len(lead) :].lstrip(" ") if first.startswith(lead) else ""
        if not said:  # the name alone on its line (or no help): nothing to align
            return text
        help_position = min(self._action_max_length + 2, self._max_help_position)
        pad = help_position - columns(lead)
        if pad < 2:  # wider on screen than its column: the help starts on the next line
            return f"{lead}\n{' ' * help_position}{said}{newline}{rest}"
        return f"{lead}{' ' * pad}{said}{newline}{rest}"


class ChineseParser(argparse.ArgumentParser):
    """ArgumentParser with Chinese section titles, help option and error messages; sub-commands
    made with `add_subparsers().add_parser` are of this class too."""

    def __init__(
        self,
        *args: Any,
        add_help: bool = True,
        parents: Sequence[argparse.ArgumentParser] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("formatter_class", ChineseHelpFormatter)
        super().__init__(*args, add_help=False, **kwargs)
        self._positionals.title = "参数"
        self._optionals.title = "选项"
        if add_help:
            self.add_argument("-h", "--help", action="help", help="显示这段帮助并退出")
        # Parents merged once the sections have their Chinese titles, so that their options
        # join this parser's 选项 rather than a second section (what argparse does for parents).
        for parent in parents:
            self._add_container_actions(parent)
            self._defaults.update(parent._defaults)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}：错误：{say_error(message)}\n")
