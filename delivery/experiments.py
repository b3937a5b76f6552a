"""Experiments: two to five reviewed versions of one card sent side by side, and a rule that says
when one of them is better.

An experiment names its variants (each an approved version of the card, with a weight), its goal
(`tap_rate`: deliveries with a tap; `open_rate`: with a link opened; `button:<text>`: with a tap
on that button), a minimum sample per variant and whether the winner is promoted by itself.

Assignment: a person always gets the same variant of an experiment. A keyed hash of (experiment,
recipient) is a number in [0, 1) mapped onto the cumulative weights, so nothing is stored per
person and every process agrees. Changing the weights moves some people to another variant; the
change is kept in the experiment's `history` (and the audit log) and starts a new allocation
period, which the analysis keeps apart (below).

The stopping rule: a mixture sequential probability ratio test (mSPRT, Johari, Pekelis and Walsh,
"Always valid inference", 2017) on the difference of two proportions, with a normal mixing
distribution N(0, τ²) over the difference. Its likelihood ratio

    Λ = sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²)))

(θ̂ the observed difference of the rates, V its variance) is a martingale under "no difference",
so by Ville's inequality the chance that it *ever* reaches 1/α is at most α: the analysis may be
looked at after every delivery, as a console page and the periodic check do, and the chance of
declaring a winner between two identical variants stays below α. A fixed-sample test looked at
repeatedly would not (its false-positive rate grows with every look), and a Bayesian "probability
to be best above 95%" rule has no such bound either. The price is power: a mixture test needs
somewhat more sample than a fixed test planned for the exact difference. τ = 0.05 (a difference
of five points is what the mixture expects) is near the best choice for tap rates of 5–30% over
a few thousand deliveries. With more than two variants, a winner is a variant better than each
other one at α / (number of pairs) (Bonferroni), so the bound holds for the whole experiment.
No verdict is given before every active variant has its minimum sample (the normal approximation
needs it; 100 by default).

Weight changes: the counts are split at each change, and the rule is stratified by allocation
period. Pooling the counts of periods with different weights is wrong whenever the rates drift
over time (a weekday and a weekend, a campaign starting): the variant whose share grew in the
better period looks better with no difference at all (Simpson's paradox; the seeded A/A run in
tests/delivery/test_experiment_rule.py with rates 5% → 20% and weights 1:1 → 1:9 declares a false
winner in most runs when pooled). Within a period the weights are fixed, so both variants see
the same drift. The mixture test is written in terms of a score S = θ̂ / V and its information
I = 1 / V (Λ = (1 + τ² I)^-½ · exp(τ² S² / (2 (1 + τ² I))), the formula above); each period adds
its own S_k = θ̂_k / V_k and I_k = 1 / V_k (its own difference and pooled rate), so the combined
θ̂ = ΣS_k / ΣI_k weights each period's difference by its information, the stratified estimate
(what Optimizely's "epoch" engine does for the same reason). Under "no difference within any
period" the summed score is again a process of independent zero-mean increments with variance
I, so Λ stays a martingale and the bound by Ville's inequality holds across the changes: nothing
is spent again at a change. We chose this over restarting the test at each change, which throws
away the earlier evidence and, looked at in every period, spends α once per period. Facts are
split by when they happen (the rollups' minutes): a tap on a card sent a minute before a change
counts in the period after it, a spill of minutes against periods of hours.

Documents: `experiment` (id `<card>~<n>`, every experiment kept) and `experiment_running` (id: the
card; the running experiment's id and variants, the one document intake reads per call).

Races: the running document's key is the one-running-experiment-per-card constraint. A start
inserts it only where none exists (`put_new`; on PostgreSQL a concurrent insert waits for the
other's commit, then finds it), so of two starts one wins and the other is a Conflict with no
record or audit entry. Every change of a running experiment (weights, stop, promotion, the
automatic promotion) reads it in its transaction from the database, held until the commit
(`get_for_update`), so of two at once the second sees what the first wrote: two stops or
promotions end it once, with one audit entry; two weight changes are both kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from renderer.jsonpath import json_path

from . import reviews
from .events import GRAINS, bucket_of

KIND, RUNNING = "experiment", "experiment_running"
MIN_VARIANTS, MAX_VARIANTS = 2, 5
ALPHA = 0.05
TAU = 0.05
DEFAULT_MIN_SAMPLE = 100
MIN_SAMPLE_FLOOR = 30  # below this the normal approximation is not to be trusted
MAX_SAMPLE = 10_000_000  # more than a card is sent in years: a typo, and no verdict ever
GOALS = ("tap_rate", "open_rate")
SAME = ("phase", "line", "group")  # what every variant shares with the card: which calls get it
NAME_CHARS = 20
Counts = dict[str, dict[str, int]]  # variant → event kind → count (delivery/events.py)


# The Chinese title of each field, by the last name in its JSON path (what an error names).
TITLES = {
    "variants": "版本", "name": "版本名", "version": "名片版本号", "weight": "权重", "weights": "权重",
    "goal": "目标", "min_sample": "每个版本的最小样本", "auto_promote": "自动提升胜出版本",
    "variant": "版本名", "x": "实验", "$": "实验",
}  # fmt: skip


def title_of(path: str) -> str:
    """The title of the field at a JSON path (`$.variants[1].weight` → 权重)."""
    if path.startswith("$.weights"):
        return TITLES["weight"]
    last = path.rstrip("]").rsplit(".", 1)[-1].split("[", 1)[0] if path != "$" else "$"
    return TITLES.get(last, "实验")


class Invalid(ValueError):
    """Bad experiment input: `path` is the JSON path of the field at fault, `title` its name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.title = title_of(path)


