"""Sizes computed before an operation allocates: what a string method, a filter, `%` or
`str.format` would build, from its arguments (budget.py says why). The sandbox (sandbox.py)
calls these before running the operation and refuses when the size is above the limit."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache, partial, wraps
from typing import Any

from jinja2.exceptions import FilterArgumentError
from jinja2.filters import make_attrgetter
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import soft_str

from .budget import BudgetExceeded, Limits, check_value, refuse_size, size_of

# textwrap breaks a long word by copying the rest of it once per line: n²/width characters
# copied. Above this many, `wordwrap` is refused (~10 ms of copying).
MAX_WRAP_WORK = 20_000_000
MAX_JSON_INDENT = 16
FLOAT_TEXT = 330  # the longest `%f` of a float without precision: 1.8e308 has 309 digits


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def refuse_if(size: int, what: str, limits: Limits) -> None:
    if size > limits.max_value:
        raise refuse_size(what, size, limits)


def bounded_list(values: Iterable[Any], limits: Limits, what: str) -> list[Any]:
    """`list(values)`, refused once it passes the size limit (a generator is not run to its end)."""
    if isinstance(values, list):
        return values
    out: list[Any] = []
    for item in values:
        out.append(item)
        if len(out) > limits.max_value:
            raise refuse_size(what, len(out), limits)
    return out


# -- str / bytes / int methods --------------------------------------------------------------------
def replace_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes) or len(new) <= len(old):
        return len(s)
    try:
        found = s.count(old) if old else len(s) + 1
    except TypeError:  # str vs bytes: the call itself fails the same way
        return len(s)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * (len(new) - len(old))


def _width_size(s: Any, width: Any = 0, *_: Any) -> int:
    return max(len(s), _int(width))


def _expandtabs_size(s: Any, tabsize: Any = 8) -> int:
    tab = "\t" if isinstance(s, str) else b"\t"
    return len(s) + s.count(tab) * max(_int(tabsize), 0)


def _translate_size(s: Any, table: Any, *_: Any) -> int:
    longest = 1
    if isinstance(table, Mapping):
        for v in table.values():
            if isinstance(v, str | bytes):
                longest = max(longest, len(v))
    return len(s) * longest


def _hex_size(s: Any, *_: Any, **__: Any) -> int:
    return 3 * len(s)


def _to_bytes_size(_n: int, length: Any = 1, *_: Any, **__: Any) -> int:
    return _int(length)


JINJA_CALL_KWARGS = frozenset({"_loop_vars", "_block_vars"})
METHOD_SIZES: dict[str, Callable[..., int]] = {
    "replace": replace_size,
    "ljust": _width_size,
    "rjust": _width_size,
    "center": _width_size,
    "zfill": _width_size,
    "expandtabs": _expandtabs_size,
    "translate": _translate_size,
    "hex": _hex_size,
    "to_bytes": _to_bytes_size,
}


def check_method(
    owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], limits: Limits
) -> tuple[Any, ...]:
    """Refuse a method call on a str/bytes/int whose result would be too big; returns the
    arguments to call it with (`join` gets its iterable as a list, counted once)."""
    if name == "join" and args and isinstance(owner, str | bytes):
        items = bounded_list(args[0], limits, f"{type(owner).__name__}.join")
        size = sum(size_of(i, limits.max_value) for i in items) + max(len(items) - 1, 0) * len(owner)
        refuse_if(size, f"{type(owner).__name__}.join", limits)
        return (items, *args[1:])
    estimate = METHOD_SIZES.get(name)
    if estimate is not None:
        if name == "to_bytes" and not isinstance(owner, int):
            return args
        if kwargs:  # inside a loop or block Jinja adds its variables, for the context's call
            kwargs = {k: v for k, v in kwargs.items() if k not in JINJA_CALL_KWARGS}
        refuse_if(estimate(owner, *args, **kwargs), f"{type(owner).__name__}.{name}()", limits)
    return args


# -- printf-style `%` ---------------------------------------------------------------------------
_PRINTF = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


@lru_cache(maxsize=512)
def _printf_fields(fmt: str) -> tuple[tuple[str | None, str | None, str | None, bool], ...]:
    """The conversions of a format string: (mapping key, width, precision, is a float)."""
    return tuple(
        (key, width, precision, conv in "eEfFgG")
        for key, width, precision, conv in (m.groups() for m in _PRINTF.finditer(fmt))
        if conv != "%"
    )


def printf_size(fmt: str, values: Any, limits: Limits) -> int:
    """An upper bound of the length of `fmt % values`."""
    cap = limits.max_value
    fields = _printf_fields(fmt) if len(fmt) <= 256 else _printf_fields.__wrapped__(fmt)
    mapping = values if isinstance(values, Mapping) else None
    seq = values if isinstance(values, tuple) else (values,)
    biggest = max((size_of(v, cap) for v in mapping.values()), default=0) if mapping is not None else 0
    total, i = len(fmt), 0

    def number(spec: str | None) -> int:
        nonlocal i
        if spec == "*":
            value = seq[i] if i < len(seq) else 0
            i += 1
            return abs(_int(value))
        if not spec:
            return 0
        if len(spec) > 9:
            return cap + 1
        return int(spec)

    for key, width, precision, is_float in fields:
        size = number(width) + number(precision)
        if key is not None:
            size += biggest
        elif mapping is None:
            value = seq[i] if i < len(seq) else None
            size += 1 if type(value) is float else size_of(value, cap)
            i += 1
        total += size + (FLOAT_TEXT if is_float else 0)
        if total > cap:
            break
    return total


# -- str.format -----------------------------------------------------------------------------------
_SPEC_NUMBER = re.compile(r"\d+")


class _Counting:
    """Mixin of the sandbox's formatters: every field's width and precision is checked before
    it is formatted, and the output is counted as it is produced."""

    limits: Limits
    total: int

    def format_field(self, value: Any, format_spec: str) -> Any:
        cap = self.limits.max_value
        for number in _SPEC_NUMBER.findall(format_spec):
            if len(number) > 9 or int(number) > cap:
                raise BudgetExceeded(f"format width or precision {number[:12]} is above the limit of {cap}")
        out = super().format_field(value, format_spec)  # type: ignore[misc]
        self.total += len(out)
        if self.total > cap:
            raise refuse_size("str.format()", self.total, self.limits)
        return out


class BoundedFormatter(_Counting, SandboxedFormatter):
    def __init__(self, env: Any, limits: Limits, fmt: str) -> None:
        super().__init__(env)
        self.limits, self.total = limits, len(fmt)


class BoundedEscapeFormatter(_Counting, SandboxedEscapeFormatter):
    def __init__(self, env: Any, limits: Limits, fmt: str, escape: Callable[[Any], Any]) -> None:
        super().__init__(env, escape=escape)
        self.limits, self.total = limits, len(fmt)


# -- filters and globals --------------------------------------------------------------------------
def _pre_replace(limits: Limits, s: Any, old: Any, new: Any, count: Any = None) -> None:
    n = -1 if count is None else count
    refuse_if(replace_size(_text(s), _text(old), _text(new), n), "|replace", limits)


def _pre_center(limits: Limits, value: Any, width: Any = 80) -> None:
    refuse_if(max(len(_text(value)), _int(width)), "|center", limits)


def _pre_indent(limits: Limits, s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    text = _text(s)
    w = len(width) if isinstance(width, str) else _int(width)
    refuse_if(w, "the width of |indent", limits)
    refuse_if(len(text) + (text.count("\n") + 2) * w, "|indent", limits)


def _pre_join(
    limits: Limits, value: Any, d: Any = "", attribute: Any = None, *, env: Any
) -> tuple[Any, ...] | None:
    sep = len(_text(d))
    if isinstance(value, str):
        refuse_if(len(value) + max(len(value) - 1, 0) * sep, "|join", limits)
        return None
    items = bounded_list(value, limits, "|join")
    if attribute is not None:
        getter = make_attrgetter(env, attribute)
        items = [getter(i) for i in items]
    size = sum(size_of(i, limits.max_value) for i in items) + max(len(items) - 1, 0) * sep
    refuse_if(size, "|join", limits)
    return (items, d)


@lru_cache(maxsize=512)
def _printf_plan(fmt: str) -> tuple[int, int] | None:
    """(the most `fmt` adds to its arguments, how many it takes), for a format string of
    plain positional conversions; None when it has `*` or `%(key)`."""
    fields = _printf_fields(fmt)
    if any(key is not None or width == "*" or precision == "*" for key, width, precision, _ in fields):
        return None
    extra = len(fmt)
    for _key, width, precision, is_float in fields:
        for spec in (width, precision):
            extra += (int(spec) if len(spec) <= 9 else 10**9) if spec else 0
        extra += FLOAT_TEXT if is_float else 0
    return extra, len(fields)


def format_filter(limits: Limits) -> Callable[..., str]:
    """`|format`: printf-style formatting, its size computed from the format and arguments."""
    cap = limits.max_value

    def do_format(value: Any, *args: Any, **kwargs: Any) -> str:
        if args and kwargs:
            raise FilterArgumentError("can't handle positional and keyword arguments at the same time")
        fmt = value if isinstance(value, str) else soft_str(value)
        plan = _printf_plan(fmt) if not kwargs and len(fmt) <= 256 else None
        if plan is not None:
            size = plan[0]
            for a in args[: plan[1]]:
                size += 1 if type(a) is float else size_of(a, cap)
        else:
            size = printf_size(fmt, kwargs or args, limits)
        refuse_if(size, "|format", limits)
        result = fmt % (kwargs or args)
        if len(result) > cap:
            raise refuse_size("|format", len(result), limits)
        return result

    return do_format


def _pre_wordwrap(
    limits: Limits,
    s: Any,
    width: Any = 79,
    break_long_words: bool = True,
    wrapstring: Any = None,
    break_on_hyphens: bool = True,
) -> None:
    text = _text(s)
    w = max(_int(width), 1)
    n = len(text)
    lines = n // w + text.count("\n") + 1
    refuse_if(n + lines * (len(_text(wrapstring)) if wrapstring is not None else 1), "|wordwrap", limits)
    if break_long_words and n * n // w > MAX_WRAP_WORK:
        raise BudgetExceeded(f"|wordwrap of {n} characters at width {w} is above the work limit")


def _pre_batch(limits: Limits, value: Any, linecount: Any, fill_with: Any = None) -> None:
    refuse_if(_int(linecount), "|batch", limits)


def _pre_slice(limits: Limits, value: Any, slices: Any, fill_with: Any = None) -> None:
    if _int(slices) > limits.max_iterations:
        raise BudgetExceeded(f"|slice into {slices} parts is above the limit of {limits.max_iterations}")


def _pre_urlize(
    limits: Limits,
    value: Any,
    trim_url_limit: Any = None,
    nofollow: bool = False,
    target: Any = None,
    rel: Any = None,
    extra_schemes: Any = None,
) -> None:
    text = _text(value)
    per_word = 60 + len(_text(target or "")) + len(_text(rel or ""))
    refuse_if(2 * len(text) + len(text.split()) * per_word, "|urlize", limits)


def _pre_tojson(limits: Limits, value: Any, indent: Any = None) -> None:
    width = len(indent) if isinstance(indent, str) else _int(indent)
    if width > MAX_JSON_INDENT:
        raise BudgetExceeded(f"|tojson indent {width} is above the limit of {MAX_JSON_INDENT}")


def _pre_sum(limits: Limits, iterable: Any, attribute: Any = None, start: Any = 0) -> tuple[Any, ...] | None:
    if isinstance(start, int | float):
        return None
    items = bounded_list(iterable, limits, "|sum")
    size = size_of(start, limits.max_value) + sum(size_of(i, limits.max_value) for i in items)
    refuse_if(size, "|sum", limits)
    if len(items) * size > MAX_WRAP_WORK:
        raise BudgetExceeded(f"|sum of {len(items)} sequences is above the work limit")
    return (items, attribute, start)


def _pre_striptags(limits: Limits, value: Any) -> None:
    text = _text(value)
    if text.count("<") * len(text) > MAX_WRAP_WORK:  # each tag removed copies the rest
        raise BudgetExceeded(
            f"|striptags of {len(text)} characters with {text.count('<')} tags is above the work limit"
        )


PRECHECKS: dict[str, Callable[..., Any]] = {
    "striptags": _pre_striptags,
    "replace": _pre_replace,
    "center": _pre_center,
    "indent": _pre_indent,
    "join": _pre_join,
    "wordwrap": _pre_wordwrap,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "urlize": _pre_urlize,
    "tojson": _pre_tojson,
    "sum": _pre_sum,
}


# Filters whose result is one of their inputs, a number, a lazy view over their input, or no
# longer than their input plus an argument: nothing to check, and no wrapper to pay for.
UNCHECKED_FILTERS = frozenset(
    {
        "abs", "attr", "count", "d", "default", "first", "float", "int", "last", "length",
        "mask_name", "mask_phone", "max", "min", "random", "reject", "rejectattr", "round",
        "select", "selectattr", "map", "items", "tel", "trim", "truncate",
        "wordcount",
    }
)  # fmt: skip


def bound_filter(name: str, func: Callable[..., Any], limits: Limits, env: Any) -> Callable[..., Any]:
    """`func` checked: its arguments before it runs (PRECHECKS), its result after."""
    if name in UNCHECKED_FILTERS:
        return func
    pre = PRECHECKS.get(name)
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context/environment Jinja passes first
    if name == "join" and pre is not None and skip:  # `attribute=` looked up where Jinja says
        pre_join = pre

        @wraps(func)
        def joined(first: Any, *args: Any, **kwargs: Any) -> Any:
            replaced = pre_join(limits, *args, **kwargs, env=first.environment)
            if replaced is not None:  # the items, materialised and complete
                args, kwargs = replaced, {}
            return check_value(func(first, *args, **kwargs), limits, "the result of |join")

        return joined
    if name == "join" and pre is not None:
        pre = partial(pre, env=env)
    what = f"the result of |{name}"
    cap = limits.max_value

    if pre is None:

        @wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            if type(result) is str:
                if len(result) > cap:
                    raise refuse_size(what, len(result), limits)
                return result
            return check_value(result, limits, what)

        return checked

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            replaced = pre(limits, *args[skip:], **kwargs)
            if replaced is not None:  # the arguments, materialised and complete
                args, kwargs = (*args[:skip], *replaced), {}
        return check_value(func(*args, **kwargs), limits, what)

    return bounded


def bounded_lipsum(limits: Limits) -> Callable[..., str]:
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        """Lorem ipsum, at most the size limit of it (about 12 characters a word)."""
        refuse_if(_int(n) * (_int(max) * 12 + 20), "lipsum()", limits)
        return generate_lorem_ipsum(n, html, min, max)

    return lipsum


def power_bits(left: Any, right: Any) -> float:
    """Bits of `left ** right` for integers (0 when it cannot grow)."""
    if not isinstance(left, int) or not isinstance(right, int) or right <= 1 or abs(left) < 2:
        return 0
    return right * math.log2(abs(left)) + 1


__all__ = [
    "BoundedEscapeFormatter",
    "BoundedFormatter",
    "bound_filter",
    "bounded_lipsum",
    "bounded_list",
    "check_method",
    "format_filter",
    "power_bits",
    "printf_size",
]
