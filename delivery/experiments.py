"""Experiments: two to five reviewed versions of one card sent side by side, and a rule that says
when one of them is better.

An experiment names its variants (each an approved version of the card, with a weight), its goal
(`tap_rate`: deliveries with a tap; `open_rate`: with a link opened; `button:<text>`: with a tap
on that button), a minimum sample per variant and whether the winner is promoted by itself.

Assignment: a person always gets the same variant of an experiment. A keyed hash of (experiment,
recipient) is a number in [0, 1) mapped onto the cumulative weights, so nothing is stored per
person and every process agrees. Changing the weights moves some people to another variant; the
change is kept in the experiment's `history` (and the audit log), and the analysis says so.

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

Documents: `experiment` (id `<card>~<n>`, every experiment kept) and `experiment_running` (id: the
card; the running experiment's id and variants, the one document intake reads per call).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import reviews

KIND, RUNNING = "experiment", "experiment_running"
MIN_VARIANTS, MAX_VARIANTS = 2, 5
ALPHA = 0.05
TAU = 0.05
DEFAULT_MIN_SAMPLE = 100
MIN_SAMPLE_FLOOR = 30  # below this the normal approximation is not to be trusted
GOALS = ("tap_rate", "open_rate")
SAME = ("phase", "line", "group")  # what every variant shares with the card: which calls get it
NAME_CHARS = 20
Counts = dict[str, dict[str, int]]  # variant → event kind → count (delivery/events.py)


class Invalid(ValueError):
    """Bad experiment input: `path` is the JSON path of the field at fault."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


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


