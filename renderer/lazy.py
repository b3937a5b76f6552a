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

import itertools
from collections.abc import Callable, Iterable
from functools import wraps
from time import monotonic
from types import GeneratorType
from typing import Any

from jinja2.exceptions import FilterArgumentError
from jinja2.filters import _GroupTuple, ignore_case, make_attrgetter, make_multi_attrgetter
from jinja2.runtime import Undefined
from jinja2.utils import _PassArg, pass_environment

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
SMALL = 64  # elements of a list, tuple, dict or string read without a look at the clock each


class Ticking:
    """An iterator that looks at the render's clock per element (a filter's input)."""

    __slots__ = ("_budget", "_it")

    def __init__(self, budget: Budget, iterable: Iterable[Any]) -> None:
        self._it = iter(iterable)
        self._budget = budget

    def __iter__(self) -> Ticking:
        return self

    def __next__(self) -> Any:
        item = next(self._it)
        if monotonic() > self._budget.deadline:
            self._budget.tick()
        return item


class Metered(Ticking):
    """What a producer yields: each item's size charged to the render's total as it is made,
    and a look at the clock."""

    __slots__ = ()

    def __next__(self) -> Any:
        item = next(self._it)
        budget = self._budget
        t = type(item)
        budget.total += 1 + len(item) if t is str else 1 if t is int or t is float else units_of(item)
        if budget.total > budget.limits.max_total:
            budget.charge(0)  # raises, naming the limit
        if monotonic() > budget.deadline:
            budget.tick()
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

    __slots__ = ("_env", "budget", "is_async")

    def __init__(self, env: Any, budget: Budget) -> None:
        self._env = env
        self.budget = budget
        self.is_async = env.is_async  # asked by Jinja's filters on every call

    def getitem(self, obj: Any, argument: Any) -> Any:
        if monotonic() > self.budget.deadline:
            self.budget.tick()
        return self._env.getitem(obj, argument)

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.budget.tick()
        return self._env.getattr(obj, attribute)

    def call_filter(self, *args: Any, **kwargs: Any) -> Any:
        self.budget.tick()
        return self._env.call_filter(*args, **kwargs)

    def call_test(self, *args: Any, **kwargs: Any) -> Any:
        self.budget.tick()
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


def _views(context: Any, budget: Budget) -> tuple[MeteredEnvironment, _Scope]:
    """The metered environment and a metered scope of `context`, made once per render (and
    once per loop item's context)."""
    if type(context) is _Scope:
        return context.environment, context
    views = budget.views
    if views is None or views[1]._real is not context:
        env = views[0] if views is not None else MeteredEnvironment(context.environment, budget)
        views = budget.views = (env, _Scope(context, env, budget))
    return views


def lazy_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` (an iterating filter, maybe already size-checked by bounded.py) on the budget."""
    pass_arg = _PassArg.from_obj(func)
    meter_input = name in ITERATING
    keep_strings = with_env = name == "join"

    @wraps(func)
    def metered(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(context)
        budget.tick()
        if meter_input:
            t = type(value)
            if t is list or t is tuple or t is dict or t is str:
                # a few elements are not worth it: the lookups, filters and tests each one
                # takes look at the clock themselves, and what is yielded is metered
                if len(value) > SMALL and not (keep_strings and t is str):
                    value = Ticking(budget, value)
            elif not (
                isinstance(value, Ticking | Undefined)
                or (keep_strings and isinstance(value, str))
                or not hasattr(value, "__iter__")
            ):
                value = Ticking(budget, value)
        if pass_arg is None:
            result = func(value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:  # list, slice, join: only join looks things up
            eval_ctx = context.eval_ctx
            if with_env:
                eval_ctx = _Scope(eval_ctx, _views(context, budget)[0], budget)
            result = func(eval_ctx, value, *args, **kwargs)
        else:
            env, scope = _views(context, budget)
            result = func(scope if pass_arg is _PassArg.context else env, value, *args, **kwargs)
        return _charged(budget, result)

    metered.jinja_pass_arg = _PassArg.context  # type: ignore[attr-defined]
    return metered


# -- the filters that sort: Jinja's, with a key that looks at the clock ---------------------------
# `sorted()` gathers its input first and only then computes every element's key, which a
# metered input cannot interrupt: the key itself has to look.
def _ticking(environment: Any, key: Callable[[Any], Any]) -> Callable[[Any], Any]:
    budget: Budget | None = getattr(environment, "budget", None)
    if budget is None:
        return key

    def ticking_key(item: Any) -> Any:
        budget.tick()
        return key(item)

    return ticking_key


@pass_environment
def do_sort(
    environment: Any,
    value: Iterable[Any],
    reverse: bool = False,
    case_sensitive: bool = False,
    attribute: Any = None,
) -> list[Any]:
    """Jinja's `sort`."""
    key = make_multi_attrgetter(environment, attribute, postprocess=None if case_sensitive else ignore_case)
    return sorted(value, key=_ticking(environment, key), reverse=reverse)


@pass_environment
def do_groupby(
    environment: Any, value: Iterable[Any], attribute: Any, default: Any = None, case_sensitive: bool = False
) -> list[_GroupTuple]:
    """Jinja's `groupby`."""
    post = None if case_sensitive else ignore_case
    key = _ticking(environment, make_attrgetter(environment, attribute, postprocess=post, default=default))
    out = [_GroupTuple(k, list(values)) for k, values in itertools.groupby(sorted(value, key=key), key)]
    if not case_sensitive:  # the real key from the first value instead of the lowercase one
        grouper = make_attrgetter(environment, attribute, default=default)
        out = [_GroupTuple(grouper(values[0]), values) for _, values in out]
    return out


@pass_environment
def do_dictsort(
    environment: Any, value: Any, case_sensitive: bool = False, by: str = "key", reverse: bool = False
) -> list[tuple[Any, Any]]:
    """Jinja's `dictsort`."""
    if by not in ("key", "value"):
        raise FilterArgumentError('You can only sort by either "key" or "value"')
    pos = 0 if by == "key" else 1

    def key(item: tuple[Any, Any]) -> Any:
        return item[pos] if case_sensitive else ignore_case(item[pos])

    return sorted(value.items(), key=_ticking(environment, key), reverse=reverse)


SORTING: dict[str, Callable[..., Any]] = {"sort": do_sort, "groupby": do_groupby, "dictsort": do_dictsort}


def _charged(budget: Budget, result: Any) -> Any:
    """A filter's result on the budget: an iterator metered item by item, a new list or string
    charged for its slots or characters."""
    t = type(result)
    if t is list or isinstance(result, str | tuple | list):
        if len(result) > SMALL:  # a few items are not worth a look at the clock
            budget.charge(len(result))
        return result
    if t is GeneratorType or (hasattr(t, "__next__") and not issubclass(t, Ticking)):
        return Metered(budget, result)
    return result


__all__ = ["SORTING", "WRAPPED", "Metered", "MeteredEnvironment", "Ticking", "lazy_filter", "units_of"]
