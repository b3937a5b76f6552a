"""The card funnel grouped by the database (delivery/rows/eventreports.py) answers exactly what
summing every rollup row in Python answers: for one card and for every card, by variant,
version, channel, card or nothing, per day and per hour, with other enterprises' rows beside
it, fall-overs, button taps and latencies. On SQLite and on PostgreSQL."""

from __future__ import annotations

import random
from typing import Any

from delivery import eventfunnel as ef
from delivery.events import Events, aggregate, bucket_of, quantile
from delivery.funnel import day_start
from delivery.rows.events import LATENCY_ROW_SQL, ROLLUP_ROW_SQL
from delivery.store import Store

DAYS = ("2026-03-01", "2026-03-02", "2026-03-03")
CARDS = {"courier": ((1, "x1", "A"), (2, "x1", "B")), "ringing": ((3, "", ""),), "promo": ((1, "", ""),)}


def facts(seed: int) -> list[tuple[Any, ...]]:
    """New events (rows/events.py `NEW` order) of three enterprises over three days."""
    rng = random.Random(seed)
    out: list[tuple[Any, ...]] = []
    for ent in ("sf", "sf", "sf", "cmb", "jd"):
        for _ in range(300):
            card = rng.choice(list(CARDS))
            version, exp, variant = rng.choice(CARDS[card])
            channel = rng.choice(("rcs", "cardsms", "sms"))
            t = day_start(rng.choice(DAYS)) + rng.random() * 86400

            def ev(step: int, kind: str, ch: str, at: float, key: str = "", button: str = "") -> None:
                out.append((ent, card, version, exp, variant, ch, step, kind, key, button, at, at - t))  # noqa: B023

            ev(0, "sent", channel, t)
            step, ch = (1, "sms") if rng.random() < 0.2 else (0, channel)
            if step:
                ev(1, "sent", "sms", t + 30)
            for kind, p in (("delivered", 0.9), ("displayed", 0.6), ("opened", 0.3), ("replied", 0.05)):
                if rng.random() < p:
                    ev(step, kind, ch, t + rng.expovariate(1 / 100))
            if rng.random() < 0.3:
                b = rng.choice(("改约", "查件"))
                at = t + rng.expovariate(1 / 200)
                ev(step, "tapped", ch, at)
                ev(step, "tapped", ch, at, b, b)
    return out


def reference(
    rollups: list[tuple[Any, ...]], latency: list[tuple[Any, ...]], ent: str, card: str, by: str, bucket: str
) -> list[dict[str, Any]]:
    """The funnel summed in Python from every rollup row of the grain (the report's meaning)."""
    grain = ef.BUCKETS[bucket]
    col = {"variant": 6, "version": 4, "channel": 7, "card": 1}
    groups: dict[str, dict[str, Any]] = {}

    def entry(row: tuple[Any, ...]) -> dict[str, Any]:
        g = str(row[col[by]]) if by else ""
        return groups.setdefault(g, {
            "counts": dict.fromkeys((*ef.STAGES, *ef.OTHER), 0), "buttons": {}, "after": 0,
            "hist": {"opened": {}, "tapped": {}}, "buckets": {},
        })  # fmt: skip

    for r in rollups:
        e_, c, gr, b, _v, _x, _var, _ch, step, kind, button, n = r
        if e_ != ent or gr != grain or (card and c != card):
            continue
        e = entry(r)
        if button:
            e["buttons"][button] = e["buttons"].get(button, 0) + n
            continue
        if kind == "sent" and step:
            continue
        e["counts"][kind] += n
        e["after"] += n if kind == "tapped" and step else 0
        row = e["buckets"].setdefault(ef.label(b, grain), dict.fromkeys((*ef.STAGES, *ef.OTHER), 0))
        row[kind] += n
    for r in latency:
        e_, c, gr, _b, _v, _x, _var, _ch, kind, bin_, n = r
        if e_ == ent and gr == grain and (not card or c == card) and kind in ("opened", "tapped"):
            h = entry(r)["hist"][kind]
            h[bin_] = h.get(bin_, 0) + n
    out = []
    for g in sorted(groups):
        e = groups[g]
        taps = e["counts"]["tapped"]
        out.append({
            "group": g, **e["counts"],
            "buttons": dict(sorted(e["buttons"].items(), key=lambda kv: -kv[1])),
            "conversions": ef.conversions(e["counts"]),
            "tapped_after_fallover": round(e["after"] / taps, 4) if taps else None,
            "time_to_open": {"median": quantile(e["hist"]["opened"], 0.5), "p90": quantile(e["hist"]["opened"], 0.9),
                             "n": sum(e["hist"]["opened"].values())},
            "time_to_tap": {"median": quantile(e["hist"]["tapped"], 0.5), "p90": quantile(e["hist"]["tapped"], 0.9),
                            "n": sum(e["hist"]["tapped"].values())},
            "buckets": [{"bucket": k, **e["buckets"][k]} for k in sorted(e["buckets"])],
        })  # fmt: skip
    return out


async def test_the_grouped_reads_equal_every_rollup_summed(store: Store) -> None:
    rollups, latency = aggregate(facts(11))
    async with store.db.transaction():
        await store.db.run_many(ROLLUP_ROW_SQL, rollups)
        await store.db.run_many(LATENCY_ROW_SQL, latency)
    since, until = day_start(DAYS[0]), day_start(DAYS[-1]) + 86400
    events = Events(store.db)
    seen = 0
    for card in ("courier", ""):
        for by in ("", *ef.BYS):
            for bucket in ef.BUCKETS:
                got = await ef.funnel(events, "sf", card, since, until, by, bucket)
                want = reference(rollups, latency, "sf", card, by, bucket)
                assert got == want, (card, by, bucket)
                seen += sum(g["sent"] for g in got)
    assert seen > 0
    # a range cut inside a day reads the hours it covers (the totals at the hour grain too)
    part = await ef.funnel(events, "sf", "courier", since + 3600, since + 7 * 3600, "variant", "hour")
    assert all(b["bucket"][11:13] in {f"{h:02d}" for h in range(1, 7)} for g in part for b in g["buckets"])
    assert sum(g["sent"] for g in part) == sum(b["sent"] for g in part for b in g["buckets"])
    # an enterprise without rollups, and a card without any: nothing
    assert await ef.funnel(events, "nobody", "", since, until, "card", "day") == []
    assert await ef.funnel(events, "sf", "nosuch", since, until, "variant", "hour") == []
    assert bucket_of(since, "d") == since
