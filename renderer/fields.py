"""Compiled template fields: a constant, a typed `{{ expression }}`, or a text template.

Every string in a card definition becomes one Field, compiled once. Binding evaluates it in
a shared Jinja context, so the value is produced by Jinja and placed into the output *as a
value*: data can contain quotes, newlines or `{{ }}` and still never reach the JSON syntax
or get evaluated a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.runtime import Context
from jinja2.sandbox import SecurityError
from jinja2.utils import missing

from .errors import TemplateInvalid
from .sandbox import CardSandbox, is_single_expression
from .yamlsrc import line_of

RenderFunc = Callable[[Context], Iterator[str]]
RESULT = "mingpian__result"  # where an expression field leaves its value; not a data name
_FALLBACK = object()


def _path(node: nodes.Node) -> tuple[str, ...] | None:
    """`a.b.c` as ("a", "b", "c"); None for anything that is not a plain name/attribute chain."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        head = _path(node.node)
        return None if head is None else (*head, node.attr)
    return None


def _simple_parts(env: CardSandbox, source: str) -> list[str | tuple[str, ...]] | None:
    """Literal text and `{{ a.b }}` lookups only (by far the most common field shape) → the
    pieces, so binding can skip Jinja for them; None for anything with filters, tags, calls."""
    body = env.parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts: list[str | tuple[str, ...]] = []
    for node in body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
        elif (path := _path(node)) is not None:
            parts.append(path)
        else:
            return None
    return parts


def _direct(parts: list[str | tuple[str, ...]], ctx: Context, native: bool) -> Any:
    """Evaluate simple parts by plain dict lookups, exactly as the sandbox would for JSON data
    (see CardSandbox.getattr). Anything unusual — a missing name, a non-dict on the way —
    returns _FALLBACK and the Jinja code runs instead, with its exact errors and semantics."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = ctx.resolve_or_missing(part[0])
        for attr in part[1:]:
            if type(value) is not dict or attr not in value:
                return _FALLBACK
            value = value[attr]
        if value is missing or isinstance(value, Undefined):
            return _FALLBACK
        if native:
            return value
        out.append(value if type(value) is str else str(value))
    return "".join(out).strip()


class Field:
    """One compiled field value, with where it came from for error messages."""

    __slots__ = ("_func", "_mode", "_parts", "file", "line", "path", "source", "value")

    def __init__(self, env: CardSandbox, raw: Any, file: str, path: str) -> None:
        self.file = file
        self.line = line_of(raw, 1)
        self.path = path
        self.source = raw
        self.value: Any = raw
        self._func: RenderFunc | None = None
        self._parts: list[str | tuple[str, ...]] | None = None
        self._mode = "const"
        if not isinstance(raw, str) or ("{{" not in raw and "{%" not in raw):
            # plain text stays plain: no Jinja involved at all
            self.value = str(raw) if isinstance(raw, str) else raw
            return
        expr = is_single_expression(raw)
        try:
            if expr is not None:
                env.compile_expression(expr)  # validates it is one expression
                tmpl = env.from_string("{% set " + RESULT + " = (" + expr + ") %}")
                self._mode = "expr"
            else:
                tmpl = env.from_string(raw)
                self._mode = "text"
            self._parts = _simple_parts(env, raw)
        except TemplateSyntaxError as exc:
            line = self.line + max((exc.lineno or 1) - 1, 0)
            raise TemplateInvalid.at(file, line, path, f"template syntax error: {exc.message}") from None
        self._func = tmpl.root_render_func

    @property
    def is_const(self) -> bool:
        return self._mode == "const"

    def text(self, ctx: Context | None) -> str | None:
        """The field as text; None when it renders empty (the field is then left out)."""
        if self._func is None:
            v = self.value
        elif self._mode == "text":
            v = self.evaluate(ctx)  # type: ignore[arg-type]
            return v or None
        else:
            v = self.evaluate(ctx)  # type: ignore[arg-type]
        if v is None or v == "":
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, dict | list | tuple):
            raise self.error(f"expected text, got {type(v).__name__}")
        return str(v)

    def evaluate(self, ctx: Context) -> Any:
        if self._func is None:
            return self.value
        if self._parts is not None:
            value = _direct(self._parts, ctx, self._mode == "expr")
            if value is not _FALLBACK:
                return value
        try:
            if self._mode == "expr":
                for _ in self._func(ctx):
                    pass
                result = ctx.vars[RESULT]
                if isinstance(result, Undefined):
                    str(result)  # raises the UndefinedError / SecurityError it stands for
                return result
            return "".join(self._func(ctx)).strip()
        except (TemplateError, SecurityError, ArithmeticError, TypeError, ValueError,
                LookupError, AttributeError, RecursionError) as exc:
            raise self.error(_describe(exc)) from None

    def error(self, message: str) -> TemplateInvalid:
        return TemplateInvalid.at(self.file, self.line, self.path, message)


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc) or name
    if isinstance(exc, SecurityError):
        return f"blocked by the template sandbox: {text}"
    if name == "UndefinedError":
        return f"undefined value: {text}"
    return f"{name}: {text}"
