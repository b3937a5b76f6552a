"""Compiled template fields: a constant, a typed `{{ expression }}`, or a text template.

Every string in a card definition becomes one Field, compiled once. Binding evaluates it in
a shared Jinja context, so the value is produced by Jinja and placed into the output *as a
value*: data can contain quotes, newlines or `{{ }}` and still never reach the JSON syntax
or get evaluated a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, Undefined
from jinja2.runtime import Context
from jinja2.sandbox import SecurityError

from .errors import TemplateInvalid
from .sandbox import CardSandbox, is_single_expression
from .yamlsrc import line_of

RenderFunc = Callable[[Context], Iterator[str]]
RESULT = "mingpian__result"  # where an expression field leaves its value; not a data name


class SourceCompiler:
    """Base of the compilers of located YAML (card.yaml, chatbot flow.yaml): the environment
    their fields compile in, the file they read, and errors placed at a node's line."""

    def __init__(self, env: CardSandbox, file: str) -> None:
        self.env = env
        self.file = file

    def fail(self, node: Any, path: str, message: str) -> TemplateInvalid:
        return TemplateInvalid.at(self.file, line_of(node, 1), path, message)


class Field:
    """One compiled field value, with where it came from for error messages."""

    __slots__ = ("_func", "_mode", "file", "line", "path", "source", "value")

    def __init__(self, env: CardSandbox, raw: Any, file: str, path: str) -> None:
        self.file = file
        self.line = line_of(raw, 1)
        self.path = path
        self.source = raw
        self.value: Any = raw
        self._func: RenderFunc | None = None
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
        try:
            if self._mode == "expr":
                for _ in self._func(ctx):
                    pass
                result = ctx.vars[RESULT]
                if isinstance(result, Undefined):
                    str(result)  # raises the UndefinedError / SecurityError it stands for
                return result
            return "".join(self._func(ctx)).strip()
        except (
            TemplateError,
            SecurityError,
            ArithmeticError,
            TypeError,
            ValueError,
            LookupError,
            AttributeError,
            RecursionError,
        ) as exc:
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
