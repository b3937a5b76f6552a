"""The resource budget of one template evaluation: value sizes, loop iterations, wall-clock time.

Templates are untrusted and run in the server's event loop, so a template must not be able to
build a 10 GB string or spin for seconds. Three bounds apply to every render (a card, a flow
turn, a designer SVG), whichever way a template tries:
- size: every value a template computes (strings, lists, dicts, integers) is at most
  `max_value` units (characters, items, decimal digits); operations that can amplify their
  input (`replace`, `ljust`, `%`, `join`, …) are refused *before* they allocate, from a size
  computed from their arguments; everything else is checked as it is produced;
- iterations: all `{% for %}` loops of one render together run at most `max_iterations` times;
- total: what lazy producers (`map`, `select`, `batch`, …) yield and consumers gather into new
  lists adds up to at most `max_total` units per render, so 50,000 strings each within the value
  limit cannot fill the memory either (lazy.py charges it, item by item, as they are made);
- time: the render stops at the next loop step, call, or element a producer or a filter's key
  looks at, once `seconds` have passed.
A refusal is a `BudgetExceeded` naming the limit; the caller adds the template's file:line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateRuntimeError
from jinja2.runtime import Context

LOG10_2 = 0.30103  # decimal digits per bit


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one render; the defaults are far above what any card or flow needs."""

    max_value: int = 100_000  # characters of a string, items of a list (nested items count)
    max_output: int = 100_000  # characters a whole template may output
    max_int_digits: int = 4_300  # Python's own int → str limit: any bigger int cannot be shown
    max_iterations: int = 10_000  # loop steps of one render, all loops and nesting together
    max_total: int = 1_000_000  # units lazy producers yield and consumers gather, all together
    # Renders run in the event loop: this is how long one template may hold it. A card takes
    # ~30 µs; the bound keeps /healthz answering while a hostile template is stopped.
    seconds: float = 0.03

    @property
    def max_int_bits(self) -> int:
        return int(self.max_int_digits / LOG10_2)


DEFAULT_LIMITS = Limits()
HARD_FACTOR = 4  # a render descheduled this long past its limit is stopped whatever its CPU time
PROBE_SHARE = 0.25  # the probe window after the limit, as a share of the limit
CPU_FROM = 0.25  # limits this long count the render's CPU time from its start
PROBE_MAX = 0.02  # ... and at most this long, so a busy render stops soon after a long limit too


class BudgetExceeded(TemplateRuntimeError):
    """A template went past one of its limits; the message names the limit."""


