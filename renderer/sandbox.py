"""The one Jinja2 environment designer templates run in: sandboxed, strict, size-bounded.

Templates are untrusted. The sandbox blocks attribute tricks (`__class__`, `mro`, ...);
StrictUndefined turns typos into errors instead of silently empty fields; and every render
runs on a budget (budget.py: value sizes, loop steps, time) that the hooks below charge, so
`'x' * 10**9`, `('x' * 10**5).replace('x', 'y' * 10**5)` or three nested loops are refused
within milliseconds instead of eating the server's memory or holding its event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import update_wrapper
from itertools import islice
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from .bounded import (
    BoundedEscapeFormatter,
    BoundedFormatter,
    bound_filter,
    bounded_lipsum,
    check_method,
    format_filter,
    power_bits,
    printf_size,
    refuse_if,
)
from .budget import (
    DEFAULT_LIMITS,
    BudgetContext,
    BudgetExceeded,
    Limits,
    budget_of,
    check_value,
    counted,
    refuse_size,
    size_of,
)
from .lazy import SORTING, WRAPPED, lazy_filter

_MISSING = object()
MAX_STRING = DEFAULT_LIMITS.max_value  # longest string an expression may build
MAX_POWER_EXPONENT = 100
MAX_RANGE = 1000
LOOP_FILTER = "mingpian_counted_loop"  # what loops are rewritten to iterate through
OUTPUT_BATCH = 16  # output pieces counted at a time (each is at most the value size limit)


def _mask_phone(value: Any, keep_head: int = 3, keep_tail: int = 4) -> str:
    """138****5678: the usual way Chinese cards show a personal number."""
    digits = str(value)
    if len(digits) <= keep_head + keep_tail:
        return digits
    return digits[:keep_head] + "*" * (len(digits) - keep_head - keep_tail) + digits[-keep_tail:]


def _mask_name(value: Any) -> str:
    """张*明 / 李*: privacy-masking a person's name as couriers and banks do."""
    name = str(value)
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


_NON_DIGIT = re.compile(r"[^\d+]")


