"""Plain-Python binders for fields whose expressions are simple data lookups.

Most card fields are `运单号 {{ waybill }}` or `{{ courier.phone | tel }}`: running them through
Jinja costs a render context, a generator and a `{% set %}` per field. A field whose whole syntax
tree is made of the shapes below is also compiled, once, into a small Python function of the data
dict; binding with the data dict as its scope (templates.py) runs those instead of Jinja.

Safety: the generated source never contains designer text. Names, keys, literal text and filter
arguments are passed in a tuple of constants (`K[i]`) and filters in a tuple of the environment's
own filter functions (`F[i]`), so a template can only choose which data to look up and which
listed, pure filter to apply. Lookups are done only on plain dicts (and lists by integer index),
never through attributes of objects. Anything else (a method, an attribute of a non-dict, a
global, a missing key, a value of an unexpected type) raises, and the caller binds again on the
sandboxed Jinja path, which produces the value, or the error, exactly as before.

Supported shapes: literal text and constants; `name`, `a.b`, `a['b']`, `a[0]`; filters of
FAST_FILTERS with simple arguments; `x is defined` / `is undefined`; `x if c else y`; `and`, `or`,
`not`; in text fields, `{% if %}` / `{% elif %}` / `{% else %}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import nodes

FastFunc = Callable[[dict[str, Any]], Any]

# Filters that are functions of their arguments alone (no context, no environment, no budget).
FAST_FILTERS = frozenset(
    {
        "default",
        "d",
        "mask_name",
        "mask_phone",
        "tel",
        "upper",
        "lower",
        "trim",
        "title",
        "capitalize",
        "string",
        "length",
        "count",
        "int",
        "float",
        "round",
        "abs",
        "format",
    }
)
_DEFAULT_FILTERS = frozenset({"default", "d"})
MAX_DEPTH = 32  # deeper expressions stay on the Jinja path


class Missing:
    """What a lookup of an absent name or key gives where Jinja would give an Undefined."""

    __slots__ = ()


MISSING = Missing()


class NotSimple(Exception):
    """A syntax tree with a shape this module does not compile."""


class Unsure(Exception):
    """At bind time: the Jinja path must decide (e.g. a dict method, a global)."""


def _attr(obj: Any, key: str) -> Any:
    """`obj.key` on data: CardSandbox.getattr's fast path (a dict key) only."""
    if type(obj) is dict:
        return obj[key]  # KeyError: Jinja would look at the dict's attributes
    raise Unsure


def _item(obj: Any, key: Any) -> Any:
    """`obj[key]` on data: a dict's key, a list's integer index."""
    if type(obj) is dict or (type(obj) is list and type(key) is int):
        return obj[key]
    raise Unsure


def _opt_name(scope: dict[str, Any], key: str, global_names: frozenset[str]) -> Any:
    """A name, or MISSING where Jinja would resolve it to an Undefined."""
    value = scope.get(key, MISSING)
    if value is MISSING and key in global_names:
        raise Unsure  # a global (range, lipsum, ...): defined, and not data
    return value


def _opt_attr(obj: Any, key: str) -> Any:
    """`obj.key` or MISSING where Jinja gives an Undefined (a dict without that key, when the
    dict type has no attribute of that name either)."""
    if type(obj) is dict:
        value = obj.get(key, MISSING)
        if value is MISSING and hasattr(dict, key):
            raise Unsure  # Jinja finds the dict's method
        return value
    raise Unsure  # an Undefined's attribute is an error in Jinja; other objects: attributes


def _opt_item(obj: Any, key: Any) -> Any:
    if type(obj) is dict:
        value = obj.get(key, MISSING)
        if value is MISSING and isinstance(key, str) and hasattr(dict, key):
            raise Unsure
        return value
    if type(obj) is list and type(key) is int:
        try:
            return obj[key]
        except IndexError:
            return MISSING
    raise Unsure


