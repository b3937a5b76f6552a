"""Data-schema violations as Chinese sentences that name the field by its schema `title`
(「运单号」须为 8–20 位大写字母或数字), for the designers and enterprises who fill in card data.

A raw regex or a validator's English is no help to them, so each JSON Schema keyword a card
schema uses has its sentence here, and simple patterns (anchored runs of character classes,
literal prefixes) are described in words by `pattern_text`; a pattern it cannot describe is
reported as a format problem with the field's own description, never as the regex. The keyword
itself stays on the problem as its machine code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = {
    "uri": "网址（如 https://example.com）",
    "email": "邮箱地址",
    "date": "日期（如 2026-12-01）",
    "date-time": "日期时间（如 2026-12-01T09:00:00+08:00）",
    "time": "时间（如 09:00:00）",
}
TYPES = {
    "string": "文字",
    "integer": "整数",
    "number": "数字",
    "boolean": "是或否",
    "array": "列表",
    "object": "一组字段",
    "null": "空值",
}


# -- field titles ------------------------------------------------------------------------------


def _resolve(node: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node` with local `$ref`s followed (as far as 16 hops), or {} when it is not a schema."""
    for _ in range(16):
        if not isinstance(node, Mapping):
            return {}
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node
        target: Any = root
        for raw in filter(None, ref[1:].split("/")):
            part = raw.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        here = {k: v for k, v in node.items() if k != "$ref"}
        node = {**(target if isinstance(target, Mapping) else {}), **here}
    return node if isinstance(node, Mapping) else {}


def field_schema(schema: Mapping[str, Any], path: Sequence[str | int]) -> Mapping[str, Any]:
    """The subschema that describes the value at `path` (object keys and array indexes)."""
    node = _resolve(schema, schema)
    for step in path:
        if isinstance(step, int):
            prefix = node.get("prefixItems")
            if isinstance(prefix, list) and step < len(prefix):
                node = _resolve(prefix[step], schema)
            else:
                node = _resolve(node.get("items", {}), schema)
        else:
            props = node.get("properties")
            node = _resolve(props.get(step, {}) if isinstance(props, Mapping) else {}, schema)
    return node


def field_title(schema: Mapping[str, Any], path: Sequence[str | int]) -> str:
    """What a person calls the field at `path`: its title; an untitled array item is "列表标题
    第 N 项"; the root is "数据"; anything else falls back to its key."""
    if not path:
        return str(_resolve(schema, schema).get("title") or "数据")
    title = field_schema(schema, path).get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    last = path[-1]
    if isinstance(last, int):
        return f"{field_title(schema, path[:-1])}第 {last + 1} 项"
    return str(last)


# -- patterns ----------------------------------------------------------------------------------

_QUANT = re.compile(r"\?|\*|\+|\{(\d+)(,(\d*))?\}")
_ESCAPES = {"d": "0-9"}