class Conflict(Invalid):
    """The experiment's state forbids it (one runs already, or it has ended): a 409. `doc`: the
    experiment as the database had it, when read."""

    def __init__(self, path: str, message: str, doc: dict[str, Any] | None = None) -> None:
        super().__init__(path, message)
        self.doc = doc


# --- assignment ---------------------------------------------------------------------------------


def unit(experiment: str, recipient: str) -> float:
    """A number in [0, 1) fixed by the experiment and the person (a keyed hash of both)."""
    h = hashlib.blake2b(recipient.encode(), key=experiment.encode()[:64], digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def assign(experiment: str, recipient: str, variants: list[dict[str, Any]]) -> dict[str, Any]:
    """The variant the person gets: the same one every time while the weights stay."""
    live = [v for v in variants if float(v.get("weight", 0)) > 0 and v.get("state", "active") == "active"]
    if not live:
        return variants[0]
    total = sum(float(v["weight"]) for v in live)
    x = unit(experiment, recipient) * total
    for v in live:
        x -= float(v["weight"])
        if x < 0:
            return v
    return live[-1]


# --- the stopping rule --------------------------------------------------------------------------


def evidence(n1: int, x1: int, n2: int, x2: int) -> tuple[float, float]:
    """The score S = θ̂ / V and information I = 1 / V of "rate 2 minus rate 1" (x successes of
    n) in one period; (0, 0) where the period tells nothing (an empty arm, no success or all)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 0.0
    # the pooled rate's variance: with no success (or all) in one arm the arm's own would be zero
    pooled = (x1 + x2) / (n1 + n2)
    v = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if v <= 0:
        return 0.0, 0.0
    return (x2 / n2 - x1 / n1) / v, 1 / v


def mixture(score: float, information: float, tau: float = TAU) -> float:
    """The mixture likelihood ratio Λ of a score and its information (1 with none)."""
    if information <= 0:
        return 1.0
    t2i = tau * tau * information
    return math.exp(tau * tau * score * score / (2 * (1 + t2i))) / math.sqrt(1 + t2i)


def msprt(n1: int, x1: int, n2: int, x2: int, tau: float = TAU) -> float:
    """The mixture likelihood ratio Λ for "rate 2 differs from rate 1" (x successes of n)."""
    return mixture(*evidence(n1, x1, n2, x2), tau)


@dataclass(frozen=True)
class Verdict:
    winner: str  # "" : none yet
    reason: str  # "min_sample" (too few yet), "no_difference" (none clear yet), "winner"
    statistic: float  # the winner's smallest Λ against another variant (else the largest Λ seen)
    threshold: float  # what Λ must reach

    def to_json(self) -> dict[str, Any]:
        return {
            "winner": self.winner or None,
            "reason": self.reason,
            "statistic": round(self.statistic, 4),
            "threshold": round(self.threshold, 4),
            "p_value": round(min(1.0, 1 / self.statistic), 6) if self.statistic > 0 else 1.0,
        }


def verdict(
    arms: dict[str, tuple[int, int]],
    min_sample: int = DEFAULT_MIN_SAMPLE,
    alpha: float = ALPHA,
    tau: float = TAU,
) -> Verdict:
    """Whether one arm (name → (sent, goal count)) beats every other, valid at any look."""
    return stratified([arms], min_sample, alpha, tau)


def stratified(
    periods: list[dict[str, tuple[int, int]]],
    min_sample: int = DEFAULT_MIN_SAMPLE,
    alpha: float = ALPHA,
    tau: float = TAU,
) -> Verdict:
    """Whether one arm beats every other, from each allocation period's counts (name → (sent,
    goal count)) compared within the period and the evidence summed (module docstring)."""
    names = list(dict.fromkeys(name for arms in periods for name in arms))
    total = {name: sum(arms.get(name, (0, 0))[0] for arms in periods) for name in names}
    pairs = len(names) * (len(names) - 1) // 2
    threshold = pairs / alpha if pairs else math.inf
    if len(names) < 2 or min(total.values()) < min_sample:
        return Verdict("", "min_sample", 1.0, threshold)
    best, best_stat, top = "", 0.0, 1.0
    for name in names:
        stats = []
        for other in names:
            if other == name:
                continue
            score = information = 0.0
            for arms in periods:
                (m, y), (n, x) = arms.get(other, (0, 0)), arms.get(name, (0, 0))
                s, i = evidence(m, y, n, x)
                score, information = score + s, information + i
            lam = mixture(score, information, tau)
            top = max(top, lam)
            stats.append(lam if score > 0 else 0.0)
        weakest = min(stats)
        if weakest >= threshold and weakest > best_stat:
            best, best_stat = name, weakest
    if best:
        return Verdict(best, "winner", best_stat, threshold)
    return Verdict("", "no_difference", top, threshold)


def wilson(x: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate x / n ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = x / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


# --- input --------------------------------------------------------------------------------------


def goal_kind(goal: str) -> str:
    """The event kind counted as the goal (delivery/events.py KINDS, or `tapped:<button>`)."""
    if goal == "tap_rate":
        return "tapped"
    if goal == "open_rate":
        return "opened"
    return "tapped:" + goal.removeprefix("button:")


def buttons(body: dict[str, Any]) -> set[str]:
    """Every button text a card version's data names (any `text`/`title`/`label` in a list of
    buttons or quick replies)."""
    found: set[str] = set()

    def walk(v: Any, under: str) -> None:
        if isinstance(v, dict):
            for k, w in v.items():
                if k in ("text", "title", "label", "displayText") and isinstance(w, str) and under:
                    found.add(w)
                walk(w, k if isinstance(w, list) else under)
        elif isinstance(v, list):
            for w in v:
                walk(w, under)

    walk(body.get("data") or {}, "")
    return found


MAX_WEIGHT = 1_000_000


def check_weights(
    weights: list[Any], path: str = "$.variants", names: list[str] | None = None
) -> list[float]:
    """Weights are finite numbers from 0 to MAX_WEIGHT, not all zero. `names`: the weights are
    an object by variant name (`$.weights.B`), not the variants' list (`$.variants[1].weight`)."""

    def at(i: int) -> str:
        return json_path(("weights", names[i])) if names is not None else f"{path}[{i}].weight"

    out = []
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise Invalid(at(i), "「权重」须为不小于 0 的数")
        if w > MAX_WEIGHT:
            raise Invalid(at(i), f"「权重」过大，至多 {MAX_WEIGHT}")
        out.append(float(w))
    if not any(out):
        raise Invalid(at(0), "「权重」不能全为 0：至少一个版本的权重须大于 0")
    return out


