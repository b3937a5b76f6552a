"""Lazy producers and the consumers of iterables, on the render's budget (budget.py).

`map`, `select`, `batch` and their kin are generators: they run later, inside whichever consumer
pulls them (`|list`, `|max`, a loop, `''.join(...)`, `dict(...)`), element by element, calling a
filter, a test or an attribute lookup on each. Checking sizes once a consumer has built its
result comes too late: 50,000 strings of 99,999 characters are each within the value limit, and
making them takes seconds and gigabytes. So every filter that iterates its input is wrapped:
- its input is iterated through `Metered`, which looks at the clock per element;
- what it yields is iterated through `Metered` too, which also charges each new item's size
  to the render's total (`Limits.max_total`), before the next one is made;
- the filters, tests and lookups it runs per element (map's filter, select's test, sort's and
  groupby's keys, `attribute=` paths) see the environment through `MeteredEnvironment`, which
  looks at the clock on each;
- a list or string it returns is charged to the total as well.
A producer's item is charged for what it adds: a string its characters, a list or dict its
slots. Values nested in it were charged where a producer made them, or are data and literals,
which the value limit bounds already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import _PassArg

from .budget import Budget, budget_of

# Filters that iterate their input: it is metered (`join` keeps a string: it reads it whole).
ITERATING = frozenset(
    {
        "batch", "groupby", "join", "list", "map", "max", "min", "reject", "rejectattr", "select",
        "selectattr", "slice", "sort", "sum", "unique",
    }
)  # fmt: skip
# Filters whose input is read as a sequence or a mapping (reversed, `.items()`): not metered,
# but their callbacks and results are.
SEQUENCE_READERS = frozenset({"dictsort", "reverse"})
WRAPPED = ITERATING | SEQUENCE_READERS


class Metered:
    """An iterator that looks at the render's clock per element, and when it stands for what a
    producer yields (`charge`), charges each item's size to the render's total."""

    __slots__ = ("_budget", "_charge", "_it")

    def __init__(self, budget: Budget, iterable: Iterable[Any], charge: bool) -> None:
        self._it = iter(iterable)
        self._budget = budget
        self._charge = charge

    def __iter__(self) -> Metered:
        return self

    def __next__(self) -> Any:
        item = next(self._it)
        if self._charge:
            self._budget.charge(units_of(item))
        else:
            self._budget.tick()
        return item


def units_of(item: Any) -> int:
    """What a new item adds: a string its characters, a container its slots, anything else 1."""
    t = type(item)
    if t is str:
        return 1 + len(item)
    if t is int or t is float or t is bool or item is None:
        return 1
    try:
        return 1 + len(item)
    except TypeError:  # an iterator, an object: its items are charged when they are made
        return 1


class MeteredEnvironment:
    """The sandbox as a wrapped filter sees it: every lookup, filter and test it runs per
    element looks at the render's clock first. Everything else is the sandbox's own."""

    __slots__ = ("_budget", "_env")

    def __init__(self, env: Any, budget: Budget) -> None:
        self._env = env
        self._budget = budget

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._budget.tick()
        return self._env.getitem(obj, argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._budget.tick()
        return self._env.getattr(obj, attribute)

    def call_filter(self, *args: Any, **kwargs: Any) -> Any:
        self._budget.tick()
        return self._env.call_filter(*args, **kwargs)

    def call_test(self, *args: Any, **kwargs: Any) -> Any:
        self._budget.tick()
        return self._env.call_test(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class _Scope:
    """A render context or eval context whose `environment` is the metered one; it carries
    the render's budget for the filters called from inside (map's, select's)."""

    __slots__ = ("_real", "budget", "environment")

    def __init__(self, real: Any, environment: MeteredEnvironment, budget: Budget) -> None:
        self._real = real
        self.environment = environment
        self.budget = budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def lazy_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` (an iterating filter, maybe already size-checked by bounded.py) on the budget."""
    pass_arg = _PassArg.from_obj(func)
    meter_input = name in ITERATING
    keep_strings = name == "join"

    @wraps(func)
    def metered(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(context)
        budget.tick()
        if (
            meter_input
            and type(value) is not Metered
            and not isinstance(value, Undefined)
            and not (keep_strings and isinstance(value, str))
            and hasattr(value, "__iter__")
        ):
            value = Metered(budget, value, charge=False)
        if pass_arg is None:
            result = func(value, *args, **kwargs)
        else:
            env = context.environment
            if type(env) is not MeteredEnvironment:
                env = MeteredEnvironment(env, budget)
            if pass_arg is _PassArg.context:
                first: Any = context if type(context) is _Scope else _Scope(context, env, budget)
            elif pass_arg is _PassArg.eval_context:
                first = _Scope(context.eval_ctx, env, budget)
            else:
                first = env
            result = func(first, value, *args, **kwargs)
        return _charged(budget, result)

    metered.jinja_pass_arg = _PassArg.context  # type: ignore[attr-defined]
    return metered


def _charged(budget: Budget, result: Any) -> Any:
    """A filter's result on the budget: an iterator metered item by item, a new list or string
    charged for its slots or characters."""
    t = type(result)
    if t is list or isinstance(result, str | tuple | list):
        if len(result) > 64:  # a few items are not worth a look at the clock
            budget.charge(len(result))
        return result
    if isinstance(result, Iterator) and t is not Metered:
        return Metered(budget, result, charge=True)
    return result


__all__ = ["WRAPPED", "Metered", "MeteredEnvironment", "lazy_filter", "units_of"]
