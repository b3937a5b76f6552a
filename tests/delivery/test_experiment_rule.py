"""The experiments' pure parts: the stopping rule's false-positive rate and power by seeded
simulation (looked at after every batch), assignment, intervals and input checks."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from delivery import experiments as ex


def _run(rng: random.Random, rates: dict[str, float], total: int, batch: int = 50) -> str:
    """One experiment looked at after every batch of recipients; the winner declared, or ""."""
    arms = {k: [0, 0] for k in rates}
    names = list(rates)
    for _ in range(0, total, batch):
        for _i in range(batch):
            k = names[rng.randrange(len(names))]
            arms[k][0] += 1
            arms[k][1] += rng.random() < rates[k]
        v = ex.verdict({k: (n, x) for k, (n, x) in arms.items()}, 100)
        if v.winner:
            return v.winner
    return ""


def test_a_a_runs_declare_a_winner_in_at_most_five_percent() -> None:
    rng = random.Random(24)
    runs = 400
    wins = sum(1 for _ in range(runs) if _run(rng, {"A": 0.12, "B": 0.12}, 2000))
    print(f"A/A false positives: {wins}/{runs} = {wins / runs:.1%}")
    assert wins / runs <= 0.05


def test_three_identical_variants_stay_under_five_percent() -> None:
    rng = random.Random(7)
    runs = 200
    wins = sum(1 for _ in range(runs) if _run(rng, {"A": 0.1, "B": 0.1, "C": 0.1}, 3000))
    assert wins / runs <= 0.05


def test_power_on_ten_against_fifteen_percent() -> None:
    rng = random.Random(15)
    runs = 200
    found = Counter(_run(rng, {"A": 0.10, "B": 0.15}, 2000) for _ in range(runs))
    print(f"10% vs 15% over 2000: B {found['B']}, A {found['A']}, none {found['']} of {runs}")
    assert found["A"] == 0
    assert found["B"] / runs >= 0.5


def test_nothing_before_the_minimum_sample() -> None:
    v = ex.verdict({"A": (99, 0), "B": (99, 99)}, 100)
    assert (v.winner, v.reason) == ("", "min_sample")
    v = ex.verdict({"A": (100, 0), "B": (100, 60)}, 100)
    assert v.winner == "B" and v.statistic >= v.threshold == 20


def test_assignment_is_stable_and_follows_the_weights() -> None:
    variants = [{"name": "A", "version": 1, "weight": 1}, {"name": "B", "version": 2, "weight": 3}]
    people = [f"+86138{i:08d}" for i in range(20000)]
    first = [ex.assign("c~0001", p, variants)["name"] for p in people]
    assert first == [ex.assign("c~0001", p, variants)["name"] for p in people]
    share = first.count("B") / len(first)
    assert 0.74 < share < 0.76
    other = [ex.assign("c~0002", p, variants)["name"] for p in people]
    assert first != other  # another experiment draws anew
    zero = [{**variants[0], "weight": 0}, variants[1]]
    assert {ex.assign("c~0001", p, zero)["name"] for p in people[:500]} == {"B"}


def test_wilson_interval() -> None:
    lo, hi = ex.wilson(10, 100)
    assert round(lo, 4) == 0.0552 and round(hi, 4) == 0.1744
    assert ex.wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"variants": [{"name": "A", "version": 1}], "goal": "tap_rate"}, "$.variants"),
        ({"variants": [{"name": str(i), "version": i + 1} for i in range(6)], "goal": "tap_rate"}, "$.variants"),
        ({"variants": [{"name": "A", "version": 1, "weight": 0}, {"name": "B", "version": 2, "weight": 0}],
          "goal": "tap_rate"}, "$.variants[0].weight"),
        ({"variants": [{"name": "A", "version": 1, "weight": -1}, {"name": "B", "version": 2}],
          "goal": "tap_rate"}, "$.variants[0].weight"),
        ({"variants": [{"name": "A", "version": 1}, {"name": "A", "version": 2}], "goal": "tap_rate"},
         "$.variants[1].name"),
        ({"variants": [{"name": "A", "version": 1}, {"name": "B", "version": 1}], "goal": "tap_rate"},
         "$.variants[1].version"),
        ({"variants": [{"name": "A", "version": 1}, {"name": "B", "version": 2}], "goal": "clicks"}, "$.goal"),
        ({"variants": [{"name": "A", "version": 1}, {"name": "B", "version": 2}], "goal": "tap_rate",
          "min_sample": 5}, "$.min_sample"),
    ],
)  # fmt: skip
def test_bad_shapes_name_the_field(body: dict, path: str) -> None:
    with pytest.raises(ex.Invalid) as err:
        ex.check_shape(body)
    assert err.value.path == path


def test_analysis_counts_the_goal_and_notes_weight_changes() -> None:
    doc = {
        "state": "running", "goal": "button:改约派送", "min_sample": 30, "started_at": 0.0, "variants": [
            {"name": "A", "version": 1, "weight": 1.0, "state": "active"},
            {"name": "B", "version": 2, "weight": 2.0, "state": "active"}],
        "history": [{"at": 0.0, "weights": {"A": 1, "B": 1}}, {"at": 7200.5, "weights": {"A": 1, "B": 2}}],
    }  # fmt: skip
    first = {
        "A": {"sent": 200, "tapped": 40, "tapped:改约派送": 10},
        "B": {"sent": 200, "tapped:改约派送": 45},
    }
    second = {"A": {"sent": 200, "tapped:改约派送": 10}, "B": {"sent": 400, "tapped:改约派送": 90}}
    spans = ex.spans(doc, 10000.0)
    assert [(a, b) for a, b, _ in spans] == [(0.0, 7200.0), (7200.0, 4 * 3600.0)]
    periods = [ex.Period(a, b, w, c) for (a, b, w), c in zip(spans, (first, second), strict=True)]
    out = ex.analyse(doc, periods)
    assert [r["goal"] for r in out["variants"]] == [20, 135]
    assert [r["sent"] for r in out["variants"]] == [400, 600]
    assert out["verdict"]["winner"] == "B" and out["method"] == "stratified"
    assert [p["variants"]["B"]["sent"] for p in out["periods"]] == [200, 400]
    assert out["periods"][1]["weights"] == {"A": 1, "B": 2}
    assert "分层" in out["note"] and len(out["weight_changes"]) == 1
    # a change in the start's own minute: one period, with the new weights, and a note that says so
    first, change = {**doc["history"][0], "at": 7210.0}, {**doc["history"][1], "at": 7240.0}
    soon = {**doc, "started_at": 7210.0, "history": [first, change]}
    [(since, until, weights)] = ex.spans(soon, 10000.0)
    assert (since, weights) == (7200.0, {"A": 1, "B": 2})
    one = ex.analyse(soon, [ex.Period(since, until, weights, second)])
    assert one["method"] == "single" and one["note"] and len(one["weight_changes"]) == 1


def test_pieces_read_each_grain_once() -> None:
    """A period's range as rollup ranges: minutes to the hour, hours to the (China) day, days."""
    day = 86400 - 8 * 3600  # a China day starts at 16:00 UTC
    since, until = day - 3600 - 120, day + 2 * 86400 + 3600 + 180
    got = ex.pieces(since, until)
    assert got == [(since, day - 3600), (day - 3600, day), (day, day + 2 * 86400),
                   (day + 2 * 86400, day + 2 * 86400 + 3600), (day + 2 * 86400 + 3600, until)]  # fmt: skip