def _plain_result(value: Any) -> Any:
    """An expression field's value, when Field.evaluate would return it unchanged."""
    if type(value) in _PLAIN_TYPES:
        return value
    raise Unsure  # Markup, tuples, Undefined: the Jinja path converts or refuses them


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), dict, list})


class _Emitter:
    """Turns a whitelisted Jinja syntax tree into Python source over `s` (the scope dict)."""

    def __init__(self, env: Any, result_name: str) -> None:
        self.env = env
        self.result_name = result_name
        self.consts: list[Any] = []
        self.filters: list[Callable[..., Any]] = []
        self.undefined = env.undefined(name="")  # what a `default` filter receives for a miss

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"K[{len(self.consts) - 1}]"

    def expr(self, node: nodes.Node, depth: int = 0) -> str:
        """Source of the node's value; raises at bind time where Jinja gives an Undefined."""
        if depth > MAX_DEPTH:
            raise NotSimple("too deep")
        d = depth + 1
        if isinstance(node, nodes.Const):
            if type(node.value) not in (str, int, float, bool, type(None)):
                raise NotSimple("constant type")
            return self.const(node.value)
        if isinstance(node, nodes.Name):
            self._check_name(node)
            return f"s[{self.const(node.name)}]"
        if isinstance(node, nodes.Getattr):
            if node.ctx != "load":
                raise NotSimple("store")
            return f"_attr({self.expr(node.node, d)}, {self.const(node.attr)})"
        if isinstance(node, nodes.Getitem):
            return f"_item({self.expr(node.node, d)}, {self._key(node)})"
        if isinstance(node, nodes.Filter):
            return self._filter(node, d)
        if isinstance(node, nodes.Test):
            if node.name not in ("defined", "undefined") or node.args or node.kwargs:
                raise NotSimple("test")
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                raise NotSimple("test arguments")
            op = "is not" if node.name == "defined" else "is"
            return f"({self.opt(node.node, d)} {op} MISSING)"
        if isinstance(node, nodes.CondExpr):
            if node.expr2 is None:
                raise NotSimple("if without else")
            return (
                f"({self.expr(node.expr1, d)} if {self.expr(node.test, d)} else {self.expr(node.expr2, d)})"
            )
        if isinstance(node, nodes.And):
            return f"({self.expr(node.left, d)} and {self.expr(node.right, d)})"
        if isinstance(node, nodes.Or):
            return f"({self.expr(node.left, d)} or {self.expr(node.right, d)})"
        if isinstance(node, nodes.Not):
            return f"(not {self.expr(node.node, d)})"
        raise NotSimple(type(node).__name__)

    def opt(self, node: nodes.Node, depth: int) -> str:
        """Source of a lookup's value or MISSING (what Jinja tests and `default` see)."""
        d = depth + 1
        if isinstance(node, nodes.Name):
            self._check_name(node)
            return f"_opt_name(s, {self.const(node.name)}, G)"
        if isinstance(node, nodes.Getattr):
            if node.ctx != "load":
                raise NotSimple("store")
            return f"_opt_attr({self.expr(node.node, d)}, {self.const(node.attr)})"
        if isinstance(node, nodes.Getitem):
            return f"_opt_item({self.expr(node.node, d)}, {self._key(node)})"
        return self.expr(node, d)  # anything else is never Undefined when it succeeds

    def _check_name(self, node: nodes.Name) -> None:
        if node.ctx != "load" or node.name == self.result_name:
            raise NotSimple("name")  # RESULT: what an earlier field left in the Jinja context

    def _key(self, node: nodes.Getitem) -> str:
        if node.ctx != "load" or not isinstance(node.arg, nodes.Const):
            raise NotSimple("subscript")
        if type(node.arg.value) not in (str, int):
            raise NotSimple("subscript type")
        return self.const(node.arg.value)

    def _filter(self, node: nodes.Filter, depth: int) -> str:
        if node.name not in FAST_FILTERS or node.node is None:
            raise NotSimple("filter")
        if node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
            raise NotSimple("filter arguments")
        func = self.env.filters.get(node.name)
        if func is None or getattr(func, "jinja_pass_arg", None) is not None:
            raise NotSimple("filter needs the context")
        self.filters.append(func)
        index = len(self.filters) - 1
        if node.name in _DEFAULT_FILTERS:
            value = f"_or_undefined({self.opt(node.node, depth)}, U)"
        else:
            value = self.expr(node.node, depth)
        args = "".join(", " + self.expr(a, depth) for a in node.args)
        return f"F[{index}]({value}{args})"