def check_shape(body: dict[str, Any]) -> None:
    """What can be checked without the store: variant count, names, weights, goal, sample."""
    variants = body.get("variants")
    if not isinstance(variants, list) or len(variants) < MIN_VARIANTS:
        raise Invalid("$.variants", f"「版本」至少 {MIN_VARIANTS} 个：一个版本无从比较")
    if len(variants) > MAX_VARIANTS:
        raise Invalid("$.variants", f"「版本」至多 {MAX_VARIANTS} 个")
    names: set[str] = set()
    versions: set[int] = set()
    for i, v in enumerate(variants):
        if not isinstance(v, dict):
            raise Invalid(f"$.variants[{i}]", "「版本」须为对象")
        name = v.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_CHARS:
            raise Invalid(f"$.variants[{i}].name", f"「版本名」须为 1–{NAME_CHARS} 个字符")
        if name in names:
            raise Invalid(f"$.variants[{i}].name", "「版本名」重复")
        names.add(name)
        n = v.get("version")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise Invalid(f"$.variants[{i}].version", "「名片版本号」须为正整数")
        if n in versions:
            raise Invalid(f"$.variants[{i}].version", "「名片版本号」重复：同一版本不能用两次")
        versions.add(n)
    check_weights([v.get("weight", 1) for v in variants])
    goal = body.get("goal")
    if not isinstance(goal, str) or not (goal in GOALS or (goal.startswith("button:") and goal[7:].strip())):
        raise Invalid("$.goal", "「目标」须为 tap_rate、open_rate 或 button:<按钮文字>")
    ms = body.get("min_sample", DEFAULT_MIN_SAMPLE)
    if isinstance(ms, bool) or not isinstance(ms, int) or not MIN_SAMPLE_FLOOR <= ms <= MAX_SAMPLE:
        raise Invalid("$.min_sample", f"「每个版本的最小样本」须为 {MIN_SAMPLE_FLOOR}–{MAX_SAMPLE} 的整数")
    if not isinstance(body.get("auto_promote", False), bool):
        raise Invalid("$.auto_promote", "「自动提升胜出版本」须为 true 或 false")


