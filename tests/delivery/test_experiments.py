"""Experiments over HTTP on both stores: bad input named by its field, a person always getting
the same variant (and its version's content), weight changes kept, promotion audited."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from delivery import experiments as ex
from mingpian.api.delivery import delivery_key

from .support import DAY, OPERATOR, SF_KEY, SF_LINE, AppFactory, Client, auth, call, sample, seed_doc, settle

SF, OP = auth(SF_KEY), auth(OPERATOR)
CARD = "/api/enterprises/sf/cards/hangup"
XS = CARD + "/experiments"


def edited(waybill: str) -> dict[str, Any]:
    data = {**sample("courier-hangup"), "waybill": waybill}
    return {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": data}


async def two_versions(client: Client) -> None:
    """Version 2 of the hang-up card (the operator's edit: approved as made); 1 is superseded."""
    resp = await client.put(CARD, json=edited("SF2000000000002"), headers=OP)
    assert resp.status == 200 and (await resp.json())["version"] == 2


def body(**more: Any) -> dict[str, Any]:
    return {
        "variants": [{"name": "A", "version": 1, "weight": 1}, {"name": "B", "version": 2, "weight": 1}],
        "goal": "tap_rate",
        "min_sample": 30,
        **more,
    }


async def problem(client: Client, data: Any, status: int = 422) -> str:
    resp = await client.post(XS, json=data, headers=SF)
    got = await resp.json()
    assert resp.status == status, got
    return str(got["problems"][0]["path"])


async def test_bad_experiments_are_refused_naming_the_field(make_app: AppFactory) -> None:
    client = await make_app()
    await two_versions(client)
    pending = await client.put(CARD, json=edited("SF3000000000003"), headers=SF)  # waits for review
    assert (await pending.json())["review"]["state"] == "pending"
    one = body(variants=[{"name": "A", "version": 1}])
    assert await problem(client, one) == "$.variants"
    six = body(variants=[{"name": f"V{i}", "version": 1 + i % 3} for i in range(6)])
    assert await problem(client, six) == "$.variants"
    zero = body(variants=[{"name": "A", "version": 1, "weight": 0}, {"name": "B", "version": 2, "weight": 0}])
    assert await problem(client, zero) == "$.variants[0].weight"
    negative = body(variants=[{"name": "A", "version": 1, "weight": -2}, {"name": "B", "version": 2}])
    assert await problem(client, negative) == "$.variants[0].weight"
    unapproved = body(variants=[{"name": "A", "version": 1}, {"name": "B", "version": 3}])
    assert await problem(client, unapproved) == "$.variants[1].version"
    missing = body(variants=[{"name": "A", "version": 1}, {"name": "B", "version": 9}])
    assert await problem(client, missing) == "$.variants[1].version"
    assert await problem(client, body(goal="button:没有这个按钮")) == "$.goal"
    assert await problem(client, body(goal="likes")) == "$.goal"
    ok = await client.post(XS, json=body(goal="button:改约派送"), headers=SF)
    assert ok.status == 201, await ok.text()
    assert await problem(client, body(), 409) == "$"  # a second running experiment on the card
    other = await client.post("/api/enterprises/sf/cards/nosuch/experiments", json=body(), headers=SF)
    assert other.status == 404


async def test_a_person_keeps_a_variant_and_sees_its_version_then_the_winner_is_promoted(
    make_app: AppFactory,
) -> None:
    client = await make_app()
    await two_versions(client)
    resp = await client.post(XS, json=body(), headers=SF)
    x = await resp.json()
    assert resp.status == 201 and x["state"] == "running"
    store = client.app[delivery_key].store
    people = [f"+86139{i:08d}" for i in range(12)]
    seen: dict[str, tuple[str, int]] = {}
    for round_ in range(2):
        for i, person in enumerate(people):
            await call(client, f"x{round_}-{i}", "ended", callee=person)
            d = await settle(client, f"x{round_}-{i}:ended")
            got = await store.delivery(d["id"])
            assert got is not None and got.data["experiment"] == x["id"]
            variant, version = got.data["variant"], got.data["version"]
            assert version == {"A": 1, "B": 2}[variant]
            assert got.data["card_data"]["waybill"] == ("SF2000000000002" if version == 2 else
                                                        sample("courier-hangup")["waybill"])  # fmt: skip
            assert seen.setdefault(person, (variant, version)) == (variant, version)  # the same each time
    assert {v for v, _ in seen.values()} == {"A", "B"}
    # weights changed mid-experiment: kept, audited, and the analysis says so
    resp = await client.put(f"{XS}/{x['id']}/weights", json={"weights": {"A": 1, "B": 3}}, headers=SF)
    assert resp.status == 200 and [v["weight"] for v in (await resp.json())["variants"]] == [1, 3]
    bad = await client.put(f"{XS}/{x['id']}/weights", json={"weights": {"C": 1}}, headers=SF)
    assert bad.status == 422 and (await bad.json())["problems"][0]["path"] == "$.weights.C"
    read = await (await client.get(f"{XS}/{x['id']}", headers=SF)).json()
    assert read["analysis"]["note"] and len(read["analysis"]["weight_changes"]) == 1
    assert read["analysis"]["verdict"]["winner"] is None
    listed = await (await client.get(XS, headers=SF)).json()
    assert [e["id"] for e in listed["experiments"]] == [x["id"]]
    # promote A (version 1): the card sends version 1 again, B retired, the experiment ended
    resp = await client.post(f"{XS}/{x['id']}/promote", json={"variant": "A"}, headers=SF)
    done = await resp.json()
    assert resp.status == 200 and done["state"] == "promoted" and done["winner"] == "A"
    assert [v["state"] for v in done["variants"]] == ["active", "retired"]
    assert (await store.get("card", "sf", "hangup"))["version"] == 1
    await call(client, "after", "ended", callee=people[0])
    d = await settle(client, "after:ended")
    assert "experiment" not in d["data"] if "data" in d else True
    got = await store.delivery("after:ended")
    assert got is not None and got.data["version"] == 1 and "experiment" not in got.data
    log = (await (await client.get("/api/enterprises/sf/audit", headers=OP)).json())["audit"]
    actions = [e["action"] for e in log]
    assert {"start experiment", "change experiment weights", "promote experiment variant"} <= set(actions)
    again = await client.post(f"{XS}/{x['id']}/stop", headers=SF)
    assert again.status == 409


def roomy() -> dict[str, Any]:
    """The seed with units enough for a few hundred calls."""
    now = time.time()
    pool = {"id": "pool1", "kind": "pool", "units": 5000, "price": 5.0, "policy": "stop",
            "valid_from": now - DAY, "valid_to": now + DAY}  # fmt: skip
    return seed_doc(packages=[pool])


async def _run(client: Client, x: str, rates: dict[str, float], people: int, seed: int) -> dict[str, int]:
    """Calls to `people` recipients; each taps the card's first button (a numbered SMS reply)
    with the rate of the variant it got (drawn per person: the same whatever order calls finish
    in). Returns the taps drawn per variant."""
    store = client.app[delivery_key].store
    taps: dict[str, int] = {}

    async def one(i: int) -> None:
        person = f"+86137{seed:02d}{i:06d}"
        await call(client, f"r{seed}-{i}", "ended", callee=person)
        d = await store.delivery((await settle(client, f"r{seed}-{i}:ended"))["id"])
        assert d is not None and d.data.get("experiment", x) == x
        if "experiment" not in d.data:  # promoted meanwhile: everyone gets the winner
            return
        if random.Random(f"{seed}/{i}").random() < rates[d.data["variant"]]:
            taps[d.data["variant"]] = taps.get(d.data["variant"], 0) + 1
            reply = {"from": person, "to": SF_LINE, "text": "1", "channel": "sms"}
            assert (await client.post("/api/replies", json=reply, headers=OP)).status == 200

    for start in range(0, people, 20):
        await asyncio.gather(*(one(i) for i in range(start, min(people, start + 20))))
    await client.app[delivery_key].events.flush()
    return taps


async def test_the_better_variant_is_declared_once_the_rule_allows_and_promoted(make_app: AppFactory) -> None:
    client = await make_app(roomy())
    await two_versions(client)
    x = await (await client.post(XS, json=body(auto_promote=True), headers=SF)).json()
    rates = {"A": 0.1, "B": 0.45}
    await _run(client, x["id"], rates, 40, 1)  # too few yet: no verdict whatever the taps
    early = await (await client.get(f"{XS}/{x['id']}", headers=SF)).json()
    assert early["state"] == "running" and early["analysis"]["verdict"]["reason"] == "min_sample"
    taps = await _run(client, x["id"], rates, 200, 2)
    service = client.app[delivery_key]
    assert await ex.check_all(service.store, service.events.counts) == [x["id"]]  # the periodic check
    read = await (await client.get(f"{XS}/{x['id']}", headers=SF)).json()
    rows = {r["name"]: r for r in read["analysis"]["variants"]}
    assert sum(r["sent"] for r in rows.values()) == 240  # every delivery counted once
    assert rows["B"]["goal"] >= taps["B"] and rows["B"]["rate"] > rows["A"]["rate"]
    lo, hi = rows["B"]["interval"]
    assert lo < rows["B"]["rate"] < hi
    verdict = read["analysis"]["verdict"]
    assert verdict["winner"] == "B" and verdict["statistic"] >= verdict["threshold"]
    assert read["state"] == "promoted" and read["winner"] == "B"  # the enterprise chose so
    assert (await client.app[delivery_key].store.get("card", "sf", "hangup"))["version"] == 2
    log = (await (await client.get("/api/enterprises/sf/audit", headers=OP)).json())["audit"]
    [entry] = [e for e in log if e["action"] == "promote experiment winner"]
    assert entry["detail"]["winner"] == "B" and entry["detail"]["experiment"] == x["id"]


async def test_two_variants_alike_declare_nothing(make_app: AppFactory) -> None:
    client = await make_app(roomy())
    await two_versions(client)
    x = await (await client.post(XS, json=body(auto_promote=True), headers=SF)).json()
    await _run(client, x["id"], {"A": 0.25, "B": 0.25}, 200, 3)
    read = await (await client.get(f"{XS}/{x['id']}", headers=SF)).json()
    assert sum(r["sent"] for r in read["analysis"]["variants"]) == 200
    assert read["analysis"]["verdict"]["winner"] is None and read["state"] == "running"


async def test_every_variant_answers_the_calls_the_card_answers(make_app: AppFactory) -> None:
    client = await make_app()
    ringing = {**edited("SF2000000000002"), "phase": "ringing"}
    assert (await client.put(CARD, json=ringing, headers=OP)).status == 200  # v2, sent now, another phase
    assert await problem(client, body()) == "$.variants[0].version"  # v1 is a hang-up card


async def test_two_thousand_recipients_at_ten_and_fifteen_percent(make_app: AppFactory) -> None:
    """The feature's own scenario: looked at after every 200 recipients, the experiment never
    names the worse variant, names the better one once the rule allows, and then sends only it;
    an A/A experiment beside it (another card's worth of people) names nothing in 2,000."""
    client = await make_app(roomy())
    await two_versions(client)
    x = await (await client.post(XS, json=body(auto_promote=True, min_sample=100), headers=SF)).json()
    looks = []
    for k in range(10):
        await _run(client, x["id"], {"A": 0.10, "B": 0.15}, 200, 30 + k)
        read = await (await client.get(f"{XS}/{x['id']}", headers=SF)).json()
        looks.append(read["analysis"]["verdict"]["winner"])
        if read["state"] != "running":
            break
    assert "A" not in looks and looks[-1] == "B" and read["state"] == "promoted"
    rows = {r["name"]: r for r in read["analysis"]["variants"]}
    assert rows["A"]["sent"] + rows["B"]["sent"] == 200 * len(looks)
    same = await (await client.post(XS, json=body(auto_promote=True, min_sample=100), headers=SF)).json()
    for k in range(10):
        await _run(client, same["id"], {"A": 0.12, "B": 0.12}, 200, 50 + k)
        read = await (await client.get(f"{XS}/{same['id']}", headers=SF)).json()
        assert read["analysis"]["verdict"]["winner"] is None and read["state"] == "running"
    assert sum(r["sent"] for r in read["analysis"]["variants"]) == 2000


async def test_a_deleted_cards_experiment_stops_and_can_still_be_read(make_app: AppFactory) -> None:
    client = await make_app()
    await two_versions(client)
    x = await (await client.post(XS, json=body(), headers=SF)).json()
    assert (await client.delete(CARD, headers=SF)).status in (200, 204)
    read = await client.get(f"{XS}/{x['id']}", headers=SF)  # its experiment ended with it
    assert read.status == 200 and (await read.json())["state"] == "stopped"
    assert await client.app[delivery_key].store.get(ex.RUNNING, "sf", "hangup") is None
    assert (await client.post(f"{XS}/{x['id']}/stop", headers=SF)).status == 409