def _tel(value: Any) -> str:
    """Strip spaces/dashes from a phone number for dial actions ("400-811-1111" → "4008111111")."""
    return _NON_DIGIT.sub("", str(value))


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, but `a ~ b` goes through the environment's size check, and in
    a template that can repeat itself (loops, macros) every value output is charged to the
    render's budget as it is made, also where Jinja collects it in a buffer (macros, blocks)."""

    _count_output = False

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        self._count_output = any(True for _ in node.find_all((nodes.For, nodes.Macro, nodes.CallBlock)))
        super().visit_Template(node, frame)

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if self._count_output and frame.buffer is not None:  # a template's own output is
            self.write("environment.output(context, ")  # counted by env.concat as it comes
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        if self._count_output and frame.buffer is not None:
            self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.join_values({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class CardSandbox(ImmutableSandboxedEnvironment):
    """Immutable: `items.append(...)` / `d.update(...)` are refused, so a template can never
    change the data it is given (e.g. a cached sample shared by later renders). Bounded: every
    render runs on a budget (budget.py) that the hooks below charge."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    context_class = BudgetContext
    code_generator_class = BoundedCodeGenerator
    limits: Limits = DEFAULT_LIMITS
    flat_globals: dict[str, Any]  # a plain-dict snapshot of `globals`, taken once configured

    # -- the budget's hooks ----------------------------------------------------------------
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Every `{% for %}` iterates through `counted` (one budget of loop steps per render),
        called as a filter (a direct call: no sandbox round trip per loop);
        recursive loops, which could fan out exponentially, are not offered."""
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            if loop.recursive:
                raise TemplateSyntaxError(
                    "recursive loops are not allowed in templates", loop.lineno, name, filename
                )
            counted_iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
            counted_iter.set_environment(self)
            loop.iter = counted_iter
        return tree

    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        """What Jinja joins a template's output and buffers with: measured before it is built.
        A generator (a whole template's output) is counted a few pieces at a time and stopped
        at the limit; a buffer's pieces were charged to the budget as they were output."""
        cap = self.limits.max_output
        if isinstance(pieces, list):
            parts, total = pieces, sum(map(len, pieces))
        else:
            it = iter(pieces)
            parts = list(islice(it, OUTPUT_BATCH))
            total = sum(map(len, parts))
            batch = parts
            while len(batch) == OUTPUT_BATCH and total <= cap:  # more may follow
                batch = list(islice(it, OUTPUT_BATCH))
                total += sum(map(len, batch))
                parts += batch
        if total > cap:
            raise BudgetExceeded(f"the template's output is longer than the limit of {cap:,} characters")
        return "".join(parts)

    def output(self, context: Any, text: str) -> str:
        """One value output by a template that loops or has macros (BoundedCodeGenerator)."""
        return budget_of(context).add_output(text)

    def join_values(self, join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`: the size is known before the string is built."""
        cap = self.limits.max_value
        size = 0
        for p in parts:
            size += len(p) if isinstance(p, str) else size_of(p, cap)
        refuse_if(size, "the concatenation (~)", self.limits)
        return check_value(join(parts), self.limits, "the concatenation (~)")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget_of(__context).tick()
        owner = getattr(__obj, "__self__", None)
        if owner is not None and isinstance(owner, str | bytes | int):
            args = check_method(owner, __obj.__name__, args, kwargs, __self.limits)
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        result = __context.call(__obj, *args, **kwargs)
        if type(result) is str:
            if len(result) > __self.limits.max_value:
                raise refuse_size(f"{getattr(__obj, '__name__', 'a call')}()", len(result), __self.limits)
            return result
        return check_value(result, __self.limits, f"the result of {getattr(__obj, '__name__', 'a call')}()")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits = self.limits
        if operator == "+":
            tl = type(left)
            if (tl is float or tl is int) and (type(right) is float or type(right) is int):
                result = left + right
                return result if type(result) is float else check_value(result, limits, "+")
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                refuse_if(size_of(left, limits.max_value) + size_of(right, limits.max_value), "+", limits)
            return check_value(left + right, limits, "+")
        if operator == "%":
            if isinstance(left, str):
                refuse_if(printf_size(left, right, limits), "%", limits)
            return check_value(left % right, limits, "%")
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_POWER_EXPONENT:
                raise BudgetExceeded(f"exponent {right} is above the limit of {MAX_POWER_EXPONENT}")
            if power_bits(left, right) > limits.max_int_bits:
                raise BudgetExceeded(
                    f"** would build an integer above the limit of {limits.max_int_digits} digits"
                )
            return check_value(left**right, limits, "**")
        # operator == "*": sequence repetition is where memory goes
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > limits.max_int_bits + 1:
                raise BudgetExceeded(
                    f"* would build an integer above the limit of {limits.max_int_digits} digits"
                )
            return left * right
        seq, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(seq, str | list | tuple) and isinstance(count, int):
            size = size_of(seq, limits.max_value) * count
            if size > limits.max_value:
                raise refuse_size("repetition (*)", size, limits)
        return check_value(left * right, limits, "*")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`'{}'.format(...)` and `format_map`: fields checked and output counted (bounded.py)."""
        name = getattr(value, "__name__", None)
        if name not in ("format", "format_map"):
            return None
        f_self = getattr(value, "__self__", None)
        if not isinstance(f_self, str):
            return None
        str_type = type(f_self)
        is_map = name == "format_map"
        limits = self.limits

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            formatter: BoundedFormatter | BoundedEscapeFormatter
            if isinstance(f_self, Markup):
                formatter = BoundedEscapeFormatter(self, limits, f_self, f_self.escape)
            else:
                formatter = BoundedFormatter(self, limits, f_self)
            return str_type(formatter.vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)

    # -- contexts and lookups --------------------------------------------------------------
    def root_context(self, data: dict[str, Any]) -> Context:
        """A render context over `data`, built directly: Jinja's own `new_context` walks the
        globals ChainMap on every call (~5 µs), and a ChainMap parent makes every variable
        lookup slower still. A flat dict copy of a few dozen keys costs well under 1 µs.
        The context starts the render's budget."""
        return BudgetContext(self, {**self.flat_globals, **data}, None, {}, None)

    def child_context(self, ctx: Context, local: dict[str, Any]) -> Context:
        """A scope for one loop item: `local` shadows the enclosing scope; same budget."""
        child = BudgetContext(self, {**ctx.parent, **local}, ctx.name, {}, None)
        child.budget = budget_of(ctx)
        return child

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Fast path for the common case, `order.waybill` on JSON data: a dict key wins over a
        # dict method of the same name (what a template author means), and skips the
        # AttributeError round-trip of the stock lookup. Values in JSON data are plain data.
        if type(obj) is dict:
            value = obj.get(attribute, _MISSING)
            if value is not _MISSING:
                return value
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # Templates need data, not methods with side effects (`format` on str is already
        # sandboxed by Jinja); keep the stock rules and also hide anything dunder-ish.
        if attr.startswith("_"):
            return False
        return super().is_safe_attribute(obj, attr, value)


def make_environment(limits: Limits = DEFAULT_LIMITS) -> CardSandbox:
    env = CardSandbox(
        undefined=StrictUndefined,
        autoescape=False,  # fields are plain text, never HTML; each target escapes for itself
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=0,
    )
    env.limits = limits
    env.filters["mask_phone"] = _mask_phone
    env.filters["mask_name"] = _mask_name
    env.filters["tel"] = _tel
    env.filters.update(SORTING)  # Jinja's, with keys that look at the clock
    env.filters = {name: bound_filter(name, f, limits, env) for name, f in env.filters.items()}
    env.filters["format"] = format_filter(limits)
    for name in WRAPPED:  # the filters that iterate: on the budget element by element
        env.filters[name] = lazy_filter(name, env.filters[name])
    env.filters[LOOP_FILTER] = pass_context(counted)
    # No loader: templates cannot {% include %} / {% import %} anything, so no file access.
    env.globals.pop("range", None)
    env.globals["range"] = _bounded_range
    env.globals["lipsum"] = bounded_lipsum(limits)
    env.flat_globals = dict(env.globals)
    return env


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise BudgetExceeded(f"range() of {len(r)} items is above the limit of {MAX_RANGE}")
    return r


def is_single_expression(source: str) -> str | None:
    """If `source` is exactly `{{ expr }}`, return `expr` so its native type can be kept."""
    s = source.strip()
    if not (s.startswith("{{") and s.endswith("}}")):
        return None
    inner = s[2:-2]
    if "{{" in inner or "}}" in inner or "{%" in inner:
        return None
    return inner.strip("- ").strip() or None


__all__ = ["CardSandbox", "Limits", "is_single_expression", "make_environment"]