# --- the store ----------------------------------------------------------------------------------


async def running(store: Any, enterprise: str, card: str) -> dict[str, Any] | None:
    """The card's running experiment's variants as intake reads them (one cached document)."""
    doc = await store.get(RUNNING, enterprise, card)
    return doc  # type: ignore[no-any-return]


async def for_delivery(
    store: Any, enterprise: str, card: dict[str, Any], recipient: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card a delivery shows under the card's running experiment (the assigned variant's
    version), and what its `data` records; the card itself and {} when none runs."""
    run = await store.get(RUNNING, enterprise, card.get("id", "")) if card else None
    if not run:
        return card, {}
    v = assign(run["id"], recipient, run["variants"])
    n = int(v["version"])
    if n != int(card.get("version", 1)):
        body = await reviews.version_body(store, enterprise, card["id"], n)
        if body is not None:
            card = {**body, "version": n}
    return card, {"experiment": run["id"], "variant": v["name"]}


ButtonsOf = Callable[[dict[str, Any]], Awaitable[set[str]]]


async def _data_buttons(body: dict[str, Any]) -> set[str]:
    return buttons(body)


async def create(
    store: Any,
    enterprise: str,
    card: str,
    body: dict[str, Any],
    who: str,
    buttons_of: ButtonsOf = _data_buttons,
) -> dict[str, Any]:
    """A new running experiment, audited, in a transaction of its own. Raises Invalid, or Conflict
    when the card has one running: of two starts at the same moment one wins, on any store (the
    running document's key admits one; the other's insert waits for its commit, then finds it).
    `buttons_of`: a version's button texts (as rendered), for a goal naming a button."""
    check_shape(body)
    if await store.get(RUNNING, enterprise, card) is not None:
        raise Conflict("$", "「实验」：这张名片已有进行中的实验")
    sent = await store.get("card", enterprise, card)
    goal = body["goal"]
    for i, v in enumerate(body["variants"]):
        ver = await store.get(reviews.VERSION, enterprise, reviews.version_id(card, v["version"]))
        if ver is None and v["version"] == 1 and not await reviews.versions(store, enterprise, card):
            # a card from before versions: the stored card is its version 1
            ver = {"state": "approved", "body": reviews.content(sent)} if sent else None
        if ver is None:
            raise Invalid(f"$.variants[{i}].version", f"「名片版本号」：名片没有第 {v['version']} 版")
        if ver.get("state") not in ("approved", "superseded"):
            raise Invalid(f"$.variants[{i}].version", f"「名片版本号」：第 {v['version']} 版未通过审核")
        if sent is not None and any(ver["body"].get(k) != sent.get(k) for k in SAME):
            raise Invalid(
                f"$.variants[{i}].version",
                f"「名片版本号」：第 {v['version']} 版的时机或适用线路与名片现在的不同",
            )
        if goal.startswith("button:") and goal[7:] not in await buttons_of(ver["body"]):
            raise Invalid("$.goal", f"「目标」：第 {v['version']} 版没有按钮「{goal[7:]}」")
    weights = check_weights([v.get("weight", 1) for v in body["variants"]])
    now = time.time()
    doc: dict[str, Any] = {
        "id": "",
        "card": card,
        "state": "running",
        "variants": [
            {"name": v["name"], "version": v["version"], "weight": w, "state": "active"}
            for v, w in zip(body["variants"], weights, strict=True)
        ],
        "goal": goal,
        "min_sample": body.get("min_sample", DEFAULT_MIN_SAMPLE),
        "auto_promote": bool(body.get("auto_promote", False)),
        "alpha": ALPHA,
        "tau": TAU,
        "started_at": now,
        "started_by": who,
        "ended_at": None,
        "winner": None,
        "history": [{"at": now, "by": who, "weights": {v["name"]: w for v, w in zip(body["variants"], weights,
                                                                                    strict=True)}}],
    }  # fmt: skip
    earlier = len(await of_card(store, enterprise, card))
    async with store.tx():
        for n in range(earlier + 1, earlier + 100):  # the next free number (another start may have taken one)
            doc["id"] = f"{card}~{n:04d}"
            if await store.put_new(KIND, enterprise, doc["id"], doc):
                break
        else:  # a hundred starts at once: let the person try again
            raise Conflict("$", "「实验」：这张名片同时有多个实验在开始，请稍后再试")
        run = {"id": doc["id"], "enterprise": enterprise, "variants": doc["variants"]}
        if not await store.put_new(RUNNING, enterprise, card, run):
            raise Conflict("$", "「实验」：这张名片已有进行中的实验")
        await store.audit(who, enterprise, f"card:{card}", "start experiment", {"experiment": doc["id"]})
    return doc


