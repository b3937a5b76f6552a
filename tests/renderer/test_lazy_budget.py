"""Lazy producers on the render's budget: what `map`, `select`, `sort`'s keys and the rest yield
or look at is charged as it happens, so a chain of them is stopped at the time limit or the
total size limit instead of running for seconds or gathering gigabytes before anything is checked.

The refusals are asserted, not the time they take (that is bench/ and the server tests' matter):
without the budget each expression below runs for a tenth of a second to half a minute, or
allocates gigabytes, and is then answered."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from renderer import TemplateInvalid
from renderer.budget import BudgetExceeded
from renderer.sandbox import make_environment
from renderer.svgcard import render_svg_source
from simulators.hostile import BIG, CENTER, MAP_LIST, REFUSED, W

ENV = make_environment()


@pytest.mark.parametrize(("name", "source"), REFUSED, ids=[n for n, _ in REFUSED])
def test_lazy_producers_are_stopped_by_the_budget(name: str, source: str) -> None:
    start = time.monotonic()
    with pytest.raises(BudgetExceeded):
        ENV.from_string(source).render()
    assert time.monotonic() - start < 2.0  # generous: the limit is 0.03 s


SEQUENCE_CONSUMERS = ["last", "length", "count", "random", "tojson"]


@pytest.mark.parametrize("consumer", SEQUENCE_CONSUMERS)
def test_consumers_that_need_a_sequence_refuse_a_producer_without_reading_it(consumer: str) -> None:
    """`|last`, `|length`, `|random`, `|tojson` take a list, not a producer: an error at once,
    with nothing made (`|list` first, and the budget applies)."""
    with pytest.raises(Exception) as info:  # which error does not matter: the template's, a 422
        ENV.from_string(f"{{{{ {CENTER}|{consumer} }}}}").render()
    assert not isinstance(info.value, BudgetExceeded)  # refused before a single item was made


def test_a_map_to_a_list_allocates_no_gigabytes() -> None:
    """`map('center', 99999)|list|length`: run in a child with 1 GB of address space, so that without
    the budget it fails on memory instead of taking the machine's."""
    child = textwrap.dedent(
        f"""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from renderer.budget import BudgetExceeded
        from renderer.sandbox import make_environment
        env = make_environment()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        try:
            env.from_string({MAP_LIST!r}).render()
            outcome = "rendered"
        except BudgetExceeded as exc:
            outcome = "refused: " + str(exc)
        except MemoryError:
            outcome = "out of memory"
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(outcome, "|", grown // 1024, "|", round(time.monotonic() - start, 3))
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("refused: "), done.stdout + done.stderr[-2000:]
    _, grown_mb, seconds = done.stdout.strip().split(" | ")
    assert int(grown_mb) < 200 and float(seconds) < 2.0, done.stdout


def test_a_size_refusal_names_the_total_limit() -> None:
    with pytest.raises(BudgetExceeded, match="1,000,000"):
        # cheap per element, so the total size limit comes well before the clock
        ENV.from_string(f"{{{{ ({W}|map('center', 99999)|batch(20)|first)|length }}}}").render()


DATA = {
    "people": [
        {"name": "张三", "city": "北京", "age": 30, "on": True},
        {"name": "李四", "city": "上海", "age": 25, "on": False},
        {"name": "王五", "city": "北京", "age": 41, "on": True},
    ],
    "scores": {"b": 2, "a": 1, "C": 3},
}

ORDINARY: list[tuple[str, str]] = [
    ("{{ people|selectattr('on')|map(attribute='name')|join('、') }}", "张三、王五"),
    ("{{ people|rejectattr('on')|map(attribute='name')|first }}", "李四"),
    ("{{ people|map(attribute='age')|select('gt', 26)|list }}", "[30, 41]"),
    ("{{ people|map(attribute='age')|reject('odd')|list }}", "[30]"),
    ("{{ people|sort(attribute='age')|map(attribute='name')|join(',') }}", "李四,张三,王五"),
    (
        "{{ people|sort(attribute='city,age', reverse=true)|map(attribute='name')|join(',') }}",
        "王五,张三,李四",
    ),
    ("{{ people|groupby('city')|map('first')|join(',') }}", "上海,北京"),
    ("{{ people|map(attribute='city')|unique|list }}", "['北京', '上海']"),
    ("{{ people|unique(attribute='city')|map(attribute='name')|join }}", "张三李四"),
    ("{{ (people|max(attribute='age')).name }}", "王五"),
    ("{{ (people|min(attribute='age')).name }}", "李四"),
    ("{{ people|sum(attribute='age') }}", "96"),
    ("{{ people|join(',', attribute='name') }}", "张三,李四,王五"),
    ("{{ people|map(attribute='name')|batch(2, '-')|map('join')|join('/') }}", "张三李四/王五-"),
    ("{{ people|map(attribute='name')|slice(2)|map('length')|list }}", "[2, 1]"),
    ("{{ people|map(attribute='name')|reverse|join }}", "王五李四张三"),
    ("{{ [1, 2, 3]|reverse|list }}", "[3, 2, 1]"),
    ("{{ 'abc'|reverse }}", "cba"),
    ("{{ [1, 2, 3]|last }}", "3"),
    ("{{ [3, 1, 2]|sort|first }}", "1"),
    ("{{ 'bca'|sort|join }}", "abc"),
    ("{{ 'abc'|list }}", "['a', 'b', 'c']"),
    ("{{ 'abc'|join('-') }}", "a-b-c"),
    ("{{ scores|dictsort|first|first }}", "a"),
    ("{{ scores|dictsort(by='value', reverse=true)|map('last')|list }}", "[3, 2, 1]"),
    ("{{ scores|map('upper')|join }}", "BAC"),
    ("{{ none|map('upper')|list }}", "[]"),
    ("{{ []|select|list }}", "[]"),
    ("{{ dict(people|map(attribute='name')|batch(2, '-')) }}", "{'张三': '李四', '王五': '-'}"),
    ("{{ ''.join(people|map(attribute='city')) }}", "北京上海北京"),
    ("{{ people|map(attribute='nick', default='-')|join }}", "---"),
    ("{% for p in people|selectattr('on') %}{{ p.name }}{% endfor %}", "张三王五"),
    ("{{ '北京' in people|map(attribute='city') }}", "True"),
    ("{{ people|map(attribute='name')|map('mask_name')|join(' ') }}", "张* 李* 王*"),
]


@pytest.mark.parametrize(("source", "expected"), ORDINARY)
def test_ordinary_use_of_producers_is_unchanged(source: str, expected: str) -> None:
    assert ENV.from_string(source).render(**DATA) == expected


def test_an_svg_template_is_stopped_at_its_own_time_limit(tmp_path: Path) -> None:
    """A designer SVG (card.svg.j2) renders in a media worker on a longer limit (1 s): an
    element-by-element test that outputs nothing is stopped there, not seconds later."""
    svg = tmp_path / "card.svg.j2"
    svg.write_text(
        f"<svg>{{% for i in range(30) %}}{{{{ {W}|select('in', {BIG})|list|length }}}}{{% endfor %}}</svg>",
        "utf-8",
    )
    start = time.thread_time()  # the CPU time: a busy machine gives the render less of each second
    with pytest.raises(TemplateInvalid, match="time limit of 1 s"):
        render_svg_source(svg, {}, "lazy/card.svg.j2")
    assert time.thread_time() - start < 1.25  # without the budget, ~3 s and then an answer


def test_a_loop_whose_body_is_slow_is_stopped_after_the_step_that_ran_out() -> None:
    """Each loop step looks at the clock: a step of 10 ms of work (within every other limit)
    runs at most a step or two past the limit, not eight."""
    env = make_environment()
    calls = []

    def spin(value: object) -> object:
        calls.append(value)
        end = time.thread_time() + 0.010
        while time.thread_time() < end:
            pass
        return value

    env.filters["spin"] = spin
    with pytest.raises(BudgetExceeded, match="time limit"):
        env.from_string("{% for i in range(1000) %}{{ i|spin }}{% endfor %}").render()
    assert len(calls) <= 10, len(calls)  # 3 steps make the 30 ms; one or two more to be sure