def _or_undefined(value: Any, undefined: Any) -> Any:
    return undefined if value is MISSING else value


def compile_expression(env: Any, tree: nodes.Node, result_name: str) -> FastFunc | None:
    """A function of the scope giving the expression field's value, or None if not simple."""
    em = _Emitter(env, result_name)
    try:
        body = em.expr(tree)
    except NotSimple:
        return None
    return _build(em, [f"return _plain_result({body})"])


def compile_text(env: Any, tree: nodes.Template, result_name: str, max_output: int) -> FastFunc | None:
    """A function of the scope giving the text field's stripped output, or None if not simple."""
    em = _Emitter(env, result_name)
    try:
        if all(isinstance(n, nodes.Output) for n in tree.body):  # no `if`: one join of the parts
            parts = [_part(em, c) for n in tree.body for c in n.nodes]  # type: ignore[attr-defined]
            lines = [f'out = "".join(({"".join(p + ", " for p in parts)}))']
        else:
            lines = ["p = []", "a = p.append"]
            _statements(em, tree.body, lines, 0)
            lines.append('out = "".join(p)')
    except NotSimple:
        return None
    lines += [f"if len(out) > {int(max_output)}:", "    raise Unsure", "return out.strip()"]
    return _build(em, lines)


def _part(em: _Emitter, child: nodes.Node) -> str:
    """Source of one piece of a text field's output: literal text, or a value as Jinja prints it."""
    if isinstance(child, nodes.TemplateData):
        return em.const(child.data)
    return f"str({em.expr(child)})"


def _statements(em: _Emitter, body: list[nodes.Node], lines: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NotSimple("too deep")
    pad = "    " * depth
    if not body:
        lines.append(pad + "pass")
    for node in body:
        if isinstance(node, nodes.Output):
            lines.extend(f"{pad}a({_part(em, child)})" for child in node.nodes)
        elif isinstance(node, nodes.If):
            lines.append(f"{pad}if {em.expr(node.test)}:")
            _statements(em, node.body, lines, depth + 1)
            for branch in node.elif_:
                lines.append(f"{pad}elif {em.expr(branch.test)}:")
                _statements(em, branch.body, lines, depth + 1)
            if node.else_:
                lines.append(f"{pad}else:")
                _statements(em, node.else_, lines, depth + 1)
        else:
            raise NotSimple(type(node).__name__)


def _build(em: _Emitter, body: list[str], extra: dict[str, Any] | None = None) -> Any:
    source = "def bind(s):\n" + "".join("    " + line + "\n" for line in body)
    namespace: dict[str, Any] = {
        **(extra or {}),
        "__builtins__": {"str": str, "type": type, "len": len},
        "K": tuple(em.consts),
        "F": tuple(em.filters),
        "G": frozenset(em.env.flat_globals),
        "U": em.undefined,
        "MISSING": MISSING,
        "Unsure": Unsure,
        "_attr": _attr,
        "_item": _item,
        "_opt_name": _opt_name,
        "_opt_attr": _opt_attr,
        "_opt_item": _opt_item,
        "_or_undefined": _or_undefined,
        "_plain_result": _plain_result,
    }
    exec(compile(source, "<fastbind>", "exec"), namespace)  # source built above from our own tokens only
    return namespace["bind"]
