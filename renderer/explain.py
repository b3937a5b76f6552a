"""Jinja and YAML errors in Chinese sentences, for the designers who read them.

Jinja and PyYAML word their errors for Python programmers ("Unexpected end of template. Jinja
was looking for the following tags: 'endif'…", "mapping values are not allowed here"). A
template's author reads them in the studio and in `mingpian lint`, so the common kinds are said
again here in Chinese, with what usually fixes them; the original stays with the problem as its
`detail`, for developers. A kind not known here keeps the original after a Chinese lead.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_CLOSERS = {"if": "{% endif %}", "for": "{% endfor %}", "macro": "{% endmacro %}", "set": "{% endset %}"}


def _unclosed(m: re.Match[str]) -> str:
    block = m.group("block")
    closer = _CLOSERS.get(block, f"{{% end{block} %}}")
    return f"模板意外结束：「{block}」块没有闭合，缺少 {closer}"


def _unknown_tag(m: re.Match[str]) -> str:
    tag = m.group("tag")
    if tag.startswith("end") or tag in ("else", "elif"):
        return f"多余的标签「{tag}」：前面没有与之对应的开始标签"
    return f"不认识的标签「{tag}」（可用的有 if、for、set 等）"


_TOKENS = {
    "end of print statement": "}}",
    "end of statement block": "%}",
    "end of template": "模板结尾",
    "name": "名字",
}


def _token(word: str) -> str:
    return _TOKENS.get(word, word)


_JINJA: list[Rule] = [
    (
        re.compile(
            r"Unexpected end of template\..*innermost block that needs to be closed is '(?P<block>\w+)'", re.S
        ),
        _unclosed,
    ),
    (
        re.compile(r"unexpected end of template, expected '(?P<want>[^']+)'", re.I),
        lambda m: f"模板意外结束：缺少「{_token(m.group('want'))}」",
    ),
    (re.compile(r"unexpected end of template", re.I), lambda m: "模板意外结束：有括号、引号或标签没有闭合"),
    (re.compile(r"Encountered unknown tag '(?P<tag>[^']+)'"), _unknown_tag),
    (re.compile(r"No filter named '(?P<name>[^']+)'"), lambda m: f"没有名为「{m.group('name')}」的过滤器"),
    (re.compile(r"No test named '(?P<name>[^']+)'"), lambda m: f"没有名为「{m.group('name')}」的测试"),
    (
        re.compile(r"expected token '(?P<want>[^']+)', got '(?P<got>[^']*)'"),
        lambda m: f"这里应该是「{_token(m.group('want'))}」，却是「{m.group('got')}」",
    ),
    (re.compile(r"unexpected char '(?P<ch>.+)' at \d+"), lambda m: f"不能出现的字符「{m.group('ch')}」"),
    (
        re.compile(r"unexpected 'end of (template|print statement)'"),
        lambda m: "模板意外结束：有括号或引号没有闭合",
    ),
    (re.compile(r"unexpected '(?P<tok>[^']*)'"), lambda m: f"这里不该出现「{_token(m.group('tok'))}」"),
    (re.compile(r"unexpected end of string", re.I), lambda m: "字符串的引号没有闭合"),
    (re.compile(r"^expected name or number$"), lambda m: "「.」后面缺少名字或数字"),
    (
        re.compile(r"chunk after expression"),
        lambda m: "表达式后面多了内容：两个值之间是不是缺了运算符或逗号？",
    ),
    (
        re.compile(r"expected an expression, got '(?P<got>[^']*)'"),
        lambda m: f"这里缺少表达式（却是「{_token(m.group('got'))}」）",
    ),
]

_UNDEFINED: list[Rule] = [
    (
        re.compile(r"^'(?P<name>[^']+)' is undefined$"),
        lambda m: f"「{m.group('name')}」未定义（数据里没有这个值）",
    ),
    (
        re.compile(r"has no attribute '(?P<name>[^']+)'$"),
        lambda m: f"「{m.group('name')}」未定义：这一项里没有这个键",
    ),
]

_YAML: list[Rule] = [
    (
        re.compile(r"mapping values are not allowed here"),
        lambda m: "这里不能写「键: 值」：多半是缩进不对，或值里有冒号需要加引号",
    ),
    (
        re.compile(r"found character '\\t' that cannot start any token"),
        lambda m: "不能用 Tab 缩进，请改用空格",
    ),
    (re.compile(r"could not find expected ':'"), lambda m: "缺少冒号：每个键后面要有「: 」"),
    (re.compile(r"did not find expected key"), lambda m: "缩进不对：这一行和同一层的键没有对齐"),
    (
        re.compile(r"expected <block end>, but found"),
        lambda m: "缩进不对：这一行和同一层的键没有对齐",
    ),
    (re.compile(r"expected ',' or '\]'"), lambda m: "方括号 [ ] 列表没有闭合，或项之间缺少逗号"),
    (re.compile(r"expected ',' or '\}'"), lambda m: "花括号 { } 没有闭合，或项之间缺少逗号"),
    (re.compile(r"found unexpected end of stream"), lambda m: "引号没有闭合"),
    (
        re.compile(r"did not find expected alphabetic or numeric character"),
        lambda m: "「&」「*」后面缺少名字",
    ),
    (
        re.compile(r"found undefined alias|aliases \(\*name\) are not allowed"),
        lambda m: "模板里不能用 YAML 别名（*名字）",
    ),
    (
        re.compile(r"found character '(?P<ch>.)' that cannot start any token"),
        lambda m: f"值不能以「{m.group('ch')}」开头：请给这个值加引号",
    ),
    (re.compile(r"did not find expected '-' indicator"), lambda m: "缩进不对：列表项「- 」没有对齐"),
    (
        re.compile(r"could not determine a constructor for the tag"),
        lambda m: "模板里不能用 YAML 标签（!名字）",
    ),
]


def _first(rules: list[Rule], text: str) -> str | None:
    for pattern, say in rules:
        m = pattern.search(text)
        if m:
            return say(m)
    return None


def jinja_syntax(message: str) -> str:
    """A Jinja TemplateSyntaxError's message as a Chinese sentence."""
    return _first(_JINJA, message) or f"模板语法错误：{message}"


def undefined(message: str) -> str:
    """A StrictUndefined error ("'who' is undefined") as a Chinese sentence."""
    return _first(_UNDEFINED, message) or f"值未定义：{message}"


def yaml_syntax(message: str) -> str:
    """A PyYAML parser or constructor error's message as a Chinese sentence."""
    return _first(_YAML, message) or f"YAML 语法错误：{message}"


_PYTHON = {
    "TypeError": "值的类型不对（比如把数字和文字相加）",
    "ZeroDivisionError": "除数是 0",
    "ValueError": "值不对（比如把文字转成数字）",
    "KeyError": "没有这个键",
    "IndexError": "下标超出了列表的范围",
    "AttributeError": "没有这个属性",
    "OverflowError": "数字太大",
}


def python_error(name: str) -> str:
    """What an exception a template raised while rendering (its class name) means."""
    return _PYTHON.get(name, "模板运行出错")
