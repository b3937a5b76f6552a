"""Template budget benchmark: how far past its limits a hostile template gets before it is stopped.

For each hostile expression (lazy producers and the filters that iterate, from
simulators/hostile.py, which tests/renderer/test_lazy_budget.py refuses) it renders the
expression in process a few times and prints the thread's CPU time and the wall time until the
refusal, how far that is past the time limit, and the peak memory the render allocated
(tracemalloc). Target: every render stopped within 50 ms of CPU time past its limit (0.03 s in
the API, 1 s for a designer SVG), none allocating more than a few tens of megabytes.

Run: .venv/bin/python bench/template_budget_bench.py [--rounds 5] [--only NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from renderer.budget import BudgetExceeded, Limits  # noqa: E402
from renderer.sandbox import make_environment  # noqa: E402
from simulators.hostile import REFUSED  # noqa: E402

TARGET_PAST = 0.050


def measure(env: object, source: str, rounds: int) -> tuple[float, float, float, str]:
    """Median CPU and wall seconds to the refusal, peak MB of one traced round, the refusal."""
    template = env.from_string(source)  # type: ignore[attr-defined]
    cpu, wall, outcome = [], [], ""
    for _ in range(rounds):
        c0, w0 = time.thread_time(), time.monotonic()
        try:
            template.render()
            outcome = "RENDERED"
        except BudgetExceeded as exc:
            outcome = str(exc)
        cpu.append(time.thread_time() - c0)
        wall.append(time.monotonic() - w0)
    tracemalloc.start()
    with contextlib.suppress(BudgetExceeded):
        template.render()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(cpu), statistics.median(wall), peak, outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    worst = 0.0
    for label, limits in (("API (0.03 s)", Limits()), ("designer SVG (1 s)", Limits(seconds=1.0))):
        env = make_environment(limits)
        rounds = args.rounds if limits.seconds < 0.5 else 1
        print(f"== {label}: median of {rounds}, thread CPU time / wall time to the refusal")
        print(f"{'expression':18} {'cpu ms':>8} {'wall ms':>8} {'past ms':>8} {'peak MB':>8}  refusal")
        for name, source in REFUSED:
            if args.only and name != args.only:
                continue
            cpu, wall, peak, outcome = measure(env, source, rounds)
            past = max(cpu - limits.seconds, 0.0)
            worst = max(worst, past)
            ms = f"{cpu * 1000:8.1f} {wall * 1000:8.1f} {past * 1000:8.1f}"
            print(f"{name:18} {ms} {peak:8.1f}  {outcome[:60]}")
    verdict = "OK" if worst <= TARGET_PAST else "MISSED"
    target = f"target ≤ {TARGET_PAST * 1000:.0f} ms"
    print(f"worst CPU time past the limit {worst * 1000:.1f} ms ({target}): {verdict}")


if __name__ == "__main__":
    main()
