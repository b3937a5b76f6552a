"""Experiments over HTTP on both stores: bad input named by its field, a person always getting
the same variant (and its version's content), weight changes kept, promotion audited."""

from __future__ import annotations

from typing import Any

from mingpian.api.delivery import delivery_key

from .support import OPERATOR, SF_KEY, AppFactory, Client, auth, call, sample, settle

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
