"""YAML that remembers where each value came from, so lint and bind errors can say file:line.

Values are plain dicts/lists/strs subclassed only to carry a `line` attribute; they behave exactly
like the builtins everywhere else. Only safe YAML is accepted (no tags, no Python objects), and
aliases are refused: an alias bomb ("billion laughs") is a few lines of YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import explain
from .errors import Problem, TemplateInvalid

MAX_YAML_BYTES = 256 * 1024  # a card definition is a few KB; anything bigger is a mistake or abuse
MAX_DEPTH = 32


class LocStr(str):
    """A string plus the 1-based line where its text starts (after `|`/`>` block headers)."""

    line: int

    def __new__(cls, value: str, line: int) -> LocStr:
        obj = super().__new__(cls, value)
        obj.line = line
        return obj


class LocDict(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class LocList(list[Any]):
    line: int = 0
    item_lines: list[int]


def locate(root: Any, path: Any) -> int:
    """The best-known line of the value at `path` (keys/indexes) under `root`; 1 if unknown."""
    node, line = root, line_of(root, 1)
    for part in path:
        if isinstance(node, dict) and part in node:
            line = getattr(node, "key_lines", {}).get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            lines = getattr(node, "item_lines", None)
            line = lines[part] if lines else line
            node = node[part]
        else:
            break
        line = line_of(node, line)
    return line


def line_of(value: Any, default: int = 0) -> int:
    return int(getattr(value, "line", default) or default)


def _convert(node: yaml.Node, ctor: yaml.constructor.SafeConstructor, depth: int, file: str) -> Any:
    if depth > MAX_DEPTH:
        raise TemplateInvalid(
            f"{file}:{node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels",
            [Problem("", f"嵌套超过 {MAX_DEPTH} 层", file, node.start_mark.line + 1)],
        )
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = LocDict()
        out.line = line
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = ctor.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                kl = key_node.start_mark.line + 1
                said = f"键「{key}」重复：同一层里每个键只能写一次"
                raise TemplateInvalid(
                    f"{file}:{kl}: {said}", [Problem(key, said, file, kl, detail=f"duplicate key {key!r}")]
                )
            out.key_lines[key] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, ctor, depth + 1, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LocList(_convert(v, ctor, depth + 1, file) for v in node.value)
        seq.line = line
        seq.item_lines = [v.start_mark.line + 1 for v in node.value]
        return seq
    value = ctor.construct_object(node, deep=True)  # type: ignore[no-untyped-call]
    if isinstance(value, str):
        style = getattr(node, "style", None)
        return LocStr(value, line + 1 if style in ("|", ">") else line)
    return value


def load_yaml(path: Path, display: str | None = None) -> Any:
    """Parse one YAML file into located values; every failure is a TemplateInvalid with file:line."""
    file = display or str(path)
    raw = path.read_bytes()
    if len(raw) > MAX_YAML_BYTES:
        raise TemplateInvalid(
            f"{file}: larger than {MAX_YAML_BYTES} bytes",
            [Problem("", f"文件太大（最多 {MAX_YAML_BYTES} 字节）", file, 1)],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateInvalid(
            f"{file}: not UTF-8 ({exc.reason} at byte {exc.start})",
            [Problem("", "不是 UTF-8 文本", file, 1)],
        ) from None
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        original = str(exc.problem or exc)
        msg = explain.yaml_syntax(original)
        raise TemplateInvalid(
            f"{file}:{line}: {msg}", [Problem("", msg, file, line, detail=f"YAML syntax: {original}")]
        ) from None
    if node is None:
        return LocDict()
    ctor = yaml.constructor.SafeConstructor()
    try:
        return _convert(node, ctor, 0, file)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 1
        msg = explain.yaml_syntax(str(exc.problem))
        raise TemplateInvalid(
            f"{file}:{line}: {msg}", [Problem("", msg, file, line, detail=f"YAML: {exc.problem}")]
        ) from None


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases (exponential expansion) outright."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in templates", event.start_mark
            )
        return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