def _periods(
    rng: random.Random, phases: list[tuple[int, dict[str, float], float]], pooled: bool, batch: int = 50
) -> str:
    """An A/A experiment whose rate drifts and whose weights change between allocation periods
    (recipients, weights, the rate of every variant), looked at after every batch: the winner
    declared, or "". `pooled`: the counts summed over periods, as an analysis that ignores the
    changes would."""
    periods: list[dict[str, list[int]]] = []
    for total, weights, rate in phases:
        arms = {k: [0, 0] for k in weights}
        periods.append(arms)
        names, shares = list(weights), list(weights.values())
        for _ in range(0, total, batch):
            for _i in range(batch):
                k = rng.choices(names, shares)[0]
                arms[k][0] += 1
                arms[k][1] += rng.random() < rate
            looked = [{k: (n, x) for k, (n, x) in a.items()} for a in periods]
            if pooled:
                summed = {k: (sum(p[k][0] for p in looked), sum(p[k][1] for p in looked)) for k in weights}
                v = ex.verdict(summed, 100)
            else:
                v = ex.stratified(looked, 100)
            if v.winner:
                return v.winner
    return ""


def test_a_weight_change_mid_experiment_keeps_a_a_under_five_percent() -> None:
    """Rates 5% then 20%, weights 1:1 then 1:9: pooled, B (most of the better period) wins
    almost always; stratified by period, no more often than the bound allows."""
    phases = [(1000, {"A": 1, "B": 1}, 0.05), (1000, {"A": 1, "B": 9}, 0.20)]
    runs = 400
    rng = random.Random(24)
    stratified = sum(1 for _ in range(runs) if _periods(rng, phases, False))
    rng = random.Random(24)
    pooled = sum(1 for _ in range(runs) if _periods(rng, phases, True))
    print(f"A/A with a weight change: stratified {stratified}/{runs} = {stratified / runs:.1%}, "
          f"pooled {pooled}/{runs} = {pooled / runs:.1%}")  # fmt: skip
    assert stratified / runs <= 0.05
    assert pooled / runs >= 0.5  # the scenario does bite: summed counts would mislead