def msprt(n1: int, x1: int, n2: int, x2: int, tau: float = TAU) -> float:
    """The mixture likelihood ratio Λ for "rate 2 differs from rate 1" (x successes of n)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    p1, p2 = x1 / n1, x2 / n2
    # the pooled rate's variance: with no success (or all) in one arm the arm's own would be zero
    pooled = (x1 + x2) / (n1 + n2)
    v = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if v <= 0:
        return 1.0
    t2 = tau * tau
    theta = p2 - p1
    return math.sqrt(v / (v + t2)) * math.exp(theta * theta * t2 / (2 * v * (v + t2)))


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
    pairs = len(arms) * (len(arms) - 1) // 2
    threshold = pairs / alpha if pairs else math.inf
    if len(arms) < 2 or min(n for n, _ in arms.values()) < min_sample:
        return Verdict("", "min_sample", 1.0, threshold)
    best, best_stat, top = "", 0.0, 1.0
    for name, (n, x) in arms.items():
        rate = x / n
        stats = []
        for other, (m, y) in arms.items():
            if other == name:
                continue
            lam = msprt(m, y, n, x, tau)
            top = max(top, lam)
            stats.append(lam if rate > y / m else 0.0)
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


def check_weights(weights: list[Any], path: str = "$.variants") -> list[float]:
    """Weights are finite numbers ≥ 0, and not all zero."""
    out = []
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise Invalid(f"{path}[{i}].weight", "权重须为不小于 0 的数")
        if w > 1_000_000:
            raise Invalid(f"{path}[{i}].weight", "权重过大（至多 1000000）")
        out.append(float(w))
    if not any(out):
        raise Invalid(f"{path}[0].weight", "权重不能全为 0")
    return out


def check_shape(body: dict[str, Any]) -> None:
    """What can be checked without the store: variant count, names, weights, goal, sample."""
    variants = body.get("variants")
    if not isinstance(variants, list) or len(variants) < MIN_VARIANTS:
        raise Invalid("$.variants", f"实验至少需要 {MIN_VARIANTS} 个版本")
    if len(variants) > MAX_VARIANTS:
        raise Invalid("$.variants", f"实验至多 {MAX_VARIANTS} 个版本")
    names: set[str] = set()
    versions: set[int] = set()
    for i, v in enumerate(variants):
        if not isinstance(v, dict):
            raise Invalid(f"$.variants[{i}]", "版本须为对象")
        name = v.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_CHARS:
            raise Invalid(f"$.variants[{i}].name", f"版本名须为 1–{NAME_CHARS} 个字符")
        if name in names:
            raise Invalid(f"$.variants[{i}].name", "版本名重复")
        names.add(name)
        n = v.get("version")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise Invalid(f"$.variants[{i}].version", "版本号须为正整数")
        if n in versions:
            raise Invalid(f"$.variants[{i}].version", "同一版本不能用两次")
        versions.add(n)
    check_weights([v.get("weight", 1) for v in variants])
    goal = body.get("goal")
    if not isinstance(goal, str) or not (goal in GOALS or (goal.startswith("button:") and goal[7:].strip())):
        raise Invalid("$.goal", "目标须为 tap_rate、open_rate 或 button:<按钮文字>")
    ms = body.get("min_sample", DEFAULT_MIN_SAMPLE)
    if isinstance(ms, bool) or not isinstance(ms, int) or not MIN_SAMPLE_FLOOR <= ms <= 10_000_000:
        raise Invalid("$.min_sample", f"每个版本的最小样本须为 {MIN_SAMPLE_FLOOR}–10000000 的整数")
    if not isinstance(body.get("auto_promote", False), bool):
        raise Invalid("$.auto_promote", "自动提升须为 true 或 false")


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
    """A new running experiment (inside the caller's transaction). Raises Invalid. `buttons_of`:
    a version's button texts (as rendered), for a goal naming a button."""
    check_shape(body)
    if await store.get(RUNNING, enterprise, card) is not None:
        raise Invalid("$", "这张名片已有进行中的实验")
    sent = await store.get("card", enterprise, card)
    for i, v in enumerate(body["variants"]):
        ver = await store.get(reviews.VERSION, enterprise, reviews.version_id(card, v["version"]))
        if ver is None and v["version"] == 1 and not await reviews.versions(store, enterprise, card):
            # a card from before versions: the stored card is its version 1
            ver = {"state": "approved", "body": reviews.content(sent)} if sent else None
        if ver is None:
            raise Invalid(f"$.variants[{i}].version", f"名片没有版本 {v['version']}")
        if ver.get("state") not in ("approved", "superseded"):
            raise Invalid(f"$.variants[{i}].version", f"版本 {v['version']} 未通过审核")
        if sent is not None and any(ver["body"].get(k) != sent.get(k) for k in SAME):
            raise Invalid(f"$.variants[{i}].version", f"版本 {v['version']} 的时机或适用线路与名片现在的不同")
        goal = body["goal"]
        if goal.startswith("button:") and goal[7:] not in await buttons_of(ver["body"]):
            raise Invalid("$.goal", f"版本 {v['version']} 没有按钮「{goal[7:]}」")
    earlier = [e for e in await store.list(KIND, enterprise) if e.get("card") == card]
    now = time.time()
    weights = check_weights([v.get("weight", 1) for v in body["variants"]])
    doc: dict[str, Any] = {
        "id": f"{card}~{len(earlier) + 1:04d}",
        "card": card,
        "state": "running",
        "variants": [
            {"name": v["name"], "version": v["version"], "weight": w, "state": "active"}
            for v, w in zip(body["variants"], weights, strict=True)
        ],
        "goal": body["goal"],
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
    await _save(store, enterprise, doc)
    return doc


async def _save(store: Any, enterprise: str, doc: dict[str, Any]) -> None:
    await store.put(KIND, enterprise, doc["id"], doc)
    if doc["state"] == "running":
        run = {"id": doc["id"], "enterprise": enterprise, "variants": doc["variants"]}
        await store.put(RUNNING, enterprise, doc["card"], run)
    else:
        await store.delete(RUNNING, enterprise, doc["card"])


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
    """New weights of a running experiment, kept in its history. Raises Invalid."""
    names = [v["name"] for v in doc["variants"]]
    for name in weights:
        if name not in names:
            raise Invalid(f"$.weights.{name}", f"实验没有版本「{name}」")
    new = check_weights([weights.get(n, v["weight"]) for n, v in zip(names, doc["variants"], strict=True)],
                        "$.weights")  # fmt: skip
    now = time.time()
    doc = {**doc, "variants": [{**v, "weight": w} for v, w in zip(doc["variants"], new, strict=True)]}
    doc["history"] = [*doc["history"], {"at": now, "by": who, "weights": dict(zip(names, new, strict=True))}]
    await _save(store, enterprise, doc)
    return doc


async def end(store: Any, enterprise: str, doc: dict[str, Any], who: str, winner: str = "") -> dict[str, Any]:
    """Stop an experiment; with a winner, promote it: its version becomes what the card sends and
    the other variants are retired."""
    now = time.time()
    doc = {**doc, "state": "promoted" if winner else "stopped", "ended_at": now, "ended_by": who,
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
    return doc


def analyse(doc: dict[str, Any], counts: Counts) -> dict[str, Any]:
    """Per variant: sent, goal count, rate and its 95% interval; the rule's verdict; the weight
    changes (the analysis notes that assignment changed mid-experiment)."""
    kind = goal_kind(doc["goal"])
    arms: dict[str, tuple[int, int]] = {}
    rows = []
    for v in doc["variants"]:
        c = counts.get(v["name"], {})
        n, x = int(c.get("sent", 0)), int(c.get(kind, 0))
        x = min(x, n)
        lo, hi = wilson(x, n)
        rows.append({**v, "sent": n, "goal": x, "rate": x / n if n else None, "interval": [lo, hi]})
        if v.get("state", "active") == "active" or doc["state"] != "running":
            arms[v["name"]] = (n, x)
    result = verdict(arms, int(doc["min_sample"]), float(doc.get("alpha", ALPHA)), float(doc.get("tau", TAU)))
    changes = doc.get("history", [])[1:]
    return {
        "variants": rows,
        "goal_kind": kind,
        "verdict": result.to_json(),
        "weight_changes": changes,
        "note": "实验中途调整过权重：调整前后分配到各版本的人群不同" if changes else "",
    }


CountsOf = Callable[[str, str, float, float, str], Awaitable[Counts]]


async def analysis(
    store: Any, enterprise: str, doc: dict[str, Any], counts: CountsOf, who: str = "system"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The experiment's analysis (counts from the event rollups), promoting the winner when the
    enterprise chose so and the rule declares one (audited). Returns (experiment, analysis)."""
    # The counts are of this experiment alone, so a window wider than it costs nothing: whole
    # hours (the hourly rollups, not the minutes), up to an hour past the end (or now), which
    # keeps the facts of deliveries still running when it ended.
    since = math.floor(float(doc["started_at"]) / 3600) * 3600
    until = (math.floor(float(doc.get("ended_at") or time.time()) / 3600) + 2) * 3600
    c = await counts(enterprise, doc["card"], since, until, doc["id"])
    result = analyse(doc, c)
    winner = result["verdict"]["winner"]
    if doc["state"] == "running" and doc.get("auto_promote") and winner:
        async with store.tx():
            fresh = await store.get(KIND, enterprise, doc["id"])
            if fresh and fresh["state"] == "running":
                doc = await end(store, enterprise, dict(fresh), who, winner)
                detail = {"experiment": doc["id"], "winner": winner, "verdict": result["verdict"]}
                await store.audit(who, enterprise, f"card:{doc['card']}", "promote experiment winner", detail)
        await store.durable()
    return doc, result


async def card_deleted(store: Any, enterprise: str, card: str, who: str) -> None:
    """A deleted card's running experiment stops (a card made again with its id starts afresh)."""
    run = await store.get(RUNNING, enterprise, card)
    doc = await get(store, enterprise, run["id"]) if run else None
    if doc is not None and doc["state"] == "running":
        await end(store, enterprise, doc, who)
    elif run:
        await store.delete(RUNNING, enterprise, card)


async def check_all(store: Any, counts: CountsOf, who: str = "system") -> list[str]:
    """Promote the clear winners of every running experiment whose enterprise chose so: what a
    periodic check runs (one cached list, and a count query per such experiment). Returns the
    experiments promoted."""
    done = []
    for run in await store.list(RUNNING, None):
        doc = await get(store, str(run.get("enterprise", "")), run["id"])
        if doc is None or doc["state"] != "running" or not doc.get("auto_promote"):
            continue
        doc, _ = await analysis(store, run["enterprise"], doc, counts, who)
        if doc["state"] == "promoted":
            done.append(doc["id"])
    return done
