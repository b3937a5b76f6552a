"""The experiments' pure parts: the stopping rule's false-positive rate and power by seeded
simulation (looked at after every batch), assignment, intervals and input checks."""

from __future__ import annotations

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
        "state": "running", "goal": "button:改约派送", "min_sample": 30, "variants": [
            {"name": "A", "version": 1, "weight": 1.0, "state": "active"},
            {"name": "B", "version": 2, "weight": 1.0, "state": "active"}],
        "history": [{"weights": {"A": 1, "B": 1}}, {"weights": {"A": 1, "B": 2}}],
    }  # fmt: skip
    counts = {
        "A": {"sent": 400, "tapped": 80, "tapped:改约派送": 20},
        "B": {"sent": 400, "tapped:改约派送": 90},
    }
    out = ex.analyse(doc, counts)
    assert [r["goal"] for r in out["variants"]] == [20, 90]
    assert out["verdict"]["winner"] == "B"
    assert out["note"] and len(out["weight_changes"]) == 1
