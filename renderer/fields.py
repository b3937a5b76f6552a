"""Compiled template fields: a constant, a typed `{{ expression }}`, or a text template.

Every string in a card definition becomes one Field, compiled once. Binding evaluates it in
a shared Jinja context, so the value is produced by Jinja and placed into the output *as a
value*: data can contain quotes, newlines or `{{ }}` and still never reach the JSON syntax
or get evaluated a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import Template, TemplateSyntaxError, Undefined, nodes
from jinja2.runtime import Context
from jinja2.sandbox import SecurityError

from . import explain, fastbind
from .budget import BudgetExceeded
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

    # Modes: "const" (no Jinja), "expr" (exactly `{{ expr }}`: its value), "text" (a few
    # outputs and no repetition: joined at once, then measured), "long" (anything else: the
    # output is measured before it is joined, env.concat).
    __slots__ = ("_fast", "_fast_tree", "_func", "_mode", "_tmpl", "file", "line", "path", "source", "value")

    def __init__(self, env: CardSandbox, raw: Any, file: str, path: str) -> None:
        self.file = file
        self.line = line_of(raw, 1)
        self.path = path
        self.source = raw
        self.value: Any = raw
        self._func: RenderFunc | None = None
        self._tmpl: Template | None = None
        self._fast: fastbind.FastFunc | None = None
        self._fast_tree: nodes.Node | None = None  # what _fast was compiled from (cardbind.py)
        self._mode = "const"
        if not isinstance(raw, str) or ("{{" not in raw and "{%" not in raw):
            # plain text stays plain: no Jinja involved at all
            self.value = str(raw) if isinstance(raw, str) else raw
            return
        expr = is_single_expression(raw)
        try:
            if expr is not None:
                env.compile_expression(expr)  # validates it is one expression
                assign = env.parse("{% set " + RESULT + " = (" + expr + ") %}")
                tmpl = env.from_string(assign)
                self._mode = "expr"
                self._fast = _fast_expression(env, assign)
                if self._fast is not None:
                    self._fast_tree = assign.body[0].node  # type: ignore[attr-defined]
            else:
                tree = env.parse(raw)
                self._fast = fastbind.compile_text(env, tree, RESULT, env.limits.max_output)
                if self._fast is not None:
                    self._fast_tree = tree
                tmpl = env.from_string(tree)
                self._mode = "text" if _few_outputs(tree) else "long"
        except TemplateSyntaxError as exc:
            line = self.line + max((exc.lineno or 1) - 1, 0)
            said = explain.jinja_syntax(exc.message or "")
            raise TemplateInvalid.at(file, line, path, said, exc.message) from None
        except RecursionError:
            raise self.error("expression nested too deeply to compile") from None
        except Exception as exc:  # the compiler refusing odd input is the template's error too
            raise self.error(f"cannot compile: {describe_error(exc)}") from None
        self._func = tmpl.root_render_func
        self._tmpl = tmpl

    @property
    def is_const(self) -> bool:
        return self._mode == "const"

    @property
    def mode(self) -> str:
        """ "const", "expr", "text" or "long" (see above)."""
        return self._mode

    @property
    def fast_tree(self) -> nodes.Node | None:
        """The syntax tree the fast binder was compiled from; None for constants and fields
        that bind through Jinja only."""
        return self._fast_tree

    @property
    def has_fast_path(self) -> bool:
        """True when the field binds without Jinja over a data dict (fastbind.py)."""
        return self._func is None or self._fast is not None

    def text(self, ctx: Context | None) -> str | None:
        """The field as text; None when it renders empty (the field is then left out)."""
        if self._func is None:
            v = self.value
        elif self._mode != "expr":
            if type(ctx) is dict:  # the fast path, without a second call
                if self._fast is None:
                    raise fastbind.Unsure
                return self._fast(ctx) or None
            v = self.evaluate(ctx)  # type: ignore[arg-type]
            return v or None
        else:
            v = self.evaluate(ctx)  # type: ignore[arg-type]
        if v is None or v == "":
            return None
        if type(v) is str:
            return v
        if isinstance(v, str):  # Markup from |e, |safe, |tojson: its text
            return str(v)
        if isinstance(v, dict | list | tuple):
            raise self.error(f"expected text, got {type(v).__name__}")
        try:
            return str(v)
        except Exception as exc:  # an object whose text fails is the template's doing
            raise self.error(describe_error(exc)) from None

    def evaluate(self, ctx: Context | dict[str, Any]) -> Any:
        """The field's value. `ctx` is a Jinja context, or the data itself (a plain dict) on
        the fast path, where anything but a simple field raises (the caller then binds again
        with a context: templates.py)."""
        if self._func is None:
            return self.value
        if type(ctx) is dict:
            fast = self._fast
            if fast is None:
                raise fastbind.Unsure
            return fast(ctx)
        try:
            if self._mode == "expr":
                for _ in self._func(ctx):
                    pass
                result = ctx.vars[RESULT]
                if type(result) in _PLAIN:
                    return result
                if isinstance(result, Undefined):
                    str(result)  # raises the UndefinedError / SecurityError it stands for
                return _plain(result)
            if self._mode == "text":
                out = "".join(self._func(ctx))
                if len(out) > ctx.environment.limits.max_output:  # type: ignore[attr-defined]
                    ctx.environment.concat([out])  # raises, naming the limit
                return out.strip()
            return ctx.environment.concat(self._func(ctx)).strip()
        except Exception as exc:  # whatever a template does wrong is a template error
            raise self.error(describe_error(exc), self._template_line(exc), _detail(exc)) from None

    def _template_line(self, exc: BaseException) -> int:
        """The line of this field where `exc` was raised (a multi-line text field)."""
        tb = exc.__traceback__
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>" and self._tmpl is not None:
                line = self._tmpl.get_corresponding_lineno(tb.tb_lineno)
            tb = tb.tb_next
        return self.line + max((line or 1) - 1, 0)

    def error(self, message: str, line: int | None = None, detail: str | None = None) -> TemplateInvalid:
        return TemplateInvalid.at(self.file, line or self.line, self.path, message, detail)


MAX_DIRECT_OUTPUTS = 8


def _fast_expression(env: CardSandbox, assign: nodes.Template) -> fastbind.FastFunc | None:
    """The fast binder of `{% set RESULT = (expr) %}`: the expression's."""
    body = assign.body
    if len(body) != 1 or not isinstance(body[0], nodes.Assign):
        return None
    return fastbind.compile_expression(env, body[0].node, RESULT)


