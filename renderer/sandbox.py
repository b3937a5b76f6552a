"""The one Jinja2 environment designer templates run in: sandboxed, strict, size-bounded.

Templates are untrusted. The sandbox blocks attribute tricks (`__class__`, `mro`, ...);
StrictUndefined turns typos into errors instead of silently empty fields; the operator hooks
below stop `'x' * 10**9` and `2 ** 10**9` from eating the server's memory or CPU.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import StrictUndefined
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

_MISSING = object()
MAX_STRING = 100_000  # longest string an expression may build; card fields are far shorter
MAX_POWER_EXPONENT = 100


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


class CardSandbox(ImmutableSandboxedEnvironment):
    """Immutable: `items.append(...)` / `d.update(...)` are refused, so a template can never
    change the data it is given (e.g. a cached sample shared by later renders)."""

    intercepted_binops = frozenset({"*", "**"})
    flat_globals: dict[str, Any]  # a plain-dict snapshot of `globals`, taken once configured

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_POWER_EXPONENT:
                raise OverflowError(f"exponent {right} is above {MAX_POWER_EXPONENT}")
            return left**right
        # operator == "*": sequence repetition is where memory goes
        seq, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(seq, str | list | tuple) and isinstance(count, int) and len(seq) * count > MAX_STRING:
            raise OverflowError(f"repetition would build more than {MAX_STRING} items")
        return left * right

    def root_context(self, data: dict[str, Any]) -> Context:
        """A render context over `data`, built directly: Jinja's own `new_context` walks the
        globals ChainMap on every call (~5 µs), and a ChainMap parent makes every variable
        lookup slower still. A flat dict copy of a few dozen keys costs well under 1 µs."""
        return self.context_class(self, {**self.flat_globals, **data}, None, {}, globals=None)

    def child_context(self, ctx: Context, local: dict[str, Any]) -> Context:
        """A scope for one loop item: `local` shadows the enclosing scope."""
        return self.context_class(self, {**ctx.parent, **local}, ctx.name, {}, globals=None)

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


def make_environment() -> CardSandbox:
    env = CardSandbox(
        undefined=StrictUndefined,
        autoescape=False,  # fields are plain text, never HTML; each target escapes for itself
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=0,
    )
    env.filters["mask_phone"] = _mask_phone
    env.filters["mask_name"] = _mask_name
    env.filters["tel"] = _tel
    # No loader: templates cannot {% include %} / {% import %} anything, so no file access.
    env.globals.pop("range", None)
    env.globals["range"] = _bounded_range
    env.flat_globals = dict(env.globals)
    return env


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > 1000:
        raise OverflowError("range() longer than 1000 in a template")
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


__all__ = ["CardSandbox", "is_single_expression", "make_environment"]