def _parse(pattern: str) -> tuple[list[tuple[str, str, int, int | None]], bool, bool] | None:
    """Atoms (kind "lit" or "class", text, min, max) of a pattern made only of literals, classes
    and quantifiers, and whether it is anchored at the start and end; None for anything else."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0 : len(pattern) - 1 if end else len(pattern)]
    atoms: list[tuple[str, str, int, int | None]] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "[":
            close = body.find("]", i + 2 if body[i + 1 : i + 2] == "]" else i + 1)
            if close < 0 or body[i + 1 : i + 2] == "^":
                return None
            kind, text, i = "class", body[i + 1 : close], close + 1
        elif c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                kind, text = "class", _ESCAPES[nxt]
            elif nxt.isalnum():
                return None  # \w, \s, \b …: not worth describing
            else:
                kind, text = "lit", nxt
            i += 2
        elif c in "()|.*+?{}^$":
            return None
        else:
            kind, text, i = "lit", c, i + 1
        lo, hi = 1, 1
        m = _QUANT.match(body, i)
        if m:
            q = m.group(0)
            if q == "?":
                lo, hi = 0, 1
            elif q == "*":
                lo, hi = 0, None
            elif q == "+":
                lo, hi = 1, None
            else:
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            i = m.end()
        atoms.append((kind, text, lo, hi))  # type: ignore[arg-type]
    return atoms, start, end


def _class_words(text: str) -> list[str] | None:
    """The kinds of character a class allows, in words; None when it holds nothing simple."""
    words: list[str] = []
    i = 0
    has = set()
    while i < len(text):
        if i + 2 < len(text) and text[i + 1] == "-":
            has.add(text[i : i + 3])
            i += 3
        else:
            c = text[i + 1] if text[i] == "\\" and i + 1 < len(text) else text[i]
            if text[i] == "\\" and c in _ESCAPES:
                has.add(_ESCAPES[c])
            else:
                has.add(c)
            i += 2 if text[i] == "\\" else 1
    if "A-Z" in has and "a-z" in has:
        words.append("字母")
        has -= {"A-Z", "a-z"}
    for rng, word in (("A-Z", "大写字母"), ("a-z", "小写字母")):
        if rng in has:
            words.append(word)
            has.discard(rng)
    digits = {r for r in has if len(r) == 3 and r[0].isdigit() and r[2].isdigit()}
    if digits:
        words.append("数字")  # [3-9] after a literal 1 is still "a digit" to a person
        has -= digits
    for r in sorted(has):
        if len(r) == 3:
            words.append(f"{r[0]}–{r[2]}")
        elif r == " ":
            words.append("空格")
        else:
            words.append(f"「{r}」")
    return words or None


def _join_or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else "、".join(words[:-1]) + "或" + words[-1]


def _count(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"至少 {lo} 位" if lo > 1 else ""
    return f"{lo} 位" if lo == hi else f"{lo}–{hi} 位"


def pattern_text(pattern: str) -> str | None:
    """A pattern in words (`^[A-Z0-9]{8,20}$` → "8–20 位大写字母或数字"), or None."""
    parsed = _parse(pattern)
    if parsed is None:
        return None
    atoms, start, end = parsed
    if not start:
        return None
    prefix: list[tuple[str, int]] = []  # literal, 0 = optional / 1 = required
    k = 0
    while k < len(atoms) and atoms[k][0] == "lit" and atoms[k][3] == 1:
        prefix.append((atoms[k][1], atoms[k][2]))
        k += 1
    rest = atoms[k:]
    must = "".join(t for t, n in prefix if n)
    may = "".join(t for t, n in prefix if not n)
    if not rest:
        if end or may:
            return f"须为「{must}」" if end and not may else None
        return f"须以「{must}」开头" if must else None
    if not end:
        return None
    words: list[str] = []
    lo, hi = len(must), len(must)
    for kind, text, a, b in rest:
        if kind == "class":
            found = _class_words(text)
            if found is None:
                return None
            words += [w for w in found if w not in words]
        elif f"「{text}」" not in words:
            words.append(f"「{text}」")
        lo += a
        hi = None if hi is None or b is None else hi + b
    out = f"{_count(lo, hi)}{_join_or(words)}"
    if must:
        out += f"，以「{must}」开头"
    if may:
        out += f"，可以「{may}」开头"
    return out


# -- sentences ---------------------------------------------------------------------------------


def violation_text(code: str, detail: Mapping[str, Any], title: str, field: Mapping[str, Any]) -> str:
    """One violation of keyword `code` (details as jsonschema_rs gives them) at the field called
    `title`, whose schema is `field`, as a sentence."""
    name = f"「{title}」"
    limit = detail.get("limit")
    if code == "required":
        return f"{name}必填"
    if code == "minLength":
        return f"{name}不能为空" if limit == 1 else f"{name}至少 {limit} 个字"
    if code == "maxLength":
        return f"{name}最多 {limit} 个字"
    if code == "pattern":
        words = pattern_text(str(detail.get("pattern", "")))
        if words:
            if words.startswith("须"):
                return f"{name}{words}"
            return f"{name}须为 {words}" if words[0].isdigit() else f"{name}须为{words}"
        about = field.get("description")
        return f"{name}格式不对" + (f"：{about}" if isinstance(about, str) and about else "")
    if code == "format":
        fmt = str(detail.get("format", ""))
        return f"{name}须为{FORMATS.get(fmt, '规定的格式')}"
    if code == "type":
        kinds = [TYPES.get(str(t), str(t)) for t in detail.get("types", [])]
        return f"{name}须为{_join_or(kinds) if kinds else '规定的类型'}"
    if code == "enum":
        options = "、".join(str(o) for o in detail.get("options", []))
        return f"{name}须为以下之一：{options}"
    if code == "const":
        return f"{name}只能是 {detail.get('expected_value', '')}".rstrip()
    if code in ("minimum", "exclusiveMinimum"):
        return f"{name}不能小于 {limit}" if code == "minimum" else f"{name}须大于 {limit}"
    if code in ("maximum", "exclusiveMaximum"):
        return f"{name}不能大于 {limit}" if code == "maximum" else f"{name}须小于 {limit}"
    if code == "minItems":
        return f"{name}至少要有 {limit} 项"
    if code == "maxItems":
        return f"{name}最多 {limit} 项"
    if code == "uniqueItems":
        return f"{name}里有重复的项"
    if code == "additionalProperties":
        extra = "、".join(f"「{x}」" for x in detail.get("unexpected", []))
        return f"{name}里有模板不认识的字段：{extra}" if extra else f"{name}里有模板不认识的字段"
    return f"{name}不符合模板的要求（{code}）"