def test_ten_changes_keep_a_a_under_five_percent() -> None:
    rng = random.Random(5)
    moves = [(1, 0.05), (4, 0.3), (0.25, 0.1), (9, 0.02), (1, 0.25), (3, 0.15), (1, 0.4), (0.2, 0.05),
             (5, 0.2), (1, 0.1)]  # fmt: skip
    phases = [(200, {"A": 1.0, "B": w}, r) for w, r in moves]
    runs = 300
    wins = sum(1 for _ in range(runs) if _periods(rng, phases, False, batch=20))
    print(f"A/A over ten allocation periods: {wins}/{runs} = {wins / runs:.1%}")
    assert wins / runs <= 0.05


def test_power_survives_a_weight_change() -> None:
    rng = random.Random(15)
    runs = 200
    found = Counter(
        _periods_ab(rng, [(1000, {"A": 1, "B": 1}), (1000, {"A": 1, "B": 3})], {"A": 0.10, "B": 0.15})
        for _ in range(runs)
    )
    print(f"10% vs 15%, weights 1:1 then 1:3: B {found['B']}, A {found['A']}, none {found['']} of {runs}")
    assert found["A"] == 0 and found["B"] / runs >= 0.5


def _periods_ab(
    rng: random.Random, phases: list[tuple[int, dict[str, float]]], rates: dict[str, float]
) -> str:
    periods: list[dict[str, list[int]]] = []
    for total, weights in phases:
        arms = {k: [0, 0] for k in weights}
        periods.append(arms)
        for _ in range(0, total, 50):
            for _i in range(50):
                k = rng.choices(list(weights), list(weights.values()))[0]
                arms[k][0] += 1
                arms[k][1] += rng.random() < rates[k]
            v = ex.stratified([{k: (n, x) for k, (n, x) in a.items()} for a in periods], 100)
            if v.winner:
                return v.winner
    return ""


async def test_period_counts_read_each_period_apart() -> None:
    """The counts of each allocation period from its own rollup ranges, summed over its pieces;
    the promotion's own history entry starts no period."""
    day = 86400 * 20000 - 8 * 3600  # a China day's start
    started, change, ended = day + 3600 * 5 + 90, day + 86400 + 600 + 30, day + 3 * 86400 + 100
    doc = {
        "id": "c~0001", "card": "c", "state": "promoted", "goal": "tap_rate", "min_sample": 30,
        "started_at": started, "ended_at": ended, "winner": "B",
        "variants": [{"name": "A", "version": 1, "weight": 0.0, "state": "retired"},
                     {"name": "B", "version": 2, "weight": 1.0, "state": "active"}],
        "history": [{"at": started, "weights": {"A": 1, "B": 1}}, {"at": change, "weights": {"A": 1, "B": 4}},
                    {"at": ended, "weights": {"A": 0, "B": 1}}],
    }  # fmt: skip
    asked: list[tuple[float, float]] = []

    async def counts(enterprise: str, card: str, since: float, until: float, x: str) -> ex.Counts:
        assert (enterprise, card, x) == ("sf", "c", "c~0001")
        asked.append((since, until))
        return {"A": {"sent": 1, "tapped": 0}, "B": {"sent": 2, "tapped": 1}}

    periods = await ex.period_counts("sf", doc, counts, now=ended + 5000)
    assert [(p.since, p.until) for p in periods] == [
        (day + 5 * 3600, day + 86400 + 600),
        (day + 86400 + 600, day + 3 * 86400 + 2 * 3600),
    ]
    assert [p.weights for p in periods] == [{"A": 1, "B": 1}, {"A": 1, "B": 4}]
    # each range on one grain, contiguous, covering both periods exactly
    assert asked[0][0] == periods[0].since and asked[-1][1] == periods[1].until
    assert all(a[1] == b[0] for a, b in itertools.pairwise(asked))
    assert len(asked) <= 8
    pieces = len(ex.pieces(periods[0].since, periods[0].until))
    assert periods[0].counts == {
        "A": {"sent": pieces, "tapped": 0},
        "B": {"sent": 2 * pieces, "tapped": pieces},
    }
    out = ex.analyse(doc, periods)
    assert out["method"] == "stratified" and len(out["weight_changes"]) == 1