def _few_outputs(tree: nodes.Template) -> bool:
    """True when a text field can only output a few values (each within the size limit), so
    joining before measuring allocates at most a few times the limit."""
    if any(True for _ in tree.find_all((nodes.For, nodes.Macro, nodes.CallBlock))):
        return False
    outputs = sum(
        1 for out in tree.find_all(nodes.Output) for n in out.nodes if not isinstance(n, nodes.TemplateData)
    )
    return outputs <= MAX_DIRECT_OUTPUTS


_PLAIN = frozenset({str, int, float, bool, type(None), dict, list})


def _plain(value: Any) -> Any:
    """An expression's value as data: Markup (from |e, |safe, |tojson) becomes its text, tuples
    and nested containers likewise; other objects stay (their use says whether they fit)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def describe_error(exc: BaseException) -> str:
    """An exception raised inside a template, in words for the person who wrote it."""
    name = type(exc).__name__
    text = str(exc) or name
    if isinstance(exc, SecurityError):
        return f"模板沙箱不允许这样做：{text}"
    if isinstance(exc, BudgetExceeded):
        return f"超出了模板的限制：{text}"
    if isinstance(exc, RecursionError):
        return "调用嵌套太深（递归）"
    if name == "UndefinedError":
        return explain.undefined(text)
    return f"{explain.python_error(name)}：{name}: {text}"


def _detail(exc: BaseException) -> str | None:
    """The original words of an error `describe_error` retells in Chinese."""
    return str(exc) or None if type(exc).__name__ == "UndefinedError" else None