async def _save(store: Any, enterprise: str, doc: dict[str, Any]) -> None:
    await store.put(KIND, enterprise, doc["id"], doc)
    if doc["state"] == "running":
        run = {"id": doc["id"], "enterprise": enterprise, "variants": doc["variants"]}
        await store.put(RUNNING, enterprise, doc["card"], run)
    else:
        await store.delete(RUNNING, enterprise, doc["card"])


async def _running(store: Any, enterprise: str, id: str) -> dict[str, Any]:
    """Inside a transaction: the experiment as the database has it, held until the end of the
    transaction, so that of two changes at once the second reads what the first wrote."""
    doc = await store.get_for_update(KIND, enterprise, id)
    if doc is None or doc["state"] != "running":
        raise Conflict("x", "「实验」已结束", doc)
    return dict(doc)


async def get(store: Any, enterprise: str, id: str) -> dict[str, Any] | None:
    doc = await store.get(KIND, enterprise, id)
    return dict(doc) if doc else None


async def of_card(store: Any, enterprise: str, card: str) -> list[dict[str, Any]]:
    """Every experiment of a card, newest first."""
    found = [e for e in await store.list(KIND, enterprise) if e.get("card") == card]
    return sorted(found, key=lambda e: e["id"], reverse=True)


async def set_weights(
    store: Any, enterprise: str, doc: dict[str, Any], weights: dict[str, Any], who: str
) -> dict[str, Any]:
    """New weights of a running experiment, kept in its history and audited (a transaction of
    its own: two changes at once are both kept, one after the other). Raises Invalid, or
    Conflict when it has ended."""
    names = [v["name"] for v in doc["variants"]]
    for name in weights:
        if name not in names:
            raise Invalid(json_path(("weights", name)), f"「权重」：实验没有版本「{name}」")
    async with store.tx():
        doc = await _running(store, enterprise, doc["id"])
        old = [v["weight"] for v in doc["variants"]]
        new = check_weights([weights.get(n, w) for n, w in zip(names, old, strict=True)], "$.weights", names)
        now = time.time()
        doc["variants"] = [{**v, "weight": w} for v, w in zip(doc["variants"], new, strict=True)]
        doc["history"] = [
            *doc["history"],
            {"at": now, "by": who, "weights": dict(zip(names, new, strict=True))},
        ]
        await _save(store, enterprise, doc)
        detail = {"experiment": doc["id"], "weights": doc["history"][-1]["weights"]}
        await store.audit(who, enterprise, f"card:{doc['card']}", "change experiment weights", detail)
    return doc