class Budget:
    """The running account of one render: when it must stop and how many loop steps it took.

    The clock is the wall clock (what the event loop waits for), checked at calls and loop
    steps. A render on a busy machine may be descheduled mid-way, which is not its doing: when
    the wall clock has run out, a short probe window follows, and the render is stopped at its
    end if the thread computed for most of it (its CPU time, read only then: a fast render never
    pays for the clock), or in any case once the wall clock reaches `HARD_FACTOR` times the limit.
    A long limit (a media worker's SVG) reads the CPU time at the start as well, one system call
    that is nothing beside what such a render costs, and stops the render once its thread has
    computed for the whole limit, however busy the machine."""

    __slots__ = (
        "cpu_mark",
        "cpu_start",
        "deadline",
        "hard_deadline",
        "iterations",
        "limits",
        "output",
        "total",
        "views",
        "wall_mark",
    )

    def __init__(self, limits: Limits) -> None:
        now = time.monotonic()
        self.limits = limits
        self.deadline = now + limits.seconds
        self.hard_deadline = now + limits.seconds * HARD_FACTOR
        self.cpu_mark = -1.0
        self.cpu_start = time.thread_time() if limits.seconds >= CPU_FROM else -1.0
        self.wall_mark = now
        self.iterations = 0
        self.output = 0  # characters output into buffers by templates with macros (sandbox.py)
        self.total = 0  # units yielded by lazy producers and gathered by consumers (lazy.py)
        self.views: Any = None  # the metered views of the sandbox lazy.py hands to filters

    def tick(self) -> None:
        """A cooperative check of the clock."""
        now = time.monotonic()
        if now > self.deadline:
            cpu = time.thread_time()
            limit = self.limits.seconds
            window = min(limit * PROBE_SHARE, PROBE_MAX)
            if self.cpu_start >= 0:  # a long limit: the CPU time it has had, all told
                left = limit - (cpu - self.cpu_start)
                busy = left <= 0
                window = min(window, max(left, 0.001))
            else:
                busy = self.cpu_mark >= 0 and cpu - self.cpu_mark >= 0.8 * (now - self.wall_mark)
            if busy or now > self.hard_deadline:
                raise BudgetExceeded(f"the render took longer than its time limit of {limit:g} s")
            self.cpu_mark, self.wall_mark, self.deadline = cpu, now, now + window

    def charge(self, units: int) -> None:
        """Units of new values a producer yielded or a consumer gathered, and a look at the clock."""
        self.total += units
        if self.total > self.limits.max_total:
            raise BudgetExceeded(
                f"the values this render made add up to more than the limit of {self.limits.max_total:,}"
                " characters or items"
            )
        self.tick()

    def add_output(self, text: str) -> str:
        self.output += len(text)
        if self.output > self.limits.max_output:
            raise BudgetExceeded(
                f"the template's output is longer than the limit of {self.limits.max_output:,} characters"
            )
        return text

    def step(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise BudgetExceeded(
                f"loops ran more than {self.limits.max_iterations} steps in one render (the limit)"
            )
        if time.monotonic() > self.deadline:
            self.tick()


class BudgetContext(Context):
    """A Jinja context that carries its render's budget, made on first use (a render that
    never loops or calls pays nothing; straight-line code before that first use is bounded
    by the template's length). A loop item's scope (`CardSandbox.child_context`) shares its
    parent's budget."""

    budget: Budget | None = None


def budget_of(context: Any) -> Budget:
    budget: Budget | None = getattr(context, "budget", None)
    if budget is None:
        budget = Budget(getattr(context.environment, "limits", DEFAULT_LIMITS))
        context.budget = budget
    return budget


def counted(context: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    """What every `{% for %}` loop iterates (sandbox.py rewrites the loops to call it)."""
    budget = budget_of(context)
    budget.tick()
    limit = budget.limits.max_iterations
    for item in iterable:
        n = budget.iterations = budget.iterations + 1
        if n > limit:
            raise BudgetExceeded(f"loops ran more than {limit} steps in one render (the limit)")
        if time.monotonic() > budget.deadline:  # every step: a step's body may be slow
            budget.tick()
        yield item


def size_of(value: Any, cap: int) -> int:
    """The size of a value in the budget's units, counted up to just past `cap` (then it stops:
    a huge value is not walked to the end). Strings: characters; integers: decimal digits;
    lists, tuples, dicts: their items plus the items' own sizes; anything else: 1."""
    t = type(value)
    if t is str or t is bytes:
        return len(value)
    if t is int:
        return int(value.bit_length() * LOG10_2) + 1
    if t is list or t is tuple or t is dict or isinstance(value, list | tuple | dict | set | frozenset):
        total = len(value)
        items = value.items() if isinstance(value, dict) else value
        stack: list[Iterator[Any]] = [iter(items)]
        while stack and total <= cap:
            for item in stack[-1]:
                it = type(item)
                if it is str or it is bytes:
                    total += len(item)
                elif isinstance(item, list | tuple | dict | set | frozenset):
                    total += len(item)
                    stack.append(iter(item.items() if isinstance(item, dict) else item))
                    break
                else:
                    total += _scalar_size(item)
                if total > cap:
                    break
            else:
                stack.pop()
        return total
    return _scalar_size(value)


def _scalar_size(value: Any) -> int:
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, int):
        return int(value.bit_length() * LOG10_2) + 1
    return 1


def refuse_size(what: str, size: int, limits: Limits) -> BudgetExceeded:
    return BudgetExceeded(
        f"{what} would build {size:,} characters or items, above the limit of {limits.max_value:,}"
    )


def check_value(value: Any, limits: Limits, what: str = "a value") -> Any:
    """Return `value` if it is within the size limits; raise BudgetExceeded otherwise."""
    t = type(value)
    if t is str:
        if len(value) > limits.max_value:
            raise refuse_size(what, len(value), limits)
        return value
    if t is int:
        if value.bit_length() > limits.max_int_bits:
            raise BudgetExceeded(f"{what}: an integer above the limit of {limits.max_int_digits} digits")
        return value
    if t is float or t is bool or value is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > limits.max_int_bits:
            raise BudgetExceeded(f"{what}: an integer above the limit of {limits.max_int_digits} digits")
        return value
    size = size_of(value, limits.max_value)
    if size > limits.max_value:
        raise refuse_size(what, size, limits)
    return value


__all__ = [
    "DEFAULT_LIMITS",
    "Budget",
    "BudgetContext",
    "BudgetExceeded",
    "Limits",
    "check_value",
    "counted",
    "size_of",
]