async def end(
    store: Any,
    enterprise: str,
    doc: dict[str, Any],
    who: str,
    winner: str = "",
    action: str = "",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop an experiment; with a winner, promote it: its version becomes what the card sends and
    the other variants are retired. Audited as `action` (unless ""), in the same transaction,
    which reads the experiment held: of two ends at once one does it, the other raises Conflict."""
    async with store.tx():
        doc = await _running(store, enterprise, doc["id"])
        now = time.time()
        doc |= {"state": "promoted" if winner else "stopped", "ended_at": now, "ended_by": who,
                "winner": winner or None}  # fmt: skip
        if winner:
            doc["variants"] = [
                {
                    **v,
                    "weight": 1.0 if v["name"] == winner else 0.0,
                    "state": "active" if v["name"] == winner else "retired",
                }
                for v in doc["variants"]
            ]
            doc["history"] = [
                *doc["history"],
                {"at": now, "by": who, "weights": {v["name"]: v["weight"] for v in doc["variants"]}},
            ]
            n = next(int(v["version"]) for v in doc["variants"] if v["name"] == winner)
            await reviews.reinstate(store, enterprise, doc["card"], n)
        await _save(store, enterprise, doc)
        if action:
            base = {"experiment": doc["id"], **({"winner": winner} if winner else {})}
            await store.audit(who, enterprise, f"card:{doc['card']}", action, {**base, **(detail or {})})
    return doc


@dataclass(frozen=True)
class Period:
    """An allocation period: the weights from `since` until `until` (whole minutes), and the
    counts of the facts in it."""

    since: float
    until: float
    weights: dict[str, float]
    counts: Counts


def spans(doc: dict[str, Any], now: float) -> list[tuple[float, float, dict[str, float]]]:
    """The experiment's allocation periods (since, until, weights): from its start to the first
    weight change, between changes, from the last change on. A change's minute goes to the
    period it starts (the rollups' finest grain; a change in the minute its period began, the
    experiment's first one included, gives that period the new weights). The first period is
    read from the start's whole hour, the last one up to an hour past the end (or now), which
    keeps the facts of deliveries still running when it ended. The counts are of
    this experiment alone, so the margins count nothing else."""
    ended = doc.get("ended_at")
    history = doc.get("history") or [{"weights": {v["name"]: v["weight"] for v in doc["variants"]}}]
    started = float(doc["started_at"])
    bounds = [(math.floor(started / 3600) * 3600, dict(history[0]["weights"]))]
    minute = math.floor(started / 60) * 60  # the minute the current period began in
    for h in history[1:]:
        at = h.get("at")
        if at is None or (ended is not None and float(at) >= float(ended)):  # the promotion's own
            continue
        b = math.floor(float(at) / 60) * 60
        if b <= minute:  # in the minute its period began: that period takes the new weights
            bounds[-1] = (bounds[-1][0], dict(h["weights"]))
        else:
            bounds.append((b, dict(h["weights"])))
            minute = b
    last = (math.floor(float(ended or now) / 3600) + 2) * 3600
    return [(b, bounds[i + 1][0] if i + 1 < len(bounds) else last, w) for i, (b, w) in enumerate(bounds)]


def pieces(since: float, until: float) -> list[tuple[float, float]]:
    """[since, until) (whole minutes) as ranges each on one grain of the rollups, coarsest first
    where the bounds allow: minutes up to the hour, hours up to the day, days, then back down, so
    a month's period reads a few hundred rollup buckets, not forty thousand minutes."""
    order = ("d", "h", "m")
    out, t = [], since
    while t < until:
        for i, grain in enumerate(order):
            size = GRAINS[grain]
            if bucket_of(t, grain) != t or t + size > until:
                continue
            end = bucket_of(until, grain)
            if i:  # up to the next coarser boundary, from where the coarser grain reads on
                coarser = order[i - 1]
                end = min(end, bucket_of(t, coarser) + GRAINS[coarser])
            out.append((t, end))
            t = end
            break
        else:
            break  # a bound not on a minute: nothing finer to read
    return out


def analyse(doc: dict[str, Any], periods: list[Period]) -> dict[str, Any]:
    """Per variant: sent, goal count, rate and its 95% interval over the whole experiment (to
    read); per allocation period the same counts; the rule's verdict, stratified by period
    (module docstring); the weight changes and, when there were any, a note that says how."""
    kind = goal_kind(doc["goal"])
    live = [
        v["name"]
        for v in doc["variants"]
        if v.get("state", "active") == "active" or doc["state"] != "running"
    ]
    per: list[dict[str, tuple[int, int]]] = []
    out_periods = []
    for p in periods:
        arms = {}
        for v in doc["variants"]:
            c = p.counts.get(v["name"], {})
            n = int(c.get("sent", 0))
            arms[v["name"]] = (n, min(int(c.get(kind, 0)), n))
        per.append({name: arms[name] for name in live})
        counted = {
            name: {"sent": n, "goal": x, "rate": x / n if n else None} for name, (n, x) in arms.items()
        }
        out_periods.append({"since": p.since, "until": p.until, "weights": p.weights, "variants": counted})
    rows = []
    for v in doc["variants"]:
        n = sum(p["variants"][v["name"]]["sent"] for p in out_periods)
        x = sum(p["variants"][v["name"]]["goal"] for p in out_periods)
        lo, hi = wilson(x, n)
        rows.append({**v, "sent": n, "goal": x, "rate": x / n if n else None, "interval": [lo, hi]})
    result = stratified(
        per, int(doc["min_sample"]), float(doc.get("alpha", ALPHA)), float(doc.get("tau", TAU))
    )
    changes = [
        h for h in doc.get("history", [])[1:] if not doc.get("ended_at") or h.get("at") != doc["ended_at"]
    ]
    note = "权重在实验开始的那一分钟内调整过：整个实验按调整后的权重算作一个时段。" if changes else ""
    if len(periods) > 1:
        note = (
            f"实验中途调整过 {len(periods) - 1} 次权重，分成 {len(periods)} 个时段。"
            "结论按时段分别比较各版本后合并得出（分层检验），不是把各时段的次数直接相加："
            "分配比例变了而转化率又随时间变化时，直接相加会让比例升高的版本显得更好。"
            "上表的比率是全程合计，仅供参考；各时段的次数见 periods。"
        )
    return {
        "variants": rows,
        "goal_kind": kind,
        "verdict": result.to_json(),
        "method": "stratified" if len(periods) > 1 else "single",
        "periods": out_periods,
        "weight_changes": changes,
        "note": note,
    }


CountsOf = Callable[[str, str, float, float, str], Awaitable[Counts]]


async def period_counts(
    enterprise: str, doc: dict[str, Any], counts: CountsOf, now: float | None = None
) -> list[Period]:
    """Each allocation period with its counts (a count query per rollup grain it spans)."""
    out = []
    for since, until, weights in spans(doc, time.time() if now is None else now):
        total: Counts = {}
        for a, b in pieces(since, until):
            for variant, per in (await counts(enterprise, doc["card"], a, b, doc["id"])).items():
                mine = total.setdefault(variant, {})
                for k, n in per.items():
                    mine[k] = mine.get(k, 0) + n
        out.append(Period(since, until, weights, total))
    return out


async def analysis(
    store: Any, enterprise: str, doc: dict[str, Any], counts: CountsOf, who: str = "system"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The experiment's analysis (counts from the event rollups, per allocation period),
    promoting the winner when the enterprise chose so and the rule declares one (audited, once:
    of two processes checking at once one promotes). Returns (experiment, analysis)."""
    result = analyse(doc, await period_counts(enterprise, doc, counts))
    winner = result["verdict"]["winner"]
    if doc["state"] == "running" and doc.get("auto_promote") and winner:
        try:
            detail = {"verdict": result["verdict"]}
            doc = await end(store, enterprise, doc, who, winner, "promote experiment winner", detail)
        except Conflict as ended:  # ended meanwhile (another process promoted it, or a person stopped it)
            doc = dict(ended.doc or doc)
        await store.durable()
    return doc, result


async def card_deleted(store: Any, enterprise: str, card: str, who: str) -> None:
    """A deleted card's running experiment stops (a card made again with its id starts afresh)."""
    run = await store.get(RUNNING, enterprise, card)
    doc = await get(store, enterprise, run["id"]) if run else None
    if doc is not None and doc["state"] == "running":
        with contextlib.suppress(Conflict):  # ended meanwhile
            await end(store, enterprise, doc, who, action="stop experiment")
    elif run:
        await store.delete(RUNNING, enterprise, card)


async def check_all(store: Any, counts: CountsOf, who: str = "system") -> list[str]:
    """Promote the clear winners of every running experiment whose enterprise chose so: what a
    periodic check runs (one cached list, and a few count queries per such experiment and
    allocation period). Returns the experiments found promoted (by this check, or by another
    process's at the same moment)."""
    done = []
    for run in await store.list(RUNNING, None):
        doc = await get(store, str(run.get("enterprise", "")), run["id"])
        if doc is None or doc["state"] != "running" or not doc.get("auto_promote"):
            continue
        doc, _ = await analysis(store, run["enterprise"], doc, counts, who)
        if doc["state"] == "promoted":
            done.append(doc["id"])
    return done
